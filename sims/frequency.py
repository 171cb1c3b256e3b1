"""Frequency event generator (mosaik event-based simulator).

A profile is a time-ordered list of frequency changes ``(t_ms, hz)``; the simulator outputs each
change at its time and nothing in between, so a step costs two steps of the whole world, not one
per millisecond. Ramps are sampled every ``sample_ms``.

Events (applied in time order; each starts from the frequency the previous one left):
  ``{"type": "step", "at_s": 5, "to_hz": 49.5, "hold_s": 20}``   step, back to nominal after hold_s
  ``{"type": "ramp", "at_s": 5, "to_hz": 49.5, "rocof_hz_per_s": 0.5, "hold_s": 20}``
      linear change at the given rate of change of frequency, then hold, then back to nominal

Output: ``Frequency.f_hz``. Sim params: ``nominal_hz``, ``events``, ``sample_ms`` (default 20).
Start it with ``world.set_initial_event(sid)``: the first step outputs the nominal frequency at t=0.
"""

from __future__ import annotations

import math

import mosaik_api_v3

META = {
    "api_version": "3.0",
    "type": "event-based",
    "models": {"Frequency": {"public": True, "params": [], "attrs": ["f_hz"]}},
}


def build_profile(events: list[dict], nominal_hz: float, sample_ms: int = 20) -> list[tuple[int, float]]:
    """Turn event descriptions into the list of (time in ms, Hz) changes, starting at nominal."""
    points: list[tuple[int, float]] = [(0, float(nominal_hz))]
    for event in sorted(events, key=lambda e: e["at_s"]):
        start = round(event["at_s"] * 1000)
        if start < points[-1][0]:
            raise ValueError(f"frequency event at {event['at_s']} s starts before the previous one ends")
        f0 = points[-1][1]
        target = float(event["to_hz"])
        if event["type"] == "step":
            points.append((start, target))
            end = start
        elif event["type"] == "ramp":
            duration = round(abs(target - f0) / event["rocof_hz_per_s"] * 1000)
            n = max(1, math.ceil(duration / sample_ms))
            for k in range(1, n + 1):
                t = start + min(k * sample_ms, duration)
                points.append((t, f0 + (target - f0) * (t - start) / duration if duration else target))
            end = start + duration
        else:
            raise ValueError(f"unknown frequency event type {event['type']!r}")
        if event.get("hold_s") is not None:
            points.append((end + round(event["hold_s"] * 1000), float(nominal_hz)))
    # merge changes at the same time (the later one wins) and drop repeats of the same value
    merged: list[tuple[int, float]] = []
    for t, f in points:
        if merged and merged[-1][0] == t:
            merged[-1] = (t, f)
        elif not merged or merged[-1][1] != f:
            merged.append((t, f))
    return merged


class FrequencySim(mosaik_api_v3.Simulator):
    def __init__(self):
        super().__init__(META)
        self.profile: list[tuple[int, float]] = []
        self.cursor = 0
        self.output: float | None = None

    def init(self, sid, time_resolution=0.001, nominal_hz=50.0, events=(), sample_ms=20):
        if abs(time_resolution - 0.001) > 1e-12:
            raise ValueError("FrequencySim works in milliseconds: start the world with time_resolution=0.001")
        self.profile = build_profile(list(events), nominal_hz, int(sample_ms))
        return self.meta

    def create(self, num, model):
        if num != 1:
            raise ValueError("FrequencySim creates one Frequency entity")
        return [{"eid": "frequency", "type": model}]

    def step(self, time, inputs, max_advance):
        self.output = None
        while self.cursor < len(self.profile) and self.profile[self.cursor][0] <= time:
            self.output = self.profile[self.cursor][1]
            self.cursor += 1
        if self.cursor < len(self.profile):
            return int(self.profile[self.cursor][0])
        return None

    def get_data(self, outputs):
        if self.output is None:
            return {}
        return {"frequency": {"f_hz": self.output}}


if __name__ == "__main__":
    mosaik_api_v3.start_simulation(FrequencySim(), "v2g-testbed frequency generator")
