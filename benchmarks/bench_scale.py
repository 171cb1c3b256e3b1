"""Scale benchmark: a 60 s Dynamic Containment event for fleets of 100, 1,000 and 10,000 vehicles.

The fleet uses the model's features: 10 % spread, 90 % plugged in, departures drawn over 30-300 s
(some leave during the event), one group on AC chargers (6 A minimum, 1 A steps), 20 Hz telemetry.

For each size it times (1) the full co-simulation as ``v2g run`` does it (mosaik world, recorder,
HDF5, verdicts) and (2) a baseline measured in the same process: the same fleet model
(``v2g_testbed.sims.obc.ChargerFleet``) driven by the same dispatch, its total sampled at the same rate, plus the same
power flows (``v2g_testbed.sims.grid.GridSim``) called directly, with no mosaik, no recorder and no HDF5 (the floor).
With a network profile (``--profile 4g``) it also times the same models including the SimPy
network driven directly, which isolates what mosaik costs. It prints wall times, power-flow counts
and the ratios; nothing is asserted.

    python benchmarks/bench_scale.py [--sizes 1000 10000 100000 1000000] [--profile local]

It also runs ``v2g run`` on each scenario in a process of its own, as a user does, and reports its wall
and CPU time and peak RSS (``os.wait4``): the scaling table of the README.
"""

from __future__ import annotations

import argparse
import copy
import heapq
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from v2g_testbed.cosim import run as runner  # noqa: E402
from v2g_testbed.cosim import scenario as scenario_mod  # noqa: E402
from v2g_testbed.cosim import world as world_builder  # noqa: E402
from v2g_testbed.sims import catalog  # noqa: E402
from v2g_testbed.sims.controller import dispatch, required_change_kw  # noqa: E402
from v2g_testbed.sims.grid import GridSim  # noqa: E402
from v2g_testbed.sims.network import NetworkSim  # noqa: E402
from v2g_testbed.sims.obc import OPTIONAL_PARAMETERS, PARAMETERS, ChargerFleet  # noqa: E402

MODELS = list(catalog.builtin_vehicles())
PER_COPY = 1000  # vehicles per copy of the CIGRE MV network


def timed(*argv) -> dict:
    """``argv`` in a process of its own: wall and CPU seconds (``os.wait4``), peak RSS in MB."""
    import os
    import subprocess

    t0 = time.perf_counter()
    proc = subprocess.Popen([str(a) for a in argv], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        raise RuntimeError(f"{' '.join(map(str, argv))} failed: {proc.stderr.read().decode()[-400:]}")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss_mb": usage.ru_maxrss / 1024}


def timed_cli(*args) -> dict:
    """``v2g ARGS`` in a process of its own (see ``timed``)."""
    return timed(sys.executable, "-m", "v2g_testbed.cosim.cli", *args)


def scenario_dict(n: int, profile: str) -> dict:
    """The scale scenario for ``n`` vehicles (``profile``: the network profile)."""
    per = n // len(MODELS)
    counts = [per + (1 if i < n - per * len(MODELS) else 0) for i in range(len(MODELS))]
    return {
        "name": f"bench-{n}", "seed": 1, "duration_s": 60,
        # the grid sized to the fleet: CIGRE MV carries a thousand of these chargers (9 MW at most) and solves;
        # a larger fleet is as many identical copies of it, each with its share (grid.copies)
        "grid": {"network": "cigre_mv", "step_s": 1.0, "base_load_scale": 0.6, "copies": max(1, n // PER_COPY)},
        "fleet": {"assume_v2g": True, "spread_pct": 10, "telemetry_hz": 20, "groups": [
            {"model": m, "count": c, "charger_kw": 10, "bus": f"Bus {3 + i % 8}", "plugged_in_fraction": 0.9,
             "departure_s": [30, 300], "connection": "ac" if i == 0 else "dc"}
            for i, (m, c) in enumerate(zip(MODELS, counts)) if c]},
        "network": {"profile": profile},
        "frequency": {"events": [{"type": "step", "at_s": 5, "to_hz": 49.5, "hold_s": 30}]},
        "services": [{"id": "DC-L", "contracted_mw": round(n * 10 / 1000 * 0.8, 3)}],
    }


def baseline(loaded, vehicles: dict, with_network: bool = False) -> tuple[float, int, int]:
    """Same fleet model, same dispatch, same sampling and power flows (the grid simulator's own solver, called
    directly), without mosaik; with ``with_network`` the setpoints also go through the same SimPy network model,
    driven directly. Returns seconds, power flows and how many of them did not converge."""
    sc = loaded.scenario
    t0 = time.perf_counter()
    fleet = ChargerFleet(**{k: vehicles[k] for k in (*PARAMETERS, *OPTIONAL_PARAMETERS)})
    buses = list(dict.fromkeys(str(b) for b in vehicles["bus"]))
    bus_index = np.array([buses.index(str(b)) for b in vehicles["bus"]])
    grid = GridSim()
    grid.init("grid", network=sc.grid.network, step_ms=round(sc.grid.step_s * 1000),
              base_load_scale=sc.grid.base_load_scale, power_flow=loaded.power_flow, solver=loaded.solver,
              copies=sc.grid.copies)
    grid.create(1, "Grid", ev_buses=[world_builder._bus_ref(b) for b in buses])
    nominal = catalog.nominal_hz()
    plugged = np.asarray(vehicles["plugged"], bool)
    lim = {k: np.where(plugged, np.asarray(vehicles[k], float), 0.0) for k in ("baseline_kw", "p_min_kw", "p_max_kw")}
    delay = loaded.network_profile["measurement_delay_ms"]
    from v2g_testbed.sims.frequency import build_profile

    changes = {t + delay: f for t, f in build_profile(loaded.frequency_events, nominal)}
    sent = lim["baseline_kw"].copy()
    flows = failed = 0
    step, grid_step = sc.outputs.sample_ms, grid.step_ms
    until = round(sc.duration_s * 1000)
    net = None
    if with_network:
        net = NetworkSim()
        net.init("net", profile=loaded.network_profile, seed=[sc.seed, 2])
        net.create(1, "Network", cells=world_builder.cells_of(len(vehicles["bus"]), loaded.network_profile))
    # the moments something happens (a frequency change reaching the aggregator, a network step, a power flow); the
    # 10 ms totals in between are taken together, as the fleet simulator takes them (ChargerFleet.total_power_at)
    pending = sorted(set(range(0, until, grid_step)) | {t for t in changes if t < until})  # a heap
    samples = np.arange(0, until, step)
    taken = 0  # samples[:taken] are taken
    net_next = None
    while pending:
        t = heapq.heappop(pending)
        if pending and pending[0] == t:
            continue
        before = int(np.searchsorted(samples, t))
        if before > taken:
            fleet.total_power_at(samples[taken:before])
            taken = before
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
        if taken < samples.size and samples[taken] == t:
            fleet.total_power_kw()  # the 10 ms fleet total at this moment (after its setpoints, as in the simulator)
            taken += 1
        if t % grid_step == 0:
            per_bus = np.bincount(bus_index, weights=fleet.power_kw(), minlength=len(buses))
            grid.step(t, {str(b): {"p_kw": {"fleet": per_bus[i]}} for i, b in enumerate(buses)}, until)
            flows += 1
            failed += not grid.converged
    if taken < samples.size:
        fleet.total_power_at(samples[taken:])
    return time.perf_counter() - t0, flows, failed


def cli_run(path: Path, out: Path) -> dict:
    """``v2g run`` as a user runs it, in a process of its own: wall and CPU seconds, peak RSS."""
    return timed_cli("run", path, "--out", out, "--quiet")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    ap.add_argument("--profile", default="local")
    ap.add_argument("--repeat", type=int, default=3, help="co-simulation/floor pairs per size (medians reported)")
    args = ap.parse_args()
    print("vehicles | grid copies | v2g run: wall s | CPU s | peak RSS MB | KB/vehicle | co-simulation (warm) s | "
          "fleet model + power flows s | ratio (median of pairs, range) | power flows (co-sim / floor) | "
          "not converged (co-sim / floor)", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            path = Path(tmp) / f"bench-{n}.yaml"
            path.write_text(yaml.safe_dump(scenario_dict(n, args.profile)))
            cli = cli_run(path, Path(tmp) / f"cli-{n}")
            loaded = scenario_mod.load(path)
            loaded.check_grid()
            fulls, bases, ratios = [], [], []
            for r in range(args.repeat):  # pairs, alternating, so a noisy neighbour hits both sides alike
                t0 = time.perf_counter()
                verdicts = runner.run(loaded, Path(tmp) / f"out-{n}-{r}")  # plots as the CLI makes them (none)
                fulls.append(time.perf_counter() - t0)
                shutil.rmtree(Path(tmp) / f"out-{n}-{r}", ignore_errors=True)
                base, flows, failed = baseline(copy.copy(loaded), world_builder.sample_fleet(loaded))
                bases.append(base)
                ratios.append(fulls[-1] / base)
            full, base, ratio = (float(np.median(x)) for x in (fulls, bases, ratios))
            line = (f"{n:>9,} | {loaded.scenario.grid.copies:>6,} | {cli['wall']:7.2f} | {cli['cpu']:7.2f} | "
                    f"{cli['rss_mb']:7.0f} | {cli['rss_mb'] * 1024 / n:6.1f} | {full:7.2f} | {base:7.2f} | {ratio:5.2f} "
                    f"({min(ratios):.2f}-{max(ratios):.2f}) | {verdicts['grid']['power_flows']} / {flows} | "
                    f"{verdicts['grid']['non_converged']} / {failed}")
            if loaded.network_profile["hops"]:
                same, _, _ = baseline(copy.copy(loaded), world_builder.sample_fleet(loaded), with_network=True)
                line += f" | same models incl. SimPy network without mosaik {same:6.2f} s, ratio {full / same:5.2f}"
            print(line, flush=True)
            shutil.rmtree(Path(tmp) / f"cli-{n}", ignore_errors=True)


if __name__ == "__main__":
    main()
