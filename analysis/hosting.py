"""Hosting capacity: how many chargers a feeder takes before a voltage or loading limit breaks.

For each feeder (the part of the grid below a substation busbar, reached through one line) and each
direction (all chargers importing at full power; all exporting, for V2G), a Monte Carlo of placements:
in placement m, charger k sits at a bus drawn at random from the feeder's buses, so the first N
chargers of a placement are a fixed set and a larger N only adds chargers. For each placement the
largest N that keeps every bus voltage inside [v_min, v_max] and every line and transformer at or
below the loading limit is found by doubling then bisection (O(log N) power flows, not N). A power
flow that does not converge counts as a violation (voltage collapse).

Chargers go to the feeder's buses that have a load (the customers; ``at="all"``: any bus; a feeder
with no load at all uses every bus). Single-phase chargers each sit on one phase (drawn with the
placement, in turn, one given phase, or the phase of the single-phase load at their bus); with an unbalanced (three-phase) power flow every phase's
voltage counts, and the voltage unbalance must stay at or below ``unbalance_pct``. Without one, a
single-phase charger is a balanced load like any other.
"""

from __future__ import annotations

import collections

import numpy as np
import pandas as pd

from v2g_testbed.analysis.limits import Limits
from v2g_testbed.sims import PHASES
from v2g_testbed.sims.fleet import draw_phases
from v2g_testbed.sims.fleet import phase_shares as fleet_phase_shares
from v2g_testbed.sims.grid import load_buses, profile_step_times, run_power_flow, single_phase_loads


def feeders(net, at: str = "all") -> dict[str, list[int]]:
    """Feeder name (the first line's name) -> its buses (``at="loads"``: those with a load, if any).
    Busbars: the LV side of each transformer, or the external grid's bus if there is no transformer."""
    return {name: buses for name, (_, buses) in feeder_table(net, at).items()}


def feeder_table(net, at: str = "all") -> dict[str, tuple[int, list[int]]]:
    """Feeder name -> (the busbar it hangs from, its buses as ``feeders`` gives them)."""
    import networkx as nx
    import pandapower.topology as top

    customers = load_buses(net) if at == "loads" else set()
    busbars = set(net.trafo.lv_bus.tolist()) or set(net.ext_grid.bus.tolist())
    graph = top.create_nxgraph(net, include_trafos=False)
    graph.remove_nodes_from(busbars | set(net.trafo.hv_bus.tolist()) | set(net.ext_grid.bus.tolist()))
    from_busbar = net.line[net.line.from_bus.isin(busbars) | net.line.to_bus.isin(busbars)]
    out = {}
    for component in nx.connected_components(graph):
        buses = sorted(component)
        first = from_busbar[(from_busbar.from_bus.isin(busbars) & from_busbar.to_bus.isin(component))
                            | (from_busbar.to_bus.isin(busbars) & from_busbar.from_bus.isin(component))]
        if first.empty:
            continue  # not fed from a busbar through a line (e.g. an isolated island)
        name = str(first.iloc[0]["name"] or f"line {first.index[0]}")
        row = first.iloc[0]
        busbar = int(row.from_bus if row.from_bus in busbars else row.to_bus)
        if at == "loads":
            buses = [b for b in buses if b in customers] or buses
        out[name] = (busbar, buses)
    return dict(sorted(out.items()))


# Elements within this of the worst are equally worst (series sections carrying one current, buses at one
# voltage): the first in the network's table is named, so two solvers (pandapower's Newton-Raphson to 1e-8 MVA,
# the subnetwork's Z-bus iteration to 1e-10 pu) name the same element.
VOLTAGE_TIE_PU = 1e-7
LOADING_TIE_PCT = 1e-5
Q_U_ITERATIONS = 20  # Q(U): power flows until the chargers' reactive power settles
PLOTTED = 12  # feeder-directions drawn in the placement and voltage-profile plots


def _first_max_rows(values: np.ndarray, tie: float) -> np.ndarray:
    """``_first_max`` of each row (NaN ignored; a row of NaN gives 0)."""
    with np.errstate(invalid="ignore"):
        top = np.nanmax(np.where(np.isnan(values), -np.inf, values), axis=1)
        return np.argmax(values >= (top - tie)[:, None], axis=1)


class Violations:
    """The worst violation of each row of a batch: ``kind`` (-1 none, 0-3 ``GroupCheck.KINDS``, 4 no convergence),
    the element (position in its table) and the value, kept as arrays; ``dict(r)`` as ``Feeder.check`` gives it."""

    def __init__(self, kind, element, value, check):
        self.kind, self.element, self.value, self.check = kind, element, value, check

    @property
    def ok(self) -> np.ndarray:
        return self.kind < 0

    def dict(self, r: int) -> dict | None:
        check = self.check[r] if isinstance(self.check, list) else self.check
        return check.describe(int(self.kind[r]), int(self.element[r]), float(self.value[r]))

    def merge(self, other: "Violations") -> "Violations":
        """Row by row, this one's violation, or where it has none the other's (two supply groups of one fleet)."""
        mine = [self.check] * len(self.kind) if not isinstance(self.check, list) else self.check
        theirs = [other.check] * len(other.kind) if not isinstance(other.check, list) else other.check
        take = self.ok
        return Violations(np.where(take, other.kind, self.kind), np.where(take, other.element, self.element),
                          np.where(take, other.value, self.value), [t if w else m for m, t, w in zip(mine, theirs, take)])


def _first_max(values: np.ndarray, tie: float) -> int:
    """Position of the first value within ``tie`` of the largest (NaN ignored)."""
    return int(np.flatnonzero(values >= np.nanmax(values) - tie)[0])


class Feeder:
    """Power flows for one feeder with chargers added at given buses (one load per bus, reused)."""

    def __init__(self, net, buses: list[int], limits: dict, unbalanced: bool = False, solver: str = "pandapower",
                 reactive: dict | None = None):
        import pandapower as pp

        self.pp, self.net, self.unbalanced, self.solver, self.reactive = pp, net, unbalanced, solver, reactive
        self.limits = Limits.of(limits)
        v_min, v_max = self.limits.band(net.bus.vn_kv)
        self.v_min, self.v_max = pd.Series(v_min, net.bus.index), pd.Series(v_max, net.bus.index)
        self.buses = np.asarray(buses)
        if unbalanced:
            self.loads = np.array([pp.create_asymmetric_load(net, bus=int(b), name=f"hc-{b}") for b in buses])
        else:
            self.loads = np.array([pp.create_load(net, bus=int(b), p_mw=0.0, name=f"hc-{b}") for b in buses])
        self.flows = 0
        self._recycle = False

    def _set(self, kw: np.ndarray, q_kvar=0.0):
        q = np.broadcast_to(q_kvar, (len(kw),))
        if self.unbalanced:
            total = kw.sum(axis=1, keepdims=True)
            share = np.divide(kw, total, out=np.full_like(kw, 1 / 3), where=total != 0)
            for j, phase in enumerate(PHASES):
                self.net.asymmetric_load.loc[self.loads, f"p_{phase}_mw"] = kw[:, j] / 1000.0
                self.net.asymmetric_load.loc[self.loads, f"q_{phase}_mvar"] = q * share[:, j] / 1000.0
        else:
            self.net.load.loc[self.loads, "p_mw"] = kw.sum(axis=1) / 1000.0
            self.net.load.loc[self.loads, "q_mvar"] = q / 1000.0

    def _bus_voltage(self) -> np.ndarray:
        """Voltage at the chargers' buses after the last power flow (mean of the phases if unbalanced)."""
        if self.unbalanced:
            return self.net.res_bus_3ph[[f"vm_{p}_pu" for p in PHASES]].mean(axis=1).reindex(self.buses).to_numpy()
        return self.net.res_bus.vm_pu.reindex(self.buses).to_numpy()

    def voltages(self) -> dict[str, np.ndarray]:
        """Bus voltages of the last power flow: '' -> pu (balanced), or ' phase a' ... per phase."""
        if self.unbalanced:
            return {f" phase {p}": self.net.res_bus_3ph[f"vm_{p}_pu"] for p in PHASES}
        return {"": self.net.res_bus.vm_pu}

    def check(self, kw: np.ndarray) -> dict | None:
        """None if every limit holds with these charger powers (kW per bus and phase, + import); else
        the first violation. With reactive power by Q(U), power flows repeat until it settles."""
        from v2g_testbed.sims.reactive import reactive_kvar

        p = kw.sum(axis=1)
        q_u = self.reactive is not None and self.reactive["mode"] == "q_u"
        v = self._bus_voltage() if q_u and self._recycle else np.ones(len(p))
        q = reactive_kvar(p, v, self.reactive, np.abs(p)) if self.reactive else 0.0
        for _ in range(Q_U_ITERATIONS if q_u else 1):
            self._set(kw, q)
            self.flows += 1
            try:
                run_power_flow(self.net, self.unbalanced, self._recycle, self.solver)
                self._recycle = True
            except self.pp.powerflow.LoadflowNotConverged:
                self._recycle = False
                return {"limit": "convergence", "element": "-", "value": None}
            if q_u:
                new = reactive_kvar(p, self._bus_voltage(), self.reactive, np.abs(p))
                settled = np.abs(new - q).max() < 1e-6
                q = new
                if settled:
                    break
        lim, net = self.limits, self.net
        worst = []
        for phase, vm in self.voltages().items():
            for excess, limit in ((vm - self.v_max, "voltage above"), (self.v_min - vm, "voltage below")):
                if (excess > 0).any():
                    i = excess.index[_first_max(excess.to_numpy(), VOLTAGE_TIE_PU)]
                    worst.append((float(excess.max()), limit, f"bus {net.bus.at[i, 'name']}{phase}", float(vm[i])))
        suffix = "_3ph" if self.unbalanced else ""
        if self.unbalanced:
            vuf = net.res_bus_3ph.unbalance_percent
            if (vuf > lim.unbalance_pct).any():
                worst.append((float(vuf.max() - lim.unbalance_pct) / 100, "voltage unbalance",
                              f"bus {net.bus.at[vuf.idxmax(), 'name']}", float(vuf.max())))
        for table, res, label in ((net.line, net[f"res_line{suffix}"], "line"),
                                  (net.trafo, net[f"res_trafo{suffix}"], "transformer")):
            if len(table) and (res.loading_percent > lim.loading_pct).any():
                i = res.index[_first_max(res.loading_percent.to_numpy(), LOADING_TIE_PCT)]
                worst.append((float(res.loading_percent.max() - lim.loading_pct) / 100, f"{label} loading",
                              f"{label} {table.at[i, 'name']}", float(res.loading_percent.max())))
        if not worst:
            return None
        _, limit, element, value = max(worst)
        return {"limit": limit, "element": element, "value": round(value, 4)}

    def reset(self):
        self._set(np.zeros((len(self.buses), 3)))


def phase_shares(rng: np.random.Generator, n: int, phase: str | None, bus_phase: np.ndarray | None = None,
                 order: np.ndarray | None = None) -> np.ndarray:
    """Share of each of n chargers' power on phases a, b, c: a third each for a three-phase charger
    (``phase`` None); for a single-phase one all on its phase: ``a``/``b``/``c``, ``round_robin``, ``random``,
    or ``same_as_load``: ``bus_phase[order[k]]`` (0-2, or -1 for a bus without a single-phase load, where
    chargers take the phases in turn)."""
    if phase is None:  # a third on each phase, as the fleet simulator's three-phase row
        return np.repeat(fleet_phase_shares(["abc"]), n, axis=0)
    if phase == "same_as_load":
        which = bus_phase[order[:n]]
        return fleet_phase_shares([PHASES[w] for w in np.where(which >= 0, which, np.arange(n) % 3)])
    return fleet_phase_shares(draw_phases(rng, n, phase))  # the fleet simulator's own placement


def powers(order: np.ndarray, shares: np.ndarray, n: int, n_buses: int, kw: float) -> np.ndarray:
    """kW per bus and phase of chargers 0..n-1 (each at bus ``order[k]``, split by ``shares[k]``)."""
    return np.stack([np.bincount(order[:n], weights=shares[:n, j], minlength=n_buses) for j in range(3)], axis=1) * kw


def capacity(feeder: Feeder, order: np.ndarray, shares: np.ndarray, charger_kw: float, sign: int, n_max: int) -> dict:
    """Largest N (chargers 0..N-1 of ``order``, indices into the feeder's buses, on phases ``shares``)
    within limits."""
    def powers_at(n):
        return powers(order, shares, n, len(feeder.buses), sign * charger_kw)

    base = feeder.check(powers_at(0))
    if base is not None:
        return {"chargers": 0, "binding": base, "note": "limits already broken with no chargers"}
    lo, hi, bad = 0, 1, None
    while hi <= n_max and (bad := feeder.check(powers_at(hi))) is None:
        lo, hi = hi, hi * 2
    if hi > n_max:
        hi = n_max + 1
        if (bad := feeder.check(powers_at(n_max))) is None:
            return {"chargers": n_max, "binding": None, "note": f"no limit reached up to {n_max} chargers"}
    while hi - lo > 1:
        mid = (lo + hi) // 2
        found = feeder.check(powers_at(mid))
        lo, hi, bad = (mid, hi, bad) if found is None else (lo, mid, found)
    return {"chargers": lo, "binding": bad}


def write(results: dict, out_dir) -> list:
    """hosting_capacity.json, hosting_capacity.csv and two plots into ``out_dir``."""
    import csv
    import json
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    (out_dir / "hosting_capacity.json").write_text(json.dumps(results, indent=2) + "\n")
    with open(out_dir / "hosting_capacity.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["feeder", "direction", "placement", "chargers", "kw", "binding_limit", "binding_element", "value"])
        for fd in results["feeders"]:
            for r in fd["runs"]:
                b = r["binding"] or {}
                w.writerow([fd["feeder"], fd["direction"], r["placement"], r["chargers"],
                            r["chargers"] * results["charger_kw"], b.get("limit", "none"), b.get("element", "-"),
                            b.get("value", "")])
    # a network of hundreds of feeders: the plots show the PLOTTED with the least room (the tables hold all)
    shown = sorted(results["feeders"], key=lambda f: (f["chargers_p50"], f["feeder"], f["direction"]))[:PLOTTED]
    shown = [f for f in results["feeders"] if any(f is g for g in shown)]
    fewer = "" if len(shown) == len(results["feeders"]) else f"; the {len(shown)} with the least room of {len(results['feeders'])}"
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for fd in shown:
        n = np.sort([r["chargers"] for r in fd["runs"]])
        pct = (np.arange(n.size) + 0.5) / n.size * 100
        ax.step(pct, n, where="mid", label=f"{fd['feeder']}, {fd['direction']} (binds: {fd['binding_limit']})")
    ax.set_xlabel("placement percentile (%)")
    ax.set_ylabel(f"chargers of {results['charger_kw']:g} kW before the first limit")
    ax.set_title(f"Hosting capacity over {results['placements']} random placements per feeder "
                 f"({results['charger_phases']} chargers, {results['power_flow']} power flow{fewer})", fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "hosting_capacity.png", dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, fd in enumerate(shown):  # a colour per feeder and direction, a line style per phase
        prof = fd["voltage_profile_at_limit"] or {}
        for key, style in zip((k for k in prof if k.startswith("vm")), ("-", "--", ":")):
            phase = "" if key == "vm_pu" else f", phase {key[3]}"
            ax.plot(range(len(prof["bus"])), prof[key], marker="o", ms=3, lw=1, ls=style, color=colors[i % len(colors)],
                    label=f"{fd['feeder']}, {fd['direction']}, {fd['chargers_p50']} chargers{phase}")
    for lim in sorted({v for level in Limits.of(results["limits"]).levels for v in level[1:]}):
        ax.axhline(lim, color="tab:red", lw=1)
    ax.set_xlabel("bus along the feeder (network order)")
    ax.set_ylabel("voltage (pu)")
    ax.set_title(f"Bus voltages at the hosting capacity (median placement{fewer})", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "voltage_profile.png", dpi=110)
    plt.close(fig)
    return [out_dir / n for n in ("hosting_capacity.json", "hosting_capacity.csv", "hosting_capacity.png",
                                  "voltage_profile.png")]


def hosting_capacity(net, limits: dict, charger_kw: float, directions: list[str], placements: int, seed: int,
                     n_max: int = 5000, progress=None, phase: str | None = None, unbalanced: bool = False,
                     at: str = "all", solver: str = "pandapower", method: str = "auto", only=None,
                     reactive: dict | None = None) -> dict:
    """Per feeder and direction: capacity of every placement, its percentiles, and what binds.
    ``phase``: None for three-phase chargers, else how single-phase chargers are put on phases
    (see ``phase_shares``); ``unbalanced``: three-phase power flow; ``at``: candidate buses (``feeders``).
    ``method``: ``subnetwork`` (each feeder's supply group solved alone, all placements together: see
    analysis/subnetwork.py), ``whole-network`` (every check a pandapower power flow of the whole network),
    ``auto`` (subnetwork for a balanced power flow, where the network allows it).
    ``only``: study these feeders (names), not all; ``reactive``: the chargers' reactive power (a
    ``v2g_testbed.sims.reactive`` spec: power factor or Q(U))."""
    if method not in ("auto", "subnetwork", "whole-network"):
        raise ValueError(f"method: auto, subnetwork or whole-network, got {method!r}")
    if method == "subnetwork" and unbalanced:
        raise ValueError("the subnetwork method solves balanced power flows; an unbalanced study needs whole-network")
    rng = np.random.default_rng([seed, 7])
    results = {"charger_kw": charger_kw, "limits": limits, "placements": placements,
               "power_flow": "unbalanced" if unbalanced else "balanced", "solver": solver,
               "charger_phases": "three-phase" if phase is None else f"single-phase ({phase})",
               "buses": "with a load" if at == "loads" else "all", "feeders": [], "power_flows": 0,
               "reactive": reactive}
    found = feeders(net, at)
    if only is not None and (unknown := sorted(set(only) - set(found))):
        raise ValueError(f"no feeder {unknown[0]!r} (feeders: {', '.join(list(found)[:8])}...)")
    draws = _draw_placements(net, rng, found, directions, placements, n_max, phase)
    if only is not None:
        found = {name: buses for name, buses in found.items() if name in set(only)}
    groups = None
    if not unbalanced and method != "whole-network":
        from v2g_testbed.analysis.subnetwork import Unsupported

        try:
            groups = _groups(net, found)
        except Unsupported as exc:
            if method == "subnetwork":
                raise ValueError(f"the subnetwork method cannot represent this network: {exc}") from None
    results["method"] = "subnetwork" if groups is not None else "whole-network"
    total = len(found) * len(directions) * (1 if groups is not None else placements)
    done = 0
    for name, buses in found.items():
        names = [str(net.bus.at[b, "name"]) for b in buses]
        feeder = Feeder(net, buses, limits, unbalanced, solver, reactive) if groups is None else None
        for direction in directions:
            sign = 1 if direction == "import" else -1
            if groups is not None:
                picks = [draws[name, direction, m][0] for m in range(placements)]
                runs, flows = groups[name].capacities(buses, picks, sign * charger_kw, n_max, limits, reactive=reactive)
                results["power_flows"] += flows
                done += 1
                if progress:
                    progress(done, total)
            else:
                runs = []
                for m in range(placements):
                    order, shares = draws[name, direction, m]
                    runs.append(capacity(feeder, order, shares, charger_kw, sign, n_max))
                    done += 1
                    if progress:
                        progress(done, total)
            runs = [dict(r, placement=m) for m, r in enumerate(runs)]
            n = np.array([r["chargers"] for r in runs])
            median_run = int(np.argsort(n)[len(n) // 2])
            profile = None
            if n[median_run] > 0:  # bus voltages of the median placement at its capacity
                order, shares = draws[name, direction, median_run]
                kw = powers(order, shares, n[median_run], len(buses), sign * charger_kw)
                if groups is not None:
                    ok, voltages = groups[name].at(buses, kw.sum(axis=1), limits, reactive=reactive)
                    results["power_flows"] += 1
                else:
                    ok = feeder.check(kw) is None
                    voltages = {p: [float(vm[b]) for b in buses] for p, vm in feeder.voltages().items()} if ok else None
                if ok:
                    profile = {"bus": names, **{f"vm{p.replace(' phase ', '_')}_pu": [round(v, 6) for v in vm]
                                                for p, vm in voltages.items()},
                               "chargers_at_bus": np.bincount(order[:n[median_run]], minlength=len(buses)).tolist()}
            if feeder is not None:
                feeder.reset()
            common, element = binding_summary(runs)
            results["feeders"].append({
                "feeder": name, "direction": direction, "buses": names,
                "chargers_p5": int(np.percentile(n, 5)), "chargers_p50": int(np.percentile(n, 50)),
                "chargers_p95": int(np.percentile(n, 95)),
                "kw_p50": float(np.percentile(n, 50) * charger_kw),
                "binding_limit": common, "binding_element": element,
                "voltage_profile_at_limit": profile, "runs": runs})
        if feeder is not None:
            results["power_flows"] += feeder.flows
    return results


def _draw_placements(net, rng, found: dict, directions: list[str], placements: int, n_max: int,
                     phase: str | None = None) -> dict:
    """(feeder, direction, placement) -> (bus positions of its chargers, their phase shares), drawn for every
    feeder in order, so a feeder's placements are the same whatever the method or the feeders studied."""
    load_phase = {bus: PHASES.index(p) for bus, p in single_phase_loads(net).items()}
    draws = {}
    for name, buses in found.items():
        bus_phase = np.array([load_phase.get(b, -1) for b in buses])
        for direction in directions:
            for m in range(placements):
                order = rng.integers(0, len(buses), n_max)
                draws[name, direction, m] = (order, phase_shares(rng, n_max, phase, bus_phase, order))
    return draws


def _groups(net, found: dict, refuse=None) -> dict:
    """Feeder name -> its supply group's checker (one per busbar, shared by its feeders). ``refuse(name, buses)``,
    if given, sees each feeder's group (its buses) from the topology alone, before anything is built or solved."""
    from v2g_testbed.analysis.subnetwork import supply_groups

    busbar_of = {name: busbar for name, (busbar, _) in feeder_table(net).items() if name in found}
    members = supply_groups(net, set(busbar_of.values()))
    if refuse is not None:
        for name, busbar in busbar_of.items():
            refuse(name, members[busbar])
    by_busbar = group_checks(net, members)
    return {name: by_busbar[b] for name, b in busbar_of.items()}


def group_checks(net, groups: dict) -> dict:
    """Bus -> the ``GroupCheck`` of the supply group it lies in, for ``groups`` (``subnetwork.supply_groups``: bus ->
    its group's buses; one check per group, shared by its buses); ``net`` solved here, its Thevenin data built once
    and only if a group needs it."""
    from v2g_testbed.analysis.subnetwork import SupplyGroup, WholeNetwork
    from v2g_testbed.sims.batchflow import _runpp

    _runpp(net)
    whole, checks, out = {}, {}, {}

    def whole_network():
        if "net" not in whole:
            whole["net"] = WholeNetwork(net)
        return whole["net"]

    for seed, members in groups.items():
        key = tuple(members)
        if key not in checks:
            checks[key] = GroupCheck(SupplyGroup(net, members, whole_network))
        out[seed] = checks[key]
    return out


class GroupCheck:
    """Limits on one supply group, many charger placements at once."""

    def __init__(self, group):
        self.group, self.flow, net = group, group.flow, group.net
        self.bus_names = np.array([f"bus {n}" for n in net.bus.name.astype(str)], dtype=object)[group.monitored]
        self.line_names = np.array([f"line {n}" for n in net.line.name], dtype=object)
        self.trafo_names = np.array([f"transformer {n}" for n in net.trafo.name], dtype=object)

    # the categories of violation, in the order a tie in margin is broken (``max`` over (margin, limit, ...)
    # tuples, as ``Feeder.check`` takes it, prefers the later name)
    KINDS = ("line loading", "transformer loading", "voltage above", "voltage below")

    def violations(self, res: dict, limits: dict) -> "Violations":
        """The worst violation of each row (``Violations``): the same rule as ``Feeder.check``."""
        lim = Limits.of(limits)
        v_min, v_max = lim.band(self.group.net.bus.vn_kv.to_numpy()[self.group.monitored])
        vm = self.flow.vm(res)[:, self.group.monitored]
        lines, trafos = self.flow.loadings(res)
        rows = len(vm)
        margin = np.full((rows, 4), -np.inf)
        element = np.zeros((rows, 4), int)
        value = np.zeros((rows, 4))
        with np.errstate(invalid="ignore"):  # isolated buses are NaN, as in pandapower's results
            for k, (load, names) in enumerate(((lines, self.line_names), (trafos, self.trafo_names))):
                if load.shape[1]:
                    margin[:, k] = (load.max(axis=1) - lim.loading_pct) / 100
                    element[:, k] = _first_max_rows(load, LOADING_TIE_PCT)
                    value[:, k] = load.max(axis=1)
            for k, excess in ((2, vm - v_max), (3, v_min - vm)):
                margin[:, k] = np.nanmax(excess, axis=1)
                element[:, k] = _first_max_rows(excess, VOLTAGE_TIE_PU)
                value[:, k] = vm[np.arange(rows), element[:, k]]
        margin[~(margin > 0)] = -np.inf
        kind = 3 - np.argmax(margin[:, ::-1], axis=1)  # the last of equal margins, as max() over tuples
        failed = np.isfinite(margin[np.arange(rows), kind])
        kind = np.where(res["converged"], np.where(failed, kind, -1), 4)  # 4: did not converge
        pick = np.clip(kind, 0, 3)
        return Violations(kind, element[np.arange(rows), pick], value[np.arange(rows), pick], self)

    def describe(self, kind: int, element: int, value: float) -> dict | None:
        """A violation as ``Feeder.check`` gives it."""
        if kind < 0:
            return None
        if kind == 4:
            return {"limit": "convergence", "element": "-", "value": None}
        names = (self.line_names, self.trafo_names, self.bus_names, self.bus_names)[kind]
        return {"limit": self.KINDS[kind], "element": str(names[element]), "value": round(float(value), 4)}

    def injections(self, buses, kw_rows: np.ndarray, base: np.ndarray | None = None) -> np.ndarray:
        """Complex MVA injected at the group's PQ buses: the base case minus ``kw_rows`` (rows x ``buses``, kW + j
        kvar drawn)."""
        S = np.array(np.broadcast_to(self.flow.S_base if base is None else base,
                                     (kw_rows.shape[0], len(self.flow.pq))), dtype=complex)
        pos = self.flow.pq_positions(buses)
        np.add.at(S.T, pos, -kw_rows.T / 1000.0)
        return S

    def capacities(self, buses, orders: list[np.ndarray], kw: float, n_max: int, limits: dict,
                   base: np.ndarray | None = None, reactive: dict | None = None) -> tuple[list[dict], int]:
        """Hosting capacity of each placement (``orders``: bus positions in ``buses``), all searched together;
        ``base``: base injections per step (steps x PQ buses; time series): then one row per placement and
        step, placement-major; ``reactive``: the chargers' reactive power (``v2g_testbed.sims.reactive`` spec). Returns the
        runs and the power flows they took."""
        nb = len(buses)
        steps = 1 if base is None else len(base)
        cum = np.zeros((len(orders), n_max + 1, nb), np.int32)
        for r, order in enumerate(orders):
            np.cumsum(np.eye(nb, dtype=np.int32)[order[:n_max]], axis=0, out=cum[r, 1:])
        flows = 0
        last = np.repeat(self.flow.V_base[None, :], len(orders) * steps, axis=0)  # each row starts where it last was

        def test(idx, n):
            nonlocal flows
            count = cum[idx // steps, n]
            res, extra = self.solve_with_chargers(buses, count * kw, count * abs(kw), reactive,
                                                  None if base is None else base[idx % steps], last[idx])
            flows += extra
            good = res["converged"]
            last[idx[good]] = res["V"][good]
            return self.violations(res, limits)

        return lockstep(test, len(orders) * steps, n_max), flows

    def solve_with_chargers(self, buses, p_kw: np.ndarray, rated_kw: np.ndarray, reactive: dict | None,
                            base: np.ndarray | None = None, v0: np.ndarray | None = None) -> tuple[dict, int]:
        """Power flows of rows of charger power ``p_kw`` (rows x ``buses``, + import) with their reactive power:
        a power factor in one pass; Q(U) repeated until the reactive power settles (to 1e-6 kvar, at most
        ``Q_U_ITERATIONS``), as pandapower's controller loop does. Returns the result and the power flows run."""
        from v2g_testbed.sims.reactive import reactive_kvar

        pos = self.flow.pq_positions(buses)
        q = reactive_kvar(p_kw, np.ones_like(p_kw), reactive, rated_kw) if reactive else 0.0
        if reactive and reactive["mode"] == "q_u":
            v = np.abs((self.flow.V_base[None, :] if v0 is None else v0)[:, pos])
            q = reactive_kvar(p_kw, v, reactive, rated_kw)
        for k in range(1, Q_U_ITERATIONS + 1):
            res = self.flow.solve(self.injections(buses, p_kw + 1j * q, base), v0)
            if not reactive or reactive["mode"] != "q_u":
                return res, len(p_kw) * k
            new = reactive_kvar(p_kw, np.abs(res["V"][:, pos]), reactive, rated_kw)
            settled = np.nan_to_num(np.abs(new - q), nan=0.0).max() < 1e-6
            q, v0 = new, res["V"]
            if settled:
                break
        return res, len(p_kw) * k

    def step_injections(self, profiles: dict, steps: np.ndarray) -> np.ndarray:
        """Base injections (steps x PQ buses, complex MVA) of the group at the 15-minute ``steps`` of the
        profiles, from its base case (the network as given) plus each element's change."""
        net, flow = self.group.net, self.flow
        S = np.repeat(flow.S_base[None, :], len(steps), axis=0)
        sign = {"load": -1.0, "storage": -1.0, "sgen": 1.0}
        for (element, column), frame in profiles.items():
            if element not in sign or column not in ("p_mw", "q_mvar"):
                continue
            table = net[element]
            here = table.index[table.in_service].intersection(frame.columns)
            if not len(here):
                continue
            scale = table.loc[here, "scaling"].to_numpy(float)
            now = frame.loc[:, here].to_numpy(float)[steps % len(frame)] * scale
            was = table.loc[here, column].to_numpy(float) * scale
            delta = sign[element] * (now - was) * (1 if column == "p_mw" else 1j)
            np.add.at(S.T, flow.pq_positions(table.loc[here, "bus"]), delta.T)
        return S

    def at(self, buses, kw: np.ndarray, limits: dict, rated_kw=None, reactive: dict | None = None) -> tuple[bool, dict]:
        """Whether ``kw`` (per bus of ``buses``) keeps every limit, and the buses' voltages."""
        res, _ = self.solve_with_chargers(buses, kw[None, :], np.abs(kw)[None, :] if rated_kw is None
                                          else rated_kw[None, :], reactive)
        ok = bool(self.violations(res, limits).ok[0])
        vm = self.flow.vm(res)[0]
        where = {b: i for i, b in enumerate(self.group.net.bus.index)}
        return ok, {"": [float(vm[where[b]]) for b in buses]}


def lockstep(test, rows: int, n_max: int) -> list[dict]:
    """``capacity``'s search (check 0, double, cap at ``n_max``, bisect) for many rows at once, each row
    taking exactly the steps ``capacity`` would: ``test(row_indices, n_per_row)`` returns the rows'
    ``Violations``."""
    lo, hi = np.zeros(rows, np.int64), np.ones(rows, np.int64)
    stage = np.zeros(rows, np.int8)  # 0 base, 1 doubling, 2 cap at n_max, 3 bisection, 4 done
    BASE, DOUBLE, CAP, BISECT, DONE = range(5)
    first_bad = {}  # row -> (Violations, position) of its binding violation
    note = np.zeros(rows, np.int8)  # 1: broken with no chargers, 2: no limit up to n_max
    while (active := np.flatnonzero(stage < DONE)).size:
        st = stage[active]
        n = np.select([st == BASE, st == DOUBLE, st == CAP], [0, hi[active], n_max], (lo[active] + hi[active]) // 2)
        found = test(active, n)
        ok = found.ok

        def keep(mask):  # remember the violation of these rows
            for pos in np.flatnonzero(mask):
                first_bad[int(active[pos])] = (found, int(pos))

        # stage 0: broken with no chargers -> done (0); else start doubling
        m = st == BASE
        keep(m & ~ok)
        note[active[m & ~ok]] = 1
        stage[active[m & ~ok]] = DONE
        stage[active[m & ok]] = DOUBLE
        # doubling: ok -> double (beyond n_max: check n_max); violation -> bisect
        m = st == DOUBLE
        r = active[m & ok]
        lo[r], hi[r] = hi[r], hi[r] * 2
        over = r[hi[r] > n_max]
        hi[over], stage[over] = n_max + 1, CAP
        keep(m & ~ok)
        stage[active[m & ~ok]] = BISECT
        # cap: ok -> n_max; violation -> bisect
        m = st == CAP
        r = active[m & ok]
        lo[r], note[r], stage[r] = n_max, 2, DONE
        keep(m & ~ok)
        stage[active[m & ~ok]] = BISECT
        # bisection
        m = st == BISECT
        lo[active[m & ok]] = n[m & ok]
        hi[active[m & ~ok]] = n[m & ~ok]
        keep(m & ~ok)
        ends = (stage == BISECT) & (hi - lo <= 1)
        stage[ends] = DONE
    out = []
    for r in range(rows):
        found, pos = first_bad.get(r, (None, None))
        binding = found.dict(pos) if found is not None else None
        if note[r] == 1:
            out.append({"chargers": 0, "binding": binding, "note": "limits already broken with no chargers"})
        elif note[r] == 2:
            out.append({"chargers": int(n_max), "binding": None, "note": f"no limit reached up to {n_max} chargers"})
        else:
            out.append({"chargers": int(lo[r]), "binding": binding})
    return out


def binding_summary(runs: list[dict]) -> tuple[str, str]:
    """The limit that binds most often over the placements, and where it binds most often *with that limit*:
    limit and element come from the same placements (a limit and an element taken separately could name,
    e.g., a voltage unbalance on a line)."""
    pairs = [(r["binding"]["limit"], r["binding"]["element"]) if r["binding"] else ("none", "-") for r in runs]
    common = _most_common([limit for limit, _ in pairs])
    return common, _most_common([e for limit, e in pairs if limit == common])


def _most_common(values: list[str]) -> str:
    """The most frequent value; ties go to the first in sorted order (never to hash order)."""
    counts = collections.Counter(values)
    return min(counts, key=lambda v: (-counts[v], v))


def hosting_timeseries(net, profiles: dict, steps: np.ndarray, limits: dict, charger_kw: float, directions: list[str],
                       placements: int, seed: int, n_max: int = 5000, progress=None, at: str = "all",
                       only=None, reactive: dict | None = None) -> "pd.DataFrame":
    """Hosting capacity per feeder, direction and 15-minute ``steps`` of the SimBench ``profiles`` (balanced, by
    subnetwork): one row per feeder x direction x step with the placements' p5/p50/p95 and what binds in the
    median placement. The placements are drawn as ``hosting_capacity`` draws them, so a step's answer is the
    snapshot's at that ``profile_time``."""
    from v2g_testbed.analysis.subnetwork import Unsupported, fed_from_outside

    rng = np.random.default_rng([seed, 7])
    found = feeders(net, at)
    draws = {key: order for key, (order, _) in _draw_placements(net, rng, found, directions, placements, n_max).items()}
    if only is not None:
        found = {name: buses for name, buses in found.items() if name in set(only)}

    def refuse(name, buses):
        if fed_from_outside(net, buses):
            raise ValueError(f"feeder {name}: its substation sits inside the modelled network; a time series there "
                             "needs a whole-network power flow per step (not supported yet): study one moment "
                             "with grid.profile_time instead")

    try:
        groups = _groups(net, found, refuse)
    except Unsupported as exc:
        raise ValueError(f"a time series needs the subnetwork method, which cannot represent this network: {exc}") from None
    rows, done = [], 0
    total = len(found) * len(directions)
    cache = {}
    for name, buses in found.items():
        check = groups[name]
        if id(check) not in cache:  # one set of base injections per supply group
            cache[id(check)] = check.step_injections(profiles, steps)
        base = cache[id(check)]
        for direction in directions:
            sign = 1 if direction == "import" else -1
            runs, _ = check.capacities(buses, [draws[name, direction, m] for m in range(placements)],
                                       sign * charger_kw, n_max, limits, base, reactive)
            n = np.array([r["chargers"] for r in runs]).reshape(placements, len(steps))
            median = np.argsort(n, axis=0, kind="stable")[placements // 2]
            p5, p50, p95 = np.percentile(n, [5, 50, 95], axis=0)
            for k, step in enumerate(steps):
                b = runs[median[k] * len(steps) + k]["binding"] or {}
                rows.append({"feeder": name, "direction": direction, "step": int(step),
                             "chargers_p5": int(p5[k]), "chargers": int(p50[k]), "chargers_p95": int(p95[k]),
                             "kw": float(p50[k] * charger_kw),
                             "binding_limit": b.get("limit", "none"), "binding_element": b.get("element", "-"),
                             "value": b.get("value")})
            done += 1
            if progress:
                progress(done, total)
    return pd.DataFrame(rows)


def write_timeseries(frame, out_dir, charger_kw: float, worst: int = 5) -> list:
    """hosting_capacity_timeseries.parquet, worst_moments.csv, duration_curve.png and a day x hour heatmap per
    feeder and direction (heatmaps/), each step at its time in the SimBench year."""
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    frame = frame.copy()
    frame.insert(3, "time", profile_step_times(frame["step"]))
    frame.to_parquet(out_dir / "hosting_capacity_timeseries.parquet", index=False)
    moments = (frame.sort_values(["feeder", "direction", "chargers", "step"], kind="stable")
               .groupby(["feeder", "direction"], sort=True).head(worst))
    moments.to_csv(out_dir / "worst_moments.csv", index=False)
    written = [out_dir / "hosting_capacity_timeseries.parquet", out_dir / "worst_moments.csv"]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for (name, direction), part in frame.groupby(["feeder", "direction"], sort=True):
        n = np.sort(part["chargers"].to_numpy())[::-1]
        ax.plot((np.arange(n.size) + 0.5) / n.size * 100, n * charger_kw / 1000, lw=1, label=f"{name}, {direction}")
    ax.set_xlabel("share of the studied quarter-hours (%)")
    ax.set_ylabel("hosting capacity (MW of chargers)")
    ax.set_title("Hosting capacity duration curve (median placement per quarter-hour)", fontsize=9)
    if frame[["feeder", "direction"]].drop_duplicates().shape[0] <= 20:
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out_dir / "duration_curve.png", dpi=110)
    plt.close(fig)
    written.append(out_dir / "duration_curve.png")
    (out_dir / "heatmaps").mkdir(exist_ok=True)
    for (name, direction), part in frame.groupby(["feeder", "direction"], sort=True):
        fig, ax = plt.subplots(figsize=(9, 3.6))
        _day_hour_map(fig, ax, part["time"], part["chargers"].to_numpy() * charger_kw / 1000, "MW of chargers")
        ax.set_xlabel("day of year")
        ax.set_ylabel("hour of day")
        ax.set_title(f"Hosting capacity of {name}, {direction}", fontsize=9)
        fig.tight_layout()
        path = out_dir / "heatmaps" / f"{_file_name(name)}_{direction}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written


def _day_hour_map(fig, ax, times, values: np.ndarray, label: str) -> None:
    """``values`` at quarter-hour ``times`` as a day-of-year x hour-of-day image on ``ax``."""
    day = times.dt.dayofyear.to_numpy()
    quarter = (times.dt.hour * 4 + times.dt.minute // 15).to_numpy()
    days = np.unique(day)
    grid = np.full((96, days.size), np.nan)
    grid[quarter, np.searchsorted(days, day)] = values
    image = ax.imshow(grid, aspect="auto", origin="lower", cmap="viridis", interpolation="nearest",
                      extent=(days[0] - 0.5, days[-1] + 0.5, 0, 24))
    fig.colorbar(image, ax=ax, label=label)


def _file_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def bus_coordinates(net) -> dict[int, tuple[float, float]] | None:
    """Bus index -> (x, y) from the network's geodata (pandapower 3 ``bus.geo`` GeoJSON, or ``bus_geodata``)."""
    import json

    out = {}
    if "geo" in net.bus and net.bus.geo.notna().any():
        for bus, geo in net.bus.geo.items():
            if isinstance(geo, str) and geo:
                x, y = json.loads(geo)["coordinates"][:2]
                out[int(bus)] = (float(x), float(y))
    elif "bus_geodata" in net and len(net.bus_geodata):
        out = {int(b): (float(r.x), float(r.y)) for b, r in net.bus_geodata.iterrows()}
    return out or None


def draw_map(net, mw: dict[str, float], binding: dict[str, str], title: str, path) -> bool:
    """The network drawn from its bus coordinates, each feeder's lines coloured by ``mw`` (its hosting capacity),
    the element that binds it marked. False (nothing drawn) when the network has no coordinates."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    xy = bus_coordinates(net)
    if xy is None:
        return False
    table = feeder_table(net, "all")
    feeder_of = {b: name for name, (_, buses) in table.items() for b in buses}
    names = {str(net.bus.at[b, "name"]): b for b in net.bus.index}
    values = np.array(list(mw.values()), float)
    norm = matplotlib.colors.Normalize(vmin=float(np.nanmin(values)) if values.size else 0,
                                       vmax=float(np.nanmax(values)) if values.size else 1)
    cmap = matplotlib.colormaps["viridis"]
    fig, ax = plt.subplots(figsize=(8.5, 7))
    grey, coloured, colours = [], [], []
    for _, line in net.line.iterrows():
        a, b = int(line.from_bus), int(line.to_bus)
        if a not in xy or b not in xy:
            continue
        feeder = feeder_of.get(a) or feeder_of.get(b)
        if feeder in mw:
            coloured.append([xy[a], xy[b]])
            colours.append(cmap(norm(mw[feeder])))
        else:
            grey.append([xy[a], xy[b]])
    ax.add_collection(LineCollection(grey, colors="0.8", linewidths=0.6))
    ax.add_collection(LineCollection(coloured, colors=colours, linewidths=1.6))
    marked = []
    for feeder, element in binding.items():
        kind, _, label = element.partition(" ")
        if kind == "bus" and label in names and names[label] in xy:
            marked.append(xy[names[label]])
        elif kind == "line":
            hit = net.line[net.line.name.astype(str) == label]
            if len(hit) and int(hit.iloc[0].to_bus) in xy:
                marked.append(xy[int(hit.iloc[0].to_bus)])
        elif kind == "transformer":
            hit = net.trafo[net.trafo.name.astype(str) == label]
            if len(hit) and int(hit.iloc[0].lv_bus) in xy:
                marked.append(xy[int(hit.iloc[0].lv_bus)])
    if marked:
        ax.scatter(*np.array(marked).T, marker="x", color="tab:red", s=40, zorder=3, label="binding element")
        ax.legend(fontsize=8, loc="best")
    ax.autoscale()
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xticks([])
    ax.set_yticks([])
    fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="hosting capacity (MW of chargers)",
                 shrink=0.7)
    ax.set_title(title, fontsize=8, wrap=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def service_hosting(net, vehicles: dict, sign: int, limits: dict, resolution_kw: float = 1.0,
                    profiles: dict | None = None, steps=None, reactive_of_bus: dict | None = None,
                    progress=None) -> "pd.DataFrame":
    """Service hosting capacity: the largest contracted power (MW) the fleet can deliver in one synchronised
    response, from its baseline to full response in the service's direction (``sign``: -1 a Low service, +1 a
    High one), before a grid limit breaks; per 15-minute step of ``profiles`` (``steps``), or once for the network
    as given. The fleet is ``vehicles`` (as the fleet simulator gets them); the response is shared as the
    aggregator shares it (``v2g_testbed.sims.controller.dispatch``: in proportion to headroom, state of charge respected), so
    a bus's power at contracted C is linear in C. Searched in steps of ``resolution_kw`` by the hosting-capacity
    search, up to the fleet's whole headroom (then ``binding_limit`` is ``fleet headroom``).
    ``reactive_of_bus``: bus reference -> ``{"spec", "rated_kw"}`` (``v2g_testbed.sims.fleet.bus_reactive``)."""
    from v2g_testbed.analysis.subnetwork import supply_groups
    from v2g_testbed.sims.controller import dispatch
    from v2g_testbed.sims.grid import find_bus
    from v2g_testbed.sims.obc import plug_windows, soc_limited_kw

    plugged, arrival, _ = plug_windows(vehicles)
    here = plugged & (arrival <= 0)
    baseline = np.where(here, np.asarray(vehicles["baseline_kw"], float), 0.0)
    p_min, p_max = soc_limited_kw(vehicles, vehicles.get("soc"))
    p_min, p_max = np.where(here, p_min, 0.0), np.where(here, p_max, 0.0)
    full = dispatch(sign * 1e12, baseline, p_min, p_max)  # every vehicle at the end of its headroom
    refs = [str(b) for b in vehicles["bus"]]
    bus_refs = list(dict.fromkeys(refs))
    index = np.array([bus_refs.index(r) for r in refs])
    bus_base = np.bincount(index, weights=baseline, minlength=len(bus_refs))
    bus_room = np.abs(np.bincount(index, weights=full - baseline, minlength=len(bus_refs)))
    bus_rated = np.bincount(index, weights=np.maximum(np.abs(p_min), np.abs(p_max)), minlength=len(bus_refs))
    total = float(bus_room.sum())
    n_max = int(total // resolution_kw)
    buses = np.array([find_bus(net, int(r) if r.isdigit() else r) for r in bus_refs])
    by_bus = group_checks(net, supply_groups(net, set(buses.tolist())))
    checks = []  # (GroupCheck, positions of the fleet buses in it)
    for check in {id(c): c for c in by_bus.values()}.values():
        checks.append((check, np.flatnonzero([by_bus[int(b)] is check for b in buses])))
    n_steps = 1 if steps is None else len(steps)
    bases = [None if steps is None else check.step_injections(profiles, np.asarray(steps)) for check, _ in checks]
    spec = {i: (reactive_of_bus or {}).get(r) for i, r in enumerate(bus_refs)}
    flows = 0

    def test(idx, n):
        nonlocal flows
        share = n[:, None] * resolution_kw / total if total > 0 else np.zeros((len(n), 1))
        p = bus_base[None, :] + sign * share * bus_room[None, :]  # kW per fleet bus, + import
        merged = None
        for (check, mine), base in zip(checks, bases):
            rows_base = None if base is None else base[idx % n_steps]
            specs = {spec[i]["spec"]["mode"] if spec[i] else None for i in mine}
            reactive = next((spec[i]["spec"] for i in mine if spec[i]), None) if len(specs) == 1 else None
            if len(specs) > 1:
                raise ValueError("service hosting capacity takes one reactive setting per supply group")
            res, k = check.solve_with_chargers(buses[mine], p[:, mine], np.broadcast_to(bus_rated[mine], p[:, mine].shape),
                                               reactive, rows_base)
            flows += k
            found = check.violations(res, limits)
            merged = found if merged is None else merged.merge(found)
        return merged

    runs = lockstep(test, n_steps, n_max)
    rows = []
    for k in range(n_steps):
        run = runs[k]
        b = run["binding"] or {}
        limited = run.get("note", "").startswith("no limit")
        rows.append({"step": None if steps is None else int(steps[k]), "service_mw": run["chargers"] * resolution_kw / 1000,
                     "fleet_mw": total / 1000,
                     "binding_limit": "fleet headroom" if limited else b.get("limit", "none"),
                     "binding_element": "-" if limited else b.get("element", "-"), "value": b.get("value")})
    frame = pd.DataFrame(rows)
    frame.attrs["power_flows"] = flows
    return frame


def write_service_timeseries(frame, out_dir, service: str, contracted_mw: float | None) -> list:
    """service_hosting.parquet, a duration curve and a day x hour heatmap of the deliverable MW."""
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    frame.to_parquet(out_dir / "service_hosting.parquet", index=False)
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4), gridspec_kw={"width_ratios": [1, 2]})
    mw = np.sort(frame.service_mw.to_numpy())[::-1]
    a.plot((np.arange(mw.size) + 0.5) / mw.size * 100, mw, lw=1.2, label="deliverable before a grid limit")
    a.axhline(frame.fleet_mw.iloc[0], color="0.5", lw=1, ls="--", label="the fleet's headroom")
    if contracted_mw is not None:
        a.axhline(contracted_mw, color="tab:red", lw=1, label=f"contracted {contracted_mw:g} MW")
    a.set_xlabel("share of the studied quarter-hours (%)")
    a.set_ylabel(f"{service} (MW)")
    a.legend(fontsize=7)
    _day_hour_map(fig, b, frame["time"], frame.service_mw.to_numpy(), f"{service} deliverable (MW)")
    b.set_xlabel("day of year")
    b.set_ylabel("hour of day")
    fig.suptitle(f"Service hosting capacity: the fleet's synchronised {service} response the grid takes", fontsize=9)
    fig.tight_layout()
    fig.savefig(out_dir / "service_hosting.png", dpi=110)
    plt.close(fig)
    return [out_dir / "service_hosting.parquet", out_dir / "service_hosting.png"]
