"""Throughput of many runs: a sweep and `--replicates`, runs per minute with 1 and 2 local workers, and the
ratio; both through the command line, as a user runs them (process start and imports included).

    python benchmarks/bench_sweep.py [--sweep scenarios/sweeps/dr-networks.yaml] [--replicates 24]
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from v2g_testbed.cosim import sweep  # noqa: E402


def cli_rate(args: list[str], runs: int) -> float:
    """Runs per minute of one `v2g` command run in a process of its own."""
    import subprocess

    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "v2g_testbed.cosim.cli", *args, "--quiet"], cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode not in (0, 1):
        raise RuntimeError(done.stderr[-400:])
    return runs / wall * 60


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweep", default=str(ROOT / "scenarios" / "sweeps" / "dr-networks.yaml"))
    ap.add_argument("--replicates", type=int, default=24)
    args = ap.parse_args()
    n_sweep = len(sweep.expand(Path(args.sweep))["runs"])
    for workers in (1, 2):
        with tempfile.TemporaryDirectory() as tmp:
            rate = cli_rate(["sweep", args.sweep, "--out", f"{tmp}/s", "--workers", str(workers)], n_sweep)
            print(f"v2g sweep, {workers} worker(s): {n_sweep} runs, {rate:.1f} runs/min", flush=True)
            rate = cli_rate(["run", str(ROOT / "scenarios" / "hub-dr-4g.yaml"), "--replicates", str(args.replicates),
                             "--workers", str(workers), "--out", f"{tmp}/r"], args.replicates)
            print(f"v2g run --replicates {args.replicates}, {workers} worker(s): {rate:.1f} runs/min", flush=True)


if __name__ == "__main__":
    main()
