"""The studies: hosting capacity of each feeder at one moment (``hosting_capacity``), over the quarter-hours of a
SimBench year (``hosting_timeseries``), and of a fleet's synchronised service response (``service_hosting``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from v2g_testbed.analysis.hosting.checks import WholeNetworkCheck, group_checks
from v2g_testbed.analysis.hosting.search import binding_summary, capacity, lockstep, phase_shares, powers
from v2g_testbed.sims import PHASES
from v2g_testbed.sims.grid import single_phase_loads
from v2g_testbed.sims.topology import feeder_table, feeders


def hosting_capacity(net, limits: dict, charger_kw: float, directions: list[str], placements: int, seed: int,
                     n_max: int = 5000, progress=None, phase: str | None = None, unbalanced: bool = False,
                     at: str = "all", solver: str = "pandapower", method: str = "auto", only=None,
                     reactive: dict | None = None) -> dict:
    """Per feeder and direction: capacity of every placement, its percentiles, and what binds.
    ``phase``: None for three-phase chargers, else how single-phase chargers are put on phases
    (see ``phase_shares``); ``unbalanced``: three-phase power flow; ``at``: candidate buses (``feeders``).
    ``method``: ``subnetwork`` (each feeder's supply group solved alone, all placements together: see
    analysis/hosting/subnetwork.py), ``whole-network`` (every check a pandapower power flow of the whole network),
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
    draws = PlacementDraws(net, rng, found, directions, placements, n_max, phase)
    if only is not None:
        found = {name: buses for name, buses in found.items() if name in set(only)}
    groups = None
    if not unbalanced and method != "whole-network":
        from v2g_testbed.analysis.hosting.subnetwork import Unsupported

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
        mine = draws.of(name)
        feeder = WholeNetworkCheck(net, buses, limits, unbalanced, solver, reactive) if groups is None else None
        for direction in directions:
            sign = 1 if direction == "import" else -1
            if groups is not None:
                picks = [mine[direction, m][0] for m in range(placements)]
                runs, flows = groups[name].capacities(buses, picks, sign * charger_kw, n_max, limits, reactive=reactive)
                results["power_flows"] += flows
                done += 1
                if progress:
                    progress(done, total)
            else:
                runs = []
                for m in range(placements):
                    order, shares = mine[direction, m]
                    runs.append(capacity(feeder, order, shares, charger_kw, sign, n_max))
                    done += 1
                    if progress:
                        progress(done, total)
            runs = [dict(r, placement=m) for m, r in enumerate(runs)]
            n = np.array([r["chargers"] for r in runs])
            median_run = int(np.argsort(n)[len(n) // 2])
            profile = None
            if n[median_run] > 0:  # bus voltages of the median placement at its capacity
                order, shares = mine[direction, median_run]
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


class PlacementDraws:
    """The placements of every feeder, drawn in the network's feeder order from one random stream (so a feeder's
    placements are the same whatever the method, the feeders studied or the process studying them), one feeder at
    a time and only kept for the feeder asked for: ``of(name)`` -> {(direction, m): (bus positions of its
    chargers, their phase shares)}. Feeders must be asked for in the network's order; those skipped are drawn and
    dropped (21,840 placements of 5,000 chargers are 3.5 GB if kept)."""

    def __init__(self, net, rng, found: dict, directions: list[str], placements: int, n_max: int,
                 phase: str | None = None):
        self.rng, self.directions, self.placements, self.n_max, self.phase = rng, directions, placements, n_max, phase
        self.load_phase = {bus: PHASES.index(p) for bus, p in single_phase_loads(net).items()}
        self.pending = iter(found.items())

    def of(self, name: str) -> dict:
        for feeder, buses in self.pending:
            bus_phase = np.array([self.load_phase.get(b, -1) for b in buses])
            draws = {}
            for direction in self.directions:
                for m in range(self.placements):
                    order = self.rng.integers(0, len(buses), self.n_max)
                    draws[direction, m] = (order, phase_shares(self.rng, self.n_max, self.phase, bus_phase, order))
            if feeder == name:
                return draws
        raise KeyError(f"feeder {name!r} asked for out of the network's order")


def _groups(net, found: dict, refuse=None) -> dict:
    """Feeder name -> its supply group's checker (one per busbar, shared by its feeders). ``refuse(name, buses)``,
    if given, sees each feeder's group (its buses) from the topology alone, before anything is built or solved."""
    from v2g_testbed.analysis.hosting.subnetwork import supply_groups

    busbar_of = {name: busbar for name, (busbar, _) in feeder_table(net).items() if name in found}
    members = supply_groups(net, set(busbar_of.values()))
    if refuse is not None:
        for name, busbar in busbar_of.items():
            refuse(name, members[busbar])
    by_busbar = group_checks(net, members)
    return {name: by_busbar[b] for name, b in busbar_of.items()}


def hosting_timeseries(net, profiles: dict, steps: np.ndarray, limits: dict, charger_kw: float, directions: list[str],
                       placements: int, seed: int, n_max: int = 5000, progress=None, at: str = "all",
                       only=None, reactive: dict | None = None) -> "pd.DataFrame":
    """Hosting capacity per feeder, direction and 15-minute ``steps`` of the SimBench ``profiles`` (balanced, by
    subnetwork): one row per feeder x direction x step with the placements' p5/p50/p95 and what binds in the
    median placement. The placements are drawn as ``hosting_capacity`` draws them, so a step's answer is the
    snapshot's at that ``profile_time``."""
    from v2g_testbed.analysis.hosting.subnetwork import Unsupported, fed_from_outside

    rng = np.random.default_rng([seed, 7])
    found = feeders(net, at)
    draws = PlacementDraws(net, rng, found, directions, placements, n_max)
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
        mine = draws.of(name)
        if id(check) not in cache:  # one set of base injections per supply group
            cache[id(check)] = check.step_injections(profiles, steps)
        base = cache[id(check)]
        for direction in directions:
            sign = 1 if direction == "import" else -1
            runs, _ = check.capacities(buses, [mine[direction, m][0] for m in range(placements)],
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


def service_hosting(net, vehicles: dict, sign: int, limits: dict, resolution_kw: float = 1.0,
                    profiles: dict | None = None, steps=None, reactive_of_bus: dict | None = None,
                    progress=None, part: tuple[int, int] | None = None):
    """Service hosting capacity: the largest contracted power (MW) the fleet can deliver in one synchronised
    response, from its baseline to full response in the service's direction (``sign``: -1 a Low service, +1 a
    High one), before a grid limit breaks; per 15-minute step of ``profiles`` (``steps``), or once for the network
    as given. The fleet is ``vehicles`` (as the fleet simulator gets them); the response is shared as the
    aggregator shares it (``v2g_testbed.sims.controller.dispatch``: in proportion to headroom, state of charge respected), so
    a bus's power at contracted C is linear in C. Searched in steps of ``resolution_kw`` by the hosting-capacity
    search, up to the fleet's whole headroom (then ``binding_limit`` is ``fleet headroom``).
    ``reactive_of_bus``: bus reference -> ``{"spec", "rated_kw"}`` (``v2g_testbed.sims.fleet.bus_reactive``).

    Supply groups (``sims.topology.supply_groups``) share no element, so each is searched on its own and the
    fleet's capacity is the least of theirs, binding where that group binds (the first group in order on a tie).
    ``part=(k, parts)``: search only every ``parts``-th group from the ``k``-th and return the searches for
    ``combine_service`` (how worker processes split the study; the same answer)."""
    from v2g_testbed.analysis.hosting.subnetwork import supply_groups
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
    groups = supply_groups(net, set(buses.tolist()))
    order = list(dict.fromkeys(tuple(members) for members in groups.values()))  # by their lowest fleet bus
    ranks = range(len(order)) if part is None else range(part[0], len(order), part[1])
    mine_of = {order[r]: r for r in ranks}
    by_bus = group_checks(net, {b: m for b, m in groups.items() if tuple(m) in mine_of})  # only these are built
    n_steps = 1 if steps is None else len(steps)
    spec = {i: (reactive_of_bus or {}).get(r) for i, r in enumerate(bus_refs)}
    searches = []
    for rank in ranks:
        members = set(order[rank])
        mine = np.flatnonzero([int(b) in members for b in buses])
        check = by_bus[int(buses[mine[0]])]
        base = None if steps is None else check.step_injections(profiles, np.asarray(steps))
        specs = {spec[i]["spec"]["mode"] if spec[i] else None for i in mine}
        if len(specs) > 1:
            raise ValueError("service hosting capacity takes one reactive setting per supply group")
        reactive = next((spec[i]["spec"] for i in mine if spec[i]), None)
        flows = [0]

        def test(idx, n, check=check, mine=mine, base=base, reactive=reactive, flows=flows):
            share = n[:, None] * resolution_kw / total if total > 0 else np.zeros((len(n), 1))
            p = bus_base[None, mine] + sign * share * bus_room[None, mine]  # kW per fleet bus of the group, + import
            res, k = check.solve_with_chargers(buses[mine], p, np.broadcast_to(bus_rated[mine], p.shape), reactive,
                                               None if base is None else base[idx % n_steps])
            flows[0] += k
            return check.violations(res, limits)

        searches.append({"rank": rank, "runs": lockstep(test, n_steps, n_max), "power_flows": flows[0]})
    found = {"searches": searches, "total_kw": total, "groups": len(order)}
    return found if part is not None else combine_service([found], steps, resolution_kw)


def combine_service(parts: list[dict], steps, resolution_kw: float = 1.0) -> "pd.DataFrame":
    """``service_hosting``'s frame from the searches of its supply groups (the ``part``s' answers, in any order): per
    step the group that takes the least, the first in order on a tie; the power flows of all of them."""
    searches = sorted((s for part in parts for s in part["searches"]), key=lambda s: s["rank"])
    if len(searches) != parts[0]["groups"]:
        raise ValueError(f"service hosting: {len(searches)} of {parts[0]['groups']} supply groups searched")
    total_kw = parts[0]["total_kw"]
    n_steps = 1 if steps is None else len(steps)
    rows = []
    for k in range(n_steps):
        run = min((s["runs"][k] for s in searches), key=lambda r: r["chargers"])  # min keeps the first of equals
        b = run["binding"] or {}
        limited = run.get("note", "").startswith("no limit")
        rows.append({"step": None if steps is None else int(steps[k]), "service_mw": run["chargers"] * resolution_kw / 1000,
                     "fleet_mw": total_kw / 1000,
                     "binding_limit": "fleet headroom" if limited else b.get("limit", "none"),
                     "binding_element": "-" if limited else b.get("element", "-"), "value": b.get("value")})
    frame = pd.DataFrame(rows)
    frame.attrs["power_flows"] = sum(s["power_flows"] for s in searches)
    return frame
