"""Scale benchmark: a 60 s Dynamic Containment event for fleets of 100, 1,000 and 10,000 vehicles.

The fleet uses the model's features: 10 % spread, 90 % plugged in, departures drawn over 30-300 s
(some leave during the event), one group on AC chargers (6 A minimum, 1 A steps), 20 Hz telemetry.

For each size it times (1) the full co-simulation as ``v2g run`` does it (mosaik world, recorder,
HDF5, verdicts) and (2) a baseline measured in the same process: the same fleet model
(``sims.obc.ChargerFleet``) driven by the same dispatch, sampled at the same rate, plus the same
power flows (``sims.grid.GridSim``) called directly, with no mosaik, no recorder and no HDF5.
With a network profile (``--profile 4g``) it also times the same models including the SimPy
network driven directly, which isolates what mosaik costs. It prints wall times, power-flow counts
and the ratios; nothing is asserted.

    python benchmarks/bench_scale.py [--sizes 100 1000 10000] [--profile local]
"""

from __future__ import annotations

import argparse
import copy
import heapq
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cosim import run as runner  # noqa: E402
from cosim import scenario as scenario_mod  # noqa: E402
from cosim import world as world_builder  # noqa: E402
from sims import catalog  # noqa: E402
from sims.controller import dispatch, required_change_kw  # noqa: E402
from sims.grid import GridSim  # noqa: E402
from sims.network import NetworkSim  # noqa: E402
from sims.obc import OPTIONAL_PARAMETERS, PARAMETERS, ChargerFleet  # noqa: E402

MODELS = list(catalog.builtin_vehicles())


def scenario_dict(n: int, profile: str) -> dict:
    per = n // len(MODELS)
    counts = [per + (1 if i < n - per * len(MODELS) else 0) for i in range(len(MODELS))]
    return {
        "name": f"bench-{n}", "seed": 1, "duration_s": 60,
        "grid": {"network": "cigre_mv", "step_s": 1.0, "base_load_scale": 0.6},
        "fleet": {"assume_v2g": True, "spread_pct": 10, "telemetry_hz": 20, "groups": [
            {"model": m, "count": c, "charger_kw": 10, "bus": f"Bus {3 + i % 8}", "plugged_in_fraction": 0.9,
             "departure_s": [30, 300], "connection": "ac" if i == 0 else "dc"}
            for i, (m, c) in enumerate(zip(MODELS, counts)) if c]},
        "network": {"profile": profile},
        "frequency": {"events": [{"type": "step", "at_s": 5, "to_hz": 49.5, "hold_s": 30}]},
        "services": [{"id": "DC-L", "contracted_mw": round(n * 10 / 1000 * 0.8, 3)}],
    }


def baseline(loaded, vehicles: dict, with_network: bool = False) -> tuple[float, int]:
    """Same fleet model, same dispatch, same sampling and power flows, without mosaik; with
    ``with_network`` the setpoints also go through the same SimPy network model, driven directly."""
    sc = loaded.scenario
    t0 = time.perf_counter()
    fleet = ChargerFleet(**{k: vehicles[k] for k in (*PARAMETERS, *OPTIONAL_PARAMETERS)})
    buses = list(dict.fromkeys(str(b) for b in vehicles["bus"]))
    bus_index = np.array([buses.index(str(b)) for b in vehicles["bus"]])
    grid = GridSim()
    grid.init("grid", network=sc.grid.network, step_ms=round(sc.grid.step_s * 1000),
              base_load_scale=sc.grid.base_load_scale)
    grid.create(1, "Grid", ev_buses=[world_builder._bus_ref(b) for b in buses])
    nominal = catalog.nominal_hz()
    plugged = np.asarray(vehicles["plugged"], bool)
    lim = {k: np.where(plugged, np.asarray(vehicles[k], float), 0.0) for k in ("baseline_kw", "p_min_kw", "p_max_kw")}
    delay = loaded.network_profile["measurement_delay_ms"]
    from sims.frequency import build_profile

    changes = {t + delay: f for t, f in build_profile(loaded.frequency_events, nominal)}
    sent = lim["baseline_kw"].copy()
    flows = 0
    step, grid_step = sc.outputs.sample_ms, grid.step_ms
    until = round(sc.duration_s * 1000)
    net = None
    if with_network:
        net = NetworkSim()
        net.init("net", profile=loaded.network_profile, seed=[sc.seed, 2])
        net.create(1, "Network", cells=world_builder.cells_of(len(vehicles["bus"]), loaded.network_profile))
    pending = sorted(set(range(0, until, step)) | {t for t in changes if t < until})  # a heap
    net_next = None
    while pending:
        t = heapq.heappop(pending)
        if pending and pending[0] == t:
            continue
        fleet.advance(t)
        inputs = {}
        if t in changes:
            sp = dispatch(required_change_kw(loaded.services, changes[t], nominal), lim["baseline_kw"],
                          lim["p_min_kw"], lim["p_max_kw"])
            changed = np.flatnonzero(np.abs(sp - sent) > 1e-9)
            sent[changed] = sp[changed]
            if net is None:
                fleet.command(t, changed, sp[changed])
            else:
                inputs = {"network": {"setpoints": {"agg": {"vehicle": changed.tolist(), "kw": sp[changed].tolist()}}}}
        if net is not None and (inputs or t == net_next):
            net_next = net.step(t, inputs, t)
            delivered = net.get_data({}).get("network", {}).get("delivered")
            if delivered:
                fleet.command(t, delivered["vehicle"], delivered["kw"])
            if net_next is not None and net_next < until:
                heapq.heappush(pending, net_next)
        p = fleet.power_kw()
        per_bus = np.bincount(bus_index, weights=p, minlength=len(buses))
        if t % grid_step == 0:
            grid.step(t, {str(b): {"p_kw": {"fleet": per_bus[i]}} for i, b in enumerate(buses)}, until)
            flows += 1
    return time.perf_counter() - t0, flows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    ap.add_argument("--profile", default="local")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            path = Path(tmp) / f"bench-{n}.yaml"
            path.write_text(yaml.safe_dump(scenario_dict(n, args.profile)))
            loaded = scenario_mod.load(path)
            loaded.check_grid()
            t0 = time.perf_counter()
            verdicts = runner.run(loaded, Path(tmp) / f"out-{n}")
            full = time.perf_counter() - t0
            base, flows = baseline(copy.copy(loaded), world_builder.sample_fleet(loaded))
            line = (f"n={n:>6}: co-simulation {full:6.2f} s, numpy fleet + power flows {base:6.2f} s, "
                    f"ratio {full / base:5.2f}")
            if loaded.network_profile["hops"]:
                same, _ = baseline(copy.copy(loaded), world_builder.sample_fleet(loaded), with_network=True)
                line += f"; same models incl. SimPy network without mosaik {same:6.2f} s, ratio {full / same:5.2f}"
            rows.append((n, full, base, verdicts["grid"]["power_flows"], flows))
            print(f"{line}; power flows {verdicts['grid']['power_flows']} / {flows}", flush=True)
    by_n = {r[0]: r for r in rows}
    if 1000 in by_n and 10000 in by_n:
        print(f"10k/1k wall-time ratio: {by_n[10000][1] / by_n[1000][1]:.2f} (baseline {by_n[10000][2] / by_n[1000][2]:.2f})")


if __name__ == "__main__":
    main()
