"""A warm run of the shipped DR hub (scenarios/hub-dr-4g.yaml: 120 cars over 4G, CIGRE MV, 30 power flows) in
this process, per grid solver, against a fixed CPU yardstick measured in the same process (10 million Python
additions), so the figure compares across machines: ``python benchmarks/bench_warm_run.py [--runs 7]``.

The grid step's cost is the point (issue 27): ``zbus`` (the default: a Z-bus model on pandapower's own matrices,
built once per run, only the chargers' injections changing per step, results as arrays) against ``runpp`` every
step through lightsim2grid and through pandapower's Newton-Raphson. Each solver's runs alternate with the others'
(first run of each discarded: imports and caches), and the median is reported.
"""

from __future__ import annotations

import argparse
import pathlib
import statistics
import tempfile
import time

from v2g_testbed.cosim import run as runner
from v2g_testbed.cosim import scenario

ROOT = pathlib.Path(__file__).resolve().parents[1]


def yardstick() -> float:
    started, total = time.perf_counter(), 0
    for i in range(10_000_000):
        total += i
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--solvers", nargs="+", default=["zbus", "lightsim2grid", "pandapower"])
    args = parser.parse_args()
    loaded = {s: scenario.load(ROOT / "scenarios" / "hub-dr-4g.yaml", [f"grid.solver={s}", "outputs.plots=false"])
              for s in args.solvers}
    times = {s: [] for s in args.solvers}
    flows = {s: set() for s in args.solvers}  # (power flows, not converged) of each solver's runs
    yard = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.runs + 1):
            yard.append(yardstick())
            for s in args.solvers:
                started = time.perf_counter()
                grid = runner.run(loaded[s], pathlib.Path(tmp) / f"{s}-{k}")["grid"]
                if k:  # the first run of each pays imports and caches
                    times[s].append(time.perf_counter() - started)
                flows[s].add((grid["power_flows"], grid["non_converged"]))
    y = statistics.median(yard)
    print(f"yardstick (10 million Python additions): {y:.3f} s")
    print("| solver | warm run (median) | in yardsticks | vs zbus | power flows (not converged) |")
    print("|---|---|---|---|---|")
    base = statistics.median(times[args.solvers[0]])
    for s in args.solvers:
        m = statistics.median(times[s])
        counts = ", ".join(f"{n} ({bad})" for n, bad in sorted(flows[s]))
        print(f"| {s} | {m:.3f} s | {m / y:.2f} | {m / base:.2f} | {counts} |")


if __name__ == "__main__":
    main()
