"""What `import pandapower` costs a power flow: a reproducer for pandapower's maintainers that needs nothing but
pandapower (docs/upstream-pandapower.md).

    python benchmarks/pandapower_import.py [--repeat 5]

Each line is the median over ``--repeat`` fresh processes of the wall time of the import statements alone:

* ``import pandapower`` as released;
* the same with the package ``__init__`` of ``pandapower.plotting`` and of ``pandapower.estimation`` not run
  (their modules still import when something asks for one, as ``pandapower.create`` does for
  ``plotting.geo._is_valid_number``); the power flow of CIGRE MV that follows gives the same bus voltages and line
  loadings, bit for bit, so nothing a power flow runs needs them;
* the third-party modules those pull in, each imported after what a power flow needs anyway (numpy, pandas,
  scipy.sparse): ``matplotlib.pyplot`` (also imported by ``pandapower.control.util.auxiliary``) and
  ``scipy.stats`` (``pandapower.estimation``).
"""

import argparse
import json
import statistics
import subprocess
import sys

STUB = """
import importlib.util, sys, types
root = importlib.util.find_spec("pandapower").submodule_search_locations[0]
for name, path in (("pandapower.plotting", [root + "/plotting"]), ("pandapower.estimation", [root + "/estimation"])):
    module = types.ModuleType(name)
    module.__path__ = path  # a package whose __init__ never runs; its modules import as usual
    sys.modules[name] = module
"""

FLOW = """
import warnings
import pandapower.networks as pn
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    net = pn.create_cigre_network_mv(with_der=False)
    pandapower.runpp(net, numba=False)
result = {"vm_pu": net.res_bus.vm_pu.tolist(), "loading": net.res_line.loading_percent.tolist()}
"""

CASES = {
    "import pandapower": ("", "import pandapower", FLOW),
    "import pandapower, plotting and estimation __init__ not run": (STUB, "import pandapower", FLOW),
    "import matplotlib.pyplot (after numpy, pandas, scipy.sparse)": ("import numpy, pandas, scipy.sparse",
                                                                     "import matplotlib.pyplot", ""),
    "import scipy.stats (after numpy, pandas, scipy.sparse)": ("import numpy, pandas, scipy.sparse",
                                                               "import scipy.stats", ""),
}


def once(before: str, timed: str, after: str) -> tuple[float, dict | None]:
    code = (f"import time, json\n{before}\nt = time.perf_counter()\n{timed}\nwall = time.perf_counter() - t\n"
            f"result = None\n{after}\nprint(json.dumps({{'wall': wall, 'result': result}}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    data = json.loads(out.strip().splitlines()[-1])
    return data["wall"], data["result"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    import pandapower

    print(f"pandapower {pandapower.__version__}, Python {sys.version.split()[0]}; median of {args.repeat} processes")
    print("| import | wall (s) |\n|---|---|")
    results = {}
    for label, case in CASES.items():
        runs = [once(*case) for _ in range(args.repeat)]
        results[label] = runs[0][1]
        print(f"| {label} | {statistics.median(w for w, _ in runs):.2f} |", flush=True)
    full, stubbed = list(results.values())[:2]
    print("power flow of CIGRE MV the same, bit for bit, without them:", full == stubbed)


if __name__ == "__main__":
    main()
