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

from sims import PHASES
from sims.fleet import draw_phases
from sims.fleet import phase_shares as fleet_phase_shares
from sims.grid import load_buses, run_power_flow, single_phase_loads


def feeders(net, at: str = "all") -> dict[str, list[int]]:
    """Feeder name (the first line's name) -> its buses (``at="loads"``: those with a load, if any).
    Busbars: the LV side of each transformer, or the external grid's bus if there is no transformer."""
    import networkx as nx
    import pandapower.topology as top

    customers = load_buses(net) if at == "loads" else set()
    busbars = set(net.trafo.lv_bus.tolist()) or set(net.ext_grid.bus.tolist())
    graph = top.create_nxgraph(net, include_trafos=False)
    graph.remove_nodes_from(busbars | set(net.trafo.hv_bus.tolist()) | set(net.ext_grid.bus.tolist()))
    out = {}
    for component in nx.connected_components(graph):
        buses = sorted(component)
        first = net.line[(net.line.from_bus.isin(busbars) & net.line.to_bus.isin(component))
                         | (net.line.to_bus.isin(busbars) & net.line.from_bus.isin(component))]
        if first.empty:
            continue  # not fed from a busbar through a line (e.g. an isolated island)
        name = str(first.iloc[0]["name"] or f"line {first.index[0]}")
        if at == "loads":
            buses = [b for b in buses if b in customers] or buses
        out[name] = buses
    return dict(sorted(out.items()))


class Feeder:
    """Power flows for one feeder with chargers added at given buses (one load per bus, reused)."""

    def __init__(self, net, buses: list[int], limits: dict, unbalanced: bool = False, solver: str = "pandapower"):
        import pandapower as pp

        self.pp, self.net, self.limits, self.unbalanced, self.solver = pp, net, limits, unbalanced, solver
        self.buses = np.asarray(buses)
        if unbalanced:
            self.loads = np.array([pp.create_asymmetric_load(net, bus=int(b), name=f"hc-{b}") for b in buses])
        else:
            self.loads = np.array([pp.create_load(net, bus=int(b), p_mw=0.0, name=f"hc-{b}") for b in buses])
        self.flows = 0
        self._recycle = False

    def _set(self, kw: np.ndarray):
        if self.unbalanced:
            for j, phase in enumerate(PHASES):
                self.net.asymmetric_load.loc[self.loads, f"p_{phase}_mw"] = kw[:, j] / 1000.0
        else:
            self.net.load.loc[self.loads, "p_mw"] = kw.sum(axis=1) / 1000.0

    def voltages(self) -> dict[str, np.ndarray]:
        """Bus voltages of the last power flow: '' -> pu (balanced), or ' phase a' ... per phase."""
        if self.unbalanced:
            return {f" phase {p}": self.net.res_bus_3ph[f"vm_{p}_pu"] for p in PHASES}
        return {"": self.net.res_bus.vm_pu}

    def check(self, kw: np.ndarray) -> dict | None:
        """None if every limit holds with these charger powers (kW per bus and phase, + import); else
        the first violation."""
        self._set(kw)
        self.flows += 1
        try:
            run_power_flow(self.net, self.unbalanced, self._recycle, self.solver)
            self._recycle = True
        except self.pp.powerflow.LoadflowNotConverged:
            self._recycle = False
            return {"limit": "convergence", "element": "-", "value": None}
        lim, net = self.limits, self.net
        worst = []
        for phase, vm in self.voltages().items():
            if (vm > lim["v_max_pu"]).any():
                worst.append((float(vm.max() - lim["v_max_pu"]), "voltage above",
                              f"bus {net.bus.at[vm.idxmax(), 'name']}{phase}", float(vm.max())))
            if (vm < lim["v_min_pu"]).any():
                worst.append((float(lim["v_min_pu"] - vm.min()), "voltage below",
                              f"bus {net.bus.at[vm.idxmin(), 'name']}{phase}", float(vm.min())))
        suffix = "_3ph" if self.unbalanced else ""
        if self.unbalanced:
            vuf = net.res_bus_3ph.unbalance_percent
            if (vuf > lim["unbalance_pct"]).any():
                worst.append((float(vuf.max() - lim["unbalance_pct"]) / 100, "voltage unbalance",
                              f"bus {net.bus.at[vuf.idxmax(), 'name']}", float(vuf.max())))
        for table, res, label in ((net.line, net[f"res_line{suffix}"], "line"),
                                  (net.trafo, net[f"res_trafo{suffix}"], "transformer")):
            if len(table) and (res.loading_percent > lim["loading_pct"]).any():
                i = res.loading_percent.idxmax()
                worst.append((float(res.loading_percent[i] - lim["loading_pct"]) / 100, f"{label} loading",
                              f"{label} {table.at[i, 'name']}", float(res.loading_percent[i])))
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
    if phase is None:
        return fleet_phase_shares(["abc"] * n)
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
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for fd in results["feeders"]:
        n = np.sort([r["chargers"] for r in fd["runs"]])
        pct = (np.arange(n.size) + 0.5) / n.size * 100
        ax.step(pct, n, where="mid", label=f"{fd['feeder']}, {fd['direction']} (binds: {fd['binding_limit']})")
    ax.set_xlabel("placement percentile (%)")
    ax.set_ylabel(f"chargers of {results['charger_kw']:g} kW before the first limit")
    ax.set_title(f"Hosting capacity over {results['placements']} random placements per feeder "
                 f"({results['charger_phases']} chargers, {results['power_flow']} power flow)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "hosting_capacity.png", dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, fd in enumerate(results["feeders"]):  # a colour per feeder and direction, a line style per phase
        prof = fd["voltage_profile_at_limit"] or {}
        for key, style in zip((k for k in prof if k.startswith("vm")), ("-", "--", ":")):
            phase = "" if key == "vm_pu" else f", phase {key[3]}"
            ax.plot(range(len(prof["bus"])), prof[key], marker="o", ms=3, lw=1, ls=style, color=colors[i % len(colors)],
                    label=f"{fd['feeder']}, {fd['direction']}, {fd['chargers_p50']} chargers{phase}")
    for lim in (results["limits"]["v_min_pu"], results["limits"]["v_max_pu"]):
        ax.axhline(lim, color="tab:red", lw=1)
    ax.set_xlabel("bus along the feeder (network order)")
    ax.set_ylabel("voltage (pu)")
    ax.set_title("Bus voltages at the hosting capacity (median placement)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "voltage_profile.png", dpi=110)
    plt.close(fig)
    return [out_dir / n for n in ("hosting_capacity.json", "hosting_capacity.csv", "hosting_capacity.png",
                                  "voltage_profile.png")]


def hosting_capacity(net, limits: dict, charger_kw: float, directions: list[str], placements: int, seed: int,
                     n_max: int = 5000, progress=None, phase: str | None = None, unbalanced: bool = False,
                     at: str = "all", solver: str = "pandapower") -> dict:
    """Per feeder and direction: capacity of every placement, its percentiles, and what binds.
    ``phase``: None for three-phase chargers, else how single-phase chargers are put on phases
    (see ``phase_shares``); ``unbalanced``: three-phase power flow; ``at``: candidate buses (``feeders``)."""
    rng = np.random.default_rng([seed, 7])
    results = {"charger_kw": charger_kw, "limits": limits, "placements": placements,
               "power_flow": "unbalanced" if unbalanced else "balanced", "solver": solver,
               "charger_phases": "three-phase" if phase is None else f"single-phase ({phase})",
               "buses": "with a load" if at == "loads" else "all", "feeders": []}
    found = feeders(net, at)
    total = len(found) * len(directions) * placements
    done = 0
    load_phase = {bus: PHASES.index(p) for bus, p in single_phase_loads(net).items()}
    for name, buses in found.items():
        feeder = Feeder(net, buses, limits, unbalanced, solver)
        bus_phase = np.array([load_phase.get(b, -1) for b in buses])
        names = [str(net.bus.at[b, "name"]) for b in buses]
        for direction in directions:
            sign = 1 if direction == "import" else -1
            runs, draws = [], []
            for m in range(placements):
                order = rng.integers(0, len(buses), n_max)
                shares = phase_shares(rng, n_max, phase, bus_phase, order)
                draws.append((order, shares))
                runs.append(dict(capacity(feeder, order, shares, charger_kw, sign, n_max), placement=m))
                done += 1
                if progress:
                    progress(done, total)
            n = np.array([r["chargers"] for r in runs])
            median_run = int(np.argsort(n)[len(n) // 2])
            profile = None
            if n[median_run] > 0:  # bus voltages of the median placement at its capacity
                order, shares = draws[median_run]
                kw = powers(order, shares, n[median_run], len(buses), sign * charger_kw)
                if feeder.check(kw) is None:
                    profile = {"bus": names, **{f"vm{p.replace(' phase ', '_')}_pu": [round(float(vm[b]), 6) for b in buses]
                                                for p, vm in feeder.voltages().items()},
                               "chargers_at_bus": np.bincount(order[:n[median_run]], minlength=len(buses)).tolist()}
            feeder.reset()
            common, element = binding_summary(runs)
            results["feeders"].append({
                "feeder": name, "direction": direction, "buses": names,
                "chargers_p5": int(np.percentile(n, 5)), "chargers_p50": int(np.percentile(n, 50)),
                "chargers_p95": int(np.percentile(n, 95)),
                "kw_p50": float(np.percentile(n, 50) * charger_kw),
                "binding_limit": common, "binding_element": element,
                "voltage_profile_at_limit": profile, "runs": runs})
        results["power_flows"] = results.get("power_flows", 0) + feeder.flows
    return results


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
