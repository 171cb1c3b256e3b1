"""Power flows of the hosting-capacity search against a linear scan in 10 kW steps, same placements.

    python benchmarks/bench_hosting.py [--placements 5] [--scenario scenarios/mv-feeder-end-dr.yaml]
    python benchmarks/bench_hosting.py --scenario scenarios/lv-homes-fcrd.yaml   # unbalanced, single-phase

Prints, per feeder and direction, the capacity found both ways (they must agree) and the power-flow
counts; nothing is asserted.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from v2g_testbed.analysis import hosting  # noqa: E402
from v2g_testbed.cosim import scenario  # noqa: E402
from v2g_testbed.sims import PHASES  # noqa: E402
from v2g_testbed.sims.fleet import charger_power, single_phase  # noqa: E402
from v2g_testbed.sims.grid import load_network, single_phase_loads  # noqa: E402


def linear(feeder, order, shares, charger_kw, sign, n_max):
    for n in range(0, n_max + 1):
        if feeder.check(hosting.powers(order, shares, n, len(feeder.buses), sign * charger_kw)) is not None:
            return n - 1
    return n_max


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default=str(ROOT / "scenarios" / "mv-feeder-end-dr.yaml"))
    ap.add_argument("--placements", type=int, default=3)
    args = ap.parse_args()
    loaded = scenario.load(args.scenario)
    loaded.check_grid()
    sc = loaded.scenario
    net = load_network(sc.grid.network, loaded.base_dir)
    for table in ("load", "asymmetric_load"):
        net[table]["scaling"] *= sc.grid.base_load_scale
    group = loaded.groups[0]
    limits, kw = sc.grid.limits.model_dump(), charger_power(group)[0]
    phase = group["phase"] if single_phase(group) else None
    unbalanced = loaded.power_flow == "unbalanced"
    print(f"{sc.grid.network}: {kw:g} kW chargers, {loaded.power_flow} power flow")
    rng = np.random.default_rng(1)
    total_search = total_linear = 0
    phases = {b: PHASES.index(p) for b, p in single_phase_loads(net).items()}
    for name, buses in hosting.feeders(net, "loads").items():
        feeder = hosting.WholeNetworkCheck(net, buses, limits, unbalanced)
        bus_phase = np.array([phases.get(b, -1) for b in buses])
        for direction, sign in (("import", 1), ("export", -1)):
            for m in range(args.placements):
                order = rng.integers(0, len(buses), 5000)
                shares = hosting.phase_shares(rng, 5000, phase, bus_phase, order)
                feeder.flows, t0 = 0, time.perf_counter()
                found = hosting.capacity(feeder, order, shares, kw, sign, 5000)["chargers"]
                search, t_search = feeder.flows, time.perf_counter() - t0
                feeder.flows, t0 = 0, time.perf_counter()
                scanned = linear(feeder, order, shares, kw, sign, 5000)
                scan, t_scan = feeder.flows, time.perf_counter() - t0
                total_search, total_linear = total_search + search, total_linear + scan
                print(f"{name:10s} {direction:6s} placement {m}: capacity {found} (scan {scanned}); power flows "
                      f"{search} vs {scan} ({search / scan:.3f}); {t_search:.2f} s vs {t_scan:.2f} s", flush=True)
            feeder.reset()
    print(f"total power flows: search {total_search}, linear scan {total_linear}, ratio {total_search / total_linear:.3f}")


if __name__ == "__main__":
    main()
