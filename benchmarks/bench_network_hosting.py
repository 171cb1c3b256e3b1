"""Hosting capacity of a whole real network, and of a year, through the command line (issue 15).

    python benchmarks/bench_network_hosting.py [--sample-every 60] [--skip-year]

1. ``v2g hosting-capacity`` on SimBench ``1-MVLV-semiurb-all-0-sw`` (9,099 buses, 546 LV feeders), 20
   placements, import and export, in a process of its own (wall, CPU, peak RSS by ``os.wait4``), against,
   measured in the same run:
   - the same number of whole-network power flows through ``pandapower.runpp`` (lightsim2grid, as the
     whole-network search solves them): a sample of runpp calls timed, times the flows the study took;
   - the whole-network search (``--method whole-network``) on every ``--sample-every``-th feeder, scaled to
     all feeders; its answers are compared with the subnetwork study's for those feeders.
   And the same study over worker processes (``--workers 2``) and on a Dask ``LocalCluster`` (two worker processes),
   with and without ``grid.profile_time``: wall against one process in the same run, identical answers, and the
   peak RSS of the largest process (the CLI's and its workers', by ``os.wait4``; the cluster's workers report
   their own peak).
2. A year of quarter-hours for every feeder of ``1-LV-rural1--0-sw`` and ``1-MV-semiurb--0-sw``
   (``--times year``), against the targets of 2 and 10 minutes.

Nothing is asserted; the figures go to the README.
"""

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import yaml

from bench_scale import timed_cli  # the same measurement of a CLI command

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MVLV = "simbench:1-MVLV-semiurb-all-0-sw"


def scenario(path: Path, network: str, bus: str, name: str, **grid) -> Path:
    data = {"name": name, "seed": 1, "duration_s": 10, "grid": {"network": network, "power_flow": "balanced", **grid},
            "fleet": {"assume_v2g": True, "groups": [{"model": "Nissan Ariya", "count": 10, "charger_kw": 11, "bus": bus}]},
            "network": {"profile": "local"}, "frequency": {"events": [{"type": "step", "at_s": 1, "to_hz": 49.5}]},
            "services": [{"id": "DC-L", "contracted_mw": 0.1}]}
    path.write_text(yaml.safe_dump(data))
    return path


def cli(*args) -> dict:
    """``v2g hosting-capacity ...`` in a process of its own: wall and CPU seconds, peak RSS (MB)."""
    return timed_cli("hosting-capacity", *args, "--quiet")


def runpp_seconds(samples: int = 20) -> float:
    """Median seconds of one whole-network ``runpp`` of the MVLV network (lightsim2grid, loads changed each time)."""
    import numpy as np
    import pandapower as pp

    from v2g_testbed.sims.grid import load_network

    net = load_network(MVLV)
    rng = np.random.default_rng(0)
    base = net.load.p_mw.to_numpy().copy()
    times = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pp.runpp(net, lightsim2grid=True, numba=False)
        for _ in range(samples):
            net.load.p_mw = base * (1 + 0.1 * rng.random(len(base)))
            t0 = time.perf_counter()
            pp.runpp(net, lightsim2grid=True, numba=False, init="results")
            times.append(time.perf_counter() - t0)
    return float(np.median(times))


def workers_study(tmp: Path, placements: int) -> None:
    """The 546-feeder study in one process, on two worker processes, and on a two-worker Dask cluster, with and
    without grid.profile_time: wall, the largest process's peak RSS, and whether the answers are the same."""
    import threading

    from dask.distributed import LocalCluster

    print(f"{MVLV}, {placements} placements, import and export:")
    print(f"{'':44s} {'wall s':>8s} {'x 1 proc':>8s} {'peak MB':>8s}  answers")
    for label, grid in (("", {}), (", profile_time 2016-01-13T18:00", {"profile_time": "2016-01-13T18:00"})):
        path = scenario(tmp / "mvlv-w.yaml", MVLV, "MV2.101 Bus 4", "mvlv", **grid)
        one = cli(path, "--placements", placements, "--out", tmp / "w1")
        first = json.loads((tmp / "w1" / "hosting_capacity.json").read_text())
        two = cli(path, "--placements", placements, "--workers", 2, "--out", tmp / "w2")
        same2 = json.loads((tmp / "w2" / "hosting_capacity.json").read_text()) == first
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                          memory_limit=0) as cluster:
            peak = {"mb": 0.0}
            stop = threading.Event()

            def watch():  # the cluster's workers' resident memory, every half second
                from dask.distributed import Client

                with Client(cluster.scheduler_address) as client:
                    while not stop.wait(0.5):
                        info = client.scheduler_info()["workers"].values()
                        peak["mb"] = max([peak["mb"], *(w["metrics"]["memory"] / 2**20 for w in info)])

            watcher = threading.Thread(target=watch)
            watcher.start()
            dask = cli(path, "--placements", placements, "--scheduler", cluster.scheduler_address, "--out", tmp / "wd")
            stop.set()
            watcher.join()
        same_d = json.loads((tmp / "wd" / "hosting_capacity.json").read_text()) == first
        for name, run, same, rss in (("1 process", one, True, one["rss_mb"]),
                                     ("--workers 2", two, same2, two["rss_mb"]),
                                     ("Dask LocalCluster, 2 workers", dask, same_d,
                                      max(dask["rss_mb"], peak["mb"]))):
            print(f"{name + label:44s} {run['wall']:8.1f} {run['wall'] / one['wall']:8.2f} {rss:8.0f}  "
                  f"{'identical' if same else 'DIFFERENT'}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sample-every", type=int, default=60, help="whole-network search on every N-th feeder")
    ap.add_argument("--skip-year", action="store_true")
    ap.add_argument("--workers-only", action="store_true", help="only the study over workers and Dask")
    ap.add_argument("--placements", type=int, default=20)
    args = ap.parse_args()
    if args.workers_only:
        workers_study(Path(tempfile.mkdtemp(prefix="bench-network-hosting-")), args.placements)
        return
    from v2g_testbed.sims.topology import feeders
    from v2g_testbed.sims.grid import load_network

    tmp = Path(tempfile.mkdtemp(prefix="bench-network-hosting-"))
    path = scenario(tmp / "mvlv.yaml", MVLV, "MV2.101 Bus 4", "mvlv")
    names = list(feeders(load_network(MVLV), "loads"))
    sample = names[::args.sample_every]
    print(f"{MVLV}: {len(names)} feeders; 20 placements, import and export")
    study = cli(path, "--placements", 20, "--out", tmp / "sub")
    result = json.loads((tmp / "sub" / "hosting_capacity.json").read_text())
    flows = result["power_flows"]
    per_flow = runpp_seconds()
    whole = cli(path, "--placements", 20, "--method", "whole-network", "--feeders", *sample, "--out", tmp / "whole")
    whole_result = json.loads((tmp / "whole" / "hosting_capacity.json").read_text())
    fast = {(f["feeder"], f["direction"]): [r["chargers"] for r in f["runs"]] for f in result["feeders"]}
    same = sum(fast[f["feeder"], f["direction"]][k] == r["chargers"] for f in whole_result["feeders"]
               for k, r in enumerate(f["runs"]))
    compared = sum(len(f["runs"]) for f in whole_result["feeders"])
    whole_all = whole["wall"] * len(names) / len(sample)
    rows = [("subnetwork study (CLI)", study["wall"], study["cpu"], study["rss_mb"], 1.0),
            (f"{flows:,} whole-network runpp ({per_flow * 1000:.0f} ms each)", flows * per_flow, None, None,
             flows * per_flow / study["wall"]),
            (f"whole-network search, {len(sample)} feeders scaled to {len(names)}", whole_all, None, whole["rss_mb"],
             whole_all / study["wall"])]
    print(f"{'':58s} {'wall s':>9s} {'CPU s':>8s} {'peak MB':>8s} {'x study':>8s}")
    for label, wall, cpu, rss, ratio in rows:
        print(f"{label:58s} {wall:9.1f} {cpu if cpu is not None else float('nan'):8.1f} "
              f"{rss if rss is not None else float('nan'):8.0f} {ratio:8.1f}")
    print(f"answers equal to the whole-network search on the sample: {same}/{compared} placements")
    if args.skip_year:
        return
    for network, bus, target in (("simbench:1-LV-rural1--0-sw", "LV1.101 Bus 5", 120),
                                 ("simbench:1-MV-semiurb--0-sw", "MV2.101 Bus 5", 600)):
        path = scenario(tmp / "year.yaml", network, bus, "year")
        run = cli(path, "--times", "year", "--out", tmp / network.split(":")[1])
        n = len(feeders(load_network(network), "loads"))
        print(f"{network} --times year ({n} feeders x 2 directions x 35,136 quarter-hours): wall {run['wall']:.0f} s, "
              f"CPU {run['cpu']:.0f} s, peak {run['rss_mb']:.0f} MB (target {target} s)")


if __name__ == "__main__":
    main()
