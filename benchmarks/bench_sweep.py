"""Sweep throughput: runs per minute with 1 and 2 local workers on the same sweep, and the ratio.

    python benchmarks/bench_sweep.py [--sweep scenarios/sweeps/dr-networks.yaml]
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cosim import sweep  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweep", default=str(ROOT / "scenarios" / "sweeps" / "dr-networks.yaml"))
    args = ap.parse_args()
    rates = {}
    for workers in (1, 2):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            rows = sweep.sweep(Path(args.sweep), Path(tmp) / "out", workers=workers)
            wall = time.perf_counter() - t0
        rates[workers] = len(rows) / wall * 60
        print(f"{workers} worker(s): {len(rows)} runs in {wall:.1f} s = {rates[workers]:.1f} runs/min", flush=True)
    print(f"scaling 2 vs 1 workers: {rates[2] / rates[1]:.2f}")


if __name__ == "__main__":
    main()
