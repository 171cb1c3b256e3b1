"""A warm run of the shipped DR hub (scenarios/hub-dr-4g.yaml: 120 cars over 4G, CIGRE MV, 30 power flows) in
this process, per grid solver, against a fixed CPU yardstick measured in the same process (10 million Python
additions), so the figure compares across machines: ``python benchmarks/bench_warm_run.py [--runs 7]``.

The grid step's cost is the point (issue 27): ``zbus`` (the default: a Z-bus model on pandapower's own matrices,
built once per run, only the chargers' injections changing per step, results as arrays) against ``runpp`` every
step through lightsim2grid and through pandapower's Newton-Raphson. Each solver's runs alternate with the others'
(first run of each discarded: imports and caches), and the median is reported.

On a shared machine one reading is not a figure (the same code read 0.93-1.18 yardsticks over a day): ``--against
REV`` measures this tree and git revision REV in alternating pairs, each side a process of its own importing its own
code (REV's ``sims``, ``analysis`` and ``cosim`` from ``git archive``, put first on the path), and reports both
sides' medians and their ratio: ``python benchmarks/bench_warm_run.py --against 7256475 [--pairs 6]``.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]


def yardstick() -> float:
    started, total = time.perf_counter(), 0
    for i in range(10_000_000):
        total += i
    return time.perf_counter() - started


def measure(runs: int, solvers: list[str]) -> dict:
    """Warm runs of each solver and yardsticks, alternating, in this process: medians, and each solver's power
    flows (with how many did not converge)."""
    from v2g_testbed.cosim import run as runner
    from v2g_testbed.cosim import scenario

    loaded = {s: scenario.load(ROOT / "scenarios" / "hub-dr-4g.yaml", [f"grid.solver={s}", "outputs.plots=false"])
              for s in solvers}
    times = {s: [] for s in solvers}
    flows = {s: set() for s in solvers}  # (power flows, not converged) of each solver's runs
    yard = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(runs + 1):
            yard.append(yardstick())
            for s in solvers:
                started = time.perf_counter()
                grid = runner.run(loaded[s], pathlib.Path(tmp) / f"{s}-{k}")["grid"]
                if k:  # the first run of each pays imports and caches
                    times[s].append(time.perf_counter() - started)
                flows[s].add((grid["power_flows"], grid["non_converged"]))
    code = pathlib.Path(sys.modules["v2g_testbed.sims"].__file__).resolve().parents[1]  # whose code ran
    return {"yardstick_s": statistics.median(yard), "run_s": {s: statistics.median(times[s]) for s in solvers},
            "flows": {s: sorted(flows[s]) for s in solvers}, "code": str(code)}


def table(result: dict) -> None:
    y, solvers = result["yardstick_s"], list(result["run_s"])
    print(f"yardstick (10 million Python additions): {y:.3f} s")
    print("| solver | warm run (median) | in yardsticks | vs zbus | power flows (not converged) |")
    print("|---|---|---|---|---|")
    base = result["run_s"][solvers[0]]
    for s in solvers:
        m = result["run_s"][s]
        counts = ", ".join(f"{n} ({bad})" for n, bad in result["flows"][s])
        print(f"| {s} | {m:.3f} s | {m / y:.2f} | {m / base:.2f} | {counts} |")


def against(rev: str, pairs: int, runs: int) -> None:
    """This tree and ``rev`` in alternating pairs of processes, zbus only."""
    from revision import code_of

    command = [sys.executable, __file__, "--json", "--runs", str(runs), "--solvers", "zbus"]
    ratios = {"this tree": [], rev: []}
    with code_of(rev) as env_rev:
        for k in range(pairs):
            for name, env in (("this tree", dict(os.environ)), (rev, env_rev)) if k % 2 == 0 else \
                    ((rev, env_rev), ("this tree", dict(os.environ))):
                done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
                result = json.loads(done.stdout.splitlines()[-1])
                ratios[name].append(result["run_s"]["zbus"] / result["yardstick_s"])
                print(f"  pair {k + 1}, {name} ({result['code']}): {ratios[name][-1]:.2f} yardsticks, power flows "
                      f"(not converged) {result['flows']['zbus']}", flush=True)
    mine, theirs = statistics.median(ratios["this tree"]), statistics.median(ratios[rev])
    print(f"| code | warm DR hub, yardsticks (median of {pairs}) | range |")
    print("|---|---|---|")
    for name, values in ratios.items():
        print(f"| {name} | {statistics.median(values):.2f} | {min(values):.2f}-{max(values):.2f} |")
    print(f"this tree / {rev}: {mine / theirs:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--solvers", nargs="+", default=["zbus", "lightsim2grid", "pandapower"])
    parser.add_argument("--against", metavar="REV", help="a git revision to measure in alternation with this tree")
    parser.add_argument("--pairs", type=int, default=6, help="with --against: alternating pairs of processes")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # one side of --against
    args = parser.parse_args()
    if args.against:
        against(args.against, args.pairs, args.runs)
        return
    result = measure(args.runs, args.solvers)
    print(json.dumps(result)) if args.json else table(result)


if __name__ == "__main__":
    main()
