"""Throughput of many runs: a sweep and `--replicates`, runs per minute with 1 and 2 local workers, and the
ratio; both through the command line, as a user runs them (process start and imports included).

    python benchmarks/bench_sweep.py [--sweep scenarios/sweeps/dr-networks.yaml] [--replicates 24]

One reading is not a figure on a shared machine: ``--against REV`` runs the two-worker commands of this tree and
of git revision REV in alternation (``--pairs`` times, REV's code as ``benchmarks/revision.py`` puts it first), and
reports both sides' medians and their ratio. Against 930f6a1, issue 27's starting code, the ratio says what this
tree gives on the machine of that issue's figures (219 sweep and 170 replicate runs/min with two workers there).
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from v2g_testbed.cosim import sweep  # noqa: E402


def cli_rate(args: list[str], runs: int, env: dict | None = None) -> float:
    """Runs per minute of one `v2g` command run in a process of its own."""
    import subprocess

    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "v2g_testbed.cosim.cli", *args, "--quiet"], cwd=ROOT, capture_output=True,
                          text=True, env=env)
    wall = time.perf_counter() - t0
    if done.returncode not in (0, 1):
        raise RuntimeError(done.stderr[-400:])
    return runs / wall * 60


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweep", default=str(ROOT / "scenarios" / "sweeps" / "dr-networks.yaml"))
    ap.add_argument("--replicates", type=int, default=24)
    ap.add_argument("--against", metavar="REV", help="a git revision to measure in alternation with this tree")
    ap.add_argument("--pairs", type=int, default=3, help="with --against: alternating pairs of each command")
    args = ap.parse_args()
    n_sweep = len(sweep.expand(Path(args.sweep))["runs"])
    if args.against:
        against(args, n_sweep)
        return
    for workers in (1, 2):
        with tempfile.TemporaryDirectory() as tmp:
            rate = cli_rate(["sweep", args.sweep, "--out", f"{tmp}/s", "--workers", str(workers)], n_sweep)
            print(f"v2g sweep, {workers} worker(s): {n_sweep} runs, {rate:.1f} runs/min", flush=True)
            rate = cli_rate(["run", str(ROOT / "scenarios" / "hub-dr-4g.yaml"), "--replicates", str(args.replicates),
                             "--workers", str(workers), "--out", f"{tmp}/r"], args.replicates)
            print(f"v2g run --replicates {args.replicates}, {workers} worker(s): {rate:.1f} runs/min", flush=True)


def against(args, n_sweep: int) -> None:
    """The two-worker sweep and replicates of this tree and of ``args.against``, alternating."""
    import os
    import statistics

    from revision import code_of

    commands = {"sweep": (lambda out: ["sweep", args.sweep, "--out", out, "--workers", "2"], n_sweep),
                "replicates": (lambda out: ["run", str(ROOT / "scenarios" / "hub-dr-4g.yaml"), "--replicates",
                                            str(args.replicates), "--workers", "2", "--out", out], args.replicates)}
    rates = {(what, side): [] for what in commands for side in ("this tree", args.against)}
    with code_of(args.against) as env_rev, tempfile.TemporaryDirectory() as tmp:
        sides = [("this tree", dict(os.environ)), (args.against, env_rev)]
        for k in range(args.pairs):
            for side, env in sides if k % 2 == 0 else sides[::-1]:
                for what, (command, runs) in commands.items():
                    rate = cli_rate(command(f"{tmp}/{what}-{side}-{k}"), runs, env)
                    rates[what, side].append(rate)
                    print(f"  pair {k + 1}, {side}, {what}: {rate:.1f} runs/min", flush=True)
    print(f"| two workers | this tree, runs/min (median of {args.pairs}) | {args.against} | ratio |")
    print("|---|---|---|---|")
    for what in commands:
        mine, theirs = statistics.median(rates[what, "this tree"]), statistics.median(rates[what, args.against])
        print(f"| {what} | {mine:.1f} | {theirs:.1f} | {mine / theirs:.2f} |")


if __name__ == "__main__":
    main()
