"""Does a run's cost grow with its length, or with its square? A 4G DR hub (40 vehicles, DR Low 0.3 MW) under
normal-operation frequency (an Ornstein-Uhlenbeck process sampled every 20 ms) for 1, 2, 4 and 8 minutes, in this
process, three ways in the same run: as shipped; without ``sims.WakeBound`` (the simulators' sooner steps that keep
mosaik 3.6's cancelled waits few: the baseline); and as shipped with mosaik's development ``Progress``, which drops a
cancelled wait at once (applied here only, to measure what a mosaik release with it would give; the testbed never
patches mosaik). Seconds of wall per simulated minute, and each against the shipped 1-minute run:

    python benchmarks/bench_long_run.py [--minutes 1 2 4 8] [--variants shipped unbounded mosaik-dev]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pathlib
import resource
import tempfile
import time

import yaml

from v2g_testbed.cosim import run as runner
from v2g_testbed.cosim import scenario
from v2g_testbed.sims import WakeBound

SCENARIO = {
    "name": "long-ou-4g", "seed": 7,
    "grid": {"network": "cigre_mv", "step_s": 5.0, "base_load_scale": 0.6},
    "fleet": {"assume_v2g": True,
              "groups": [{"model": "Nissan Ariya", "count": 40, "charger_kw": 10, "bus": "Bus 5", "soc": 0.7}]},
    "network": {"profile": "4g"},
    "services": [{"id": "DR-L", "contracted_mw": 0.3}],
    "outputs": {"plots": False},
}


def scenario_for(minutes: float, folder: pathlib.Path) -> pathlib.Path:
    data = dict(SCENARIO, duration_s=minutes * 60)
    data["frequency"] = {"events": [{"type": "ou", "at_s": 0, "duration_s": minutes * 60, "mean_hz": 50,
                                     "theta_per_s": 0.05, "sigma_hz_per_sqrt_s": 0.01, "seed": 1}]}
    path = folder / f"long-{minutes:g}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def mosaik_dev_progress():
    """mosaik's development Progress semantics (a wait removes itself when it ends, cancelled or not), as
    methods to put on mosaik.progress.Progress for the duration of one measurement."""
    from mosaik.tiered_time import TieredDuration

    def set_(self, time):
        self.time = time
        for spec, future in list(self._futures):
            reached = self._triggered_time(spec)
            if reached and not future.done():
                future.set_result(reached)

    async def add_trigger(self, target, shift, needs_to_pass):
        shift = TieredDuration(*((0,) * len(self.time))) if shift is None else shift
        spec = (target, shift, needs_to_pass)
        reached = self._triggered_time(spec)
        if reached:
            return reached
        waiting = (spec, asyncio.get_running_loop().create_future())
        self._futures.append(waiting)
        try:
            return await waiting[1]
        finally:
            self._futures.remove(waiting)

    return {"set": set_, "_add_trigger": add_trigger}


def timed(path: pathlib.Path, out: pathlib.Path, variant: str) -> float:
    from mosaik import progress

    saved = {"next_step": WakeBound.next_step, **{k: getattr(progress.Progress, k) for k in ("set", "_add_trigger")}}
    try:
        if variant == "unbounded":
            WakeBound.next_step = lambda self, t, own, early=True: own
        if variant == "mosaik-dev":
            for name, method in mosaik_dev_progress().items():
                setattr(progress.Progress, name, method)
        loaded = scenario.load(path)
        started = time.perf_counter()
        runner.run(loaded, out)
        return time.perf_counter() - started
    finally:
        WakeBound.next_step = saved.pop("next_step")
        for name, method in saved.items():
            setattr(progress.Progress, name, method)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--variants", nargs="+", default=["shipped", "unbounded", "mosaik-dev"],
                        choices=["shipped", "unbounded", "mosaik-dev"])
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = pathlib.Path(tmp)
        timed(scenario_for(0.25, folder), folder / "warm", "shipped")  # imports and caches
        for minutes in args.minutes:
            path = scenario_for(minutes, folder)
            for variant in args.variants:
                wall = timed(path, folder / f"{variant}-{minutes:g}", variant)
                verdicts = (folder / f"{variant}-{minutes:g}" / "verdicts.json").read_bytes()
                grid = json.loads(verdicts)["grid"]
                rows.append((minutes, variant, wall, verdicts, f"{grid['power_flows']} ({grid['non_converged']})"))
                print(f"  {minutes:g} min {variant}: {wall:.1f} s", flush=True)
    base = next(wall / m for m, v, wall, *_ in rows if v == rows[0][1])
    print("| simulated | variant | wall | s per simulated minute | vs the first row | verdicts as shipped | "
          "power flows (not converged) |")
    print("|---|---|---|---|---|---|---|")
    shipped = {m: verdicts for m, v, _, verdicts, _ in rows if v == "shipped"}
    for minutes, variant, wall, verdicts, flows in rows:
        same = "yes" if shipped.get(minutes) in (None, verdicts) else "NO"
        print(f"| {minutes:g} min | {variant} | {wall:.1f} s | {wall / minutes:.2f} | {wall / minutes / base:.2f} | {same} "
              f"| {flows} |")
    print(f"peak memory (this process): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
