"""Cold start: ``v2g run scenarios/hub-dc-local.yaml`` in a fresh process against ``python -c "import pandapower"``.

Both run as processes of their own, alternating in pairs so a noisy neighbour hits both alike; it reports the
median wall time of each, the median of the per-pair ratios (with their range) and each side's peak RSS
(``os.wait4``). Nothing is asserted. Issue 16's target: the run within 1.5x the import.

    python benchmarks/bench_cold.py [--pairs 7] [--scenario scenarios/hub-dc-local.yaml]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_scale import timed, timed_cli  # noqa: E402  (the same measurement as the other benchmarks)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=7)
    ap.add_argument("--scenario", default=str(ROOT / "scenarios" / "hub-dc-local.yaml"))
    args = ap.parse_args()
    runs, imports = [], []
    with tempfile.TemporaryDirectory() as tmp:
        timed_cli("run", args.scenario, "--out", f"{tmp}/warm", "--quiet")  # bytecode compiled, files cached
        for k in range(args.pairs):
            imports.append(timed(sys.executable, "-c", "import pandapower"))
            runs.append(timed_cli("run", args.scenario, "--out", f"{tmp}/run-{k}", "--quiet"))
    ratios = [r["wall"] / i["wall"] for r, i in zip(runs, imports)]
    med = lambda rows, key: float(np.median([r[key] for r in rows]))  # noqa: E731
    print(f"python -c 'import pandapower': {med(imports, 'wall'):.2f} s, peak RSS {med(imports, 'rss_mb'):.0f} MB")
    print(f"v2g run {Path(args.scenario).name}: {med(runs, 'wall'):.2f} s, peak RSS {med(runs, 'rss_mb'):.0f} MB")
    print(f"ratio (median of {args.pairs} pairs): {np.median(ratios):.2f} (range {min(ratios):.2f}-{max(ratios):.2f})")


if __name__ == "__main__":
    main()
