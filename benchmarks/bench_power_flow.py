"""Cost of a power flow by solver: balanced (pandapower, lightsim2grid) and unbalanced, same feeder and loads.

    python benchmarks/bench_power_flow.py [--network ieee_eu_lv] [--flows 40]

Each variant solves the same sequence of load changes: chargers of 7.4 kW switched on one by one,
one per house on its house's phase (on a network without single-phase houses: one per load bus,
phases in turn). The unbalanced variants run only where the network has zero-sequence data. Time per
power flow, and its ratio to the balanced power flow reusing its previous solution with pandapower's
own solver (what ``GridSim`` runs in a balanced world without lightsim2grid). Nothing is asserted.
"""

import argparse
import importlib.util
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from v2g_testbed.sims import PHASES  # noqa: E402
from v2g_testbed.sims.grid import load_network, run_power_flow, single_phase_loads, zero_sequence_missing  # noqa: E402


def timed(net, flows, solve, set_load):
    t0 = time.perf_counter()
    for k in range(flows):
        set_load(k)
        solve(k)
    return (time.perf_counter() - t0) / flows


def main():
    import pandapower as pp

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--network", default="ieee_eu_lv")
    ap.add_argument("--flows", type=int, default=40)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    numba = importlib.util.find_spec("numba") is not None
    net = load_network(args.network)
    # chargers at the houses (single-phase loads), or at every load bus, phases in turn
    homes = single_phase_loads(net) or {int(b): PHASES[i % 3] for i, b in enumerate(net.load.bus.unique())}
    buses, phase = list(homes), [PHASES.index(p) for p in homes.values()]
    sym = [pp.create_load(net, bus=b, p_mw=0.0) for b in buses]
    asym = [pp.create_asymmetric_load(net, bus=b) for b in buses]

    def set_sym(k):
        net.load.loc[sym, "p_mw"] = np.where(np.arange(len(buses)) < k % len(buses), 0.0074, 0.0)

    def set_asym(k):
        on = np.arange(len(buses)) < k % len(buses)
        for j, p in enumerate(PHASES):
            net.asymmetric_load.loc[asym, f"p_{p}_mw"] = np.where(on & (np.array(phase) == j), 0.0074, 0.0)

    net.asymmetric_load.loc[asym, ["p_a_mw", "p_b_mw", "p_c_mw"]] = 0.0
    variants = {
        "balanced, recycled": (set_sym, lambda k: run_power_flow(net, False, k > 0, "pandapower")),
        "balanced, fresh": (set_sym, lambda k: run_power_flow(net, False, False, "pandapower")),
    }
    if not zero_sequence_missing(net):
        variants["unbalanced, recycled"] = (set_asym, lambda k: run_power_flow(net, True, k > 0))
        variants["unbalanced, fresh"] = (set_asym, lambda k: run_power_flow(net, True, False))
    if importlib.util.find_spec("lightsim2grid"):
        variants["balanced, lightsim2grid, recycled"] = (set_sym, lambda k: run_power_flow(net, False, k > 0, "lightsim2grid"))
    print(f"{args.network}: {len(net.bus)} buses, {len(buses)} single-phase chargers, numba {'on' if numba else 'off'}")
    base = None
    for name, (set_load, solve) in variants.items():
        net.load.loc[sym, "p_mw"] = 0.0
        net.asymmetric_load.loc[asym, ["p_a_mw", "p_b_mw", "p_c_mw"]] = 0.0
        per_flow = timed(net, args.flows, solve, set_load)
        base = base or per_flow
        print(f"{name:34s} {per_flow * 1000:7.1f} ms per power flow, ratio {per_flow / base:.2f}", flush=True)


if __name__ == "__main__":
    main()
