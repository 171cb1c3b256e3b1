"""mosaik alone (no v2g-testbed code): a source that steps every 20 ms triggers a sink, in two worlds.

* The sink steps every 20 ms on its own as well (so no wait of it outlives a step). With
  ``world.run(lazy_stepping=False)`` the source runs ahead, each of its outputs schedules a sink step, and
  ``SimRunner.schedule_step`` checks ``tiered_time in self.next_steps`` (a linear scan of a heap that now holds
  every step ahead) before each push: the run grows with the square of its length. Lazy stepping (the default)
  keeps the source one step ahead: linear.
* The sink has no step of its own (an event-based simulator woken only by input). With lazy stepping, each wake-up
  leaves a cancelled wait in its progress until the end of the run, scanned at every progress update (mosaik's
  repository drops them at once; ``v2g_testbed.sims.WakeBound`` works around it): quadratic too.

    python benchmarks/mosaik_run_ahead.py [--seconds 15 30 60 120]

docs/upstream-mosaik.md quotes its output in the reports for mosaik's maintainers.
"""

import argparse
import time

import mosaik
import mosaik_api_v3

SOURCE = {"api_version": "3.0", "type": "event-based",
          "models": {"Source": {"public": True, "params": [], "attrs": ["x"]}}}
SINK = {"api_version": "3.0", "type": "event-based",
        "models": {"Sink": {"public": True, "params": [], "attrs": ["x"]}}}


class Source(mosaik_api_v3.Simulator):
    def __init__(self):
        super().__init__(SOURCE)

    def create(self, num, model):
        return [{"eid": "source", "type": model}]

    def step(self, time, inputs, max_advance):
        self.t = time
        return time + 20

    def get_data(self, outputs):
        return {"source": {"x": self.t}}


class Sink(mosaik_api_v3.Simulator):
    def __init__(self):
        super().__init__(SINK)

    def init(self, sid, time_resolution=1.0, own_ms=0):
        self.own_ms = own_ms
        return self.meta

    def create(self, num, model):
        return [{"eid": "sink", "type": model}]

    def step(self, time, inputs, max_advance):
        return time + self.own_ms if self.own_ms else None

    def get_data(self, outputs):
        return {}


def wall(seconds: float, lazy: bool, own_ms: int) -> float:
    world = mosaik.World({"Source": {"python": "__main__:Source"}, "Sink": {"python": "__main__:Sink"}},
                         time_resolution=0.001, skip_greetings=True, configure_logging=False)
    source = world.start("Source").Source()
    sink = world.start("Sink", own_ms=own_ms).Sink()
    world.connect(source, sink, "x")
    world.set_initial_event(source.sid)
    started = time.perf_counter()
    world.run(until=int(seconds * 1000), print_progress=False, lazy_stepping=lazy)
    return time.perf_counter() - started


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, nargs="+", default=[15, 30, 60, 120])
    args = ap.parse_args()
    from importlib.metadata import version

    print(f"mosaik {version('mosaik')}: a 50 Hz source triggering a sink; wall seconds (and per 1,000 source steps)")
    print("| simulated s | source steps | sink steps every 20 ms, lazy | the same, lazy_stepping=False | "
          "sink only woken, lazy |")
    print("|---|---|---|---|---|")
    for s in args.seconds:
        steps = int(s * 50)
        cells = [wall(s, lazy, own) for lazy, own in ((True, 20), (False, 20), (True, 0))]
        print(f"| {s:g} | {steps} | " + " | ".join(f"{w:.2f} ({w / steps * 1000:.2f})" for w in cells) + " |",
              flush=True)


if __name__ == "__main__":
    main()
