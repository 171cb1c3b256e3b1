"""One very large world: in one process vs fleet, grid (and network) simulators in processes of their own.

    python benchmarks/bench_processes.py [--sizes 10000 100000] [--profile local]

Same scenario as bench_scale.py; prints wall times and the ratio separate / in-process. Nothing asserted.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_scale import scenario_dict  # noqa: E402
from v2g_testbed.cosim import run as runner  # noqa: E402
from v2g_testbed.cosim import scenario  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10000, 100000])
    ap.add_argument("--profile", default="local")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            path = Path(tmp) / f"big-{n}.yaml"
            data = scenario_dict(n, args.profile)
            data["outputs"] = {"plots": False, "vehicle_sample_ms": 1000}
            path.write_text(yaml.safe_dump(data))
            times = {}
            roles = "[fleet, grid, network]" if args.profile != "local" else "[fleet, grid]"
            for label, overrides in (("in-process", []), ("separate", [f"execution.separate_processes={roles}"])):
                loaded = scenario.load(path, overrides)
                loaded.check_grid()
                t0 = time.perf_counter()
                runner.run(loaded, Path(tmp) / f"out-{n}-{label}")
                times[label] = time.perf_counter() - t0
                print(f"n={n:>7} {label:10s}: {times[label]:7.2f} s", flush=True)
            print(f"n={n:>7} separate / in-process: {times['separate'] / times['in-process']:.2f}", flush=True)


if __name__ == "__main__":
    main()
