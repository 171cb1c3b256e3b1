"""Frequency event generator (mosaik event-based simulator).

A profile is a time-ordered list of frequency changes ``(t_ms, hz)``; the simulator outputs each
change at its time and nothing in between, so a step costs two steps of the whole world, not one
per millisecond. Continuous shapes are sampled every ``sample_ms``.

Events are deviations from nominal that add up (so a ramp can ride on a recorded trace):
  ``{"type": "step", "at_s": 5, "to_hz": 49.5, "hold_s": 20}``   a step, back to nominal after hold_s
  ``{"type": "ramp", "at_s": 5, "to_hz": 49.5, "rocof_hz_per_s": 0.5, "hold_s": 20}``
      a linear change at that rate of change of frequency, then held, then back to nominal
  ``{"type": "piecewise", "at_s": 0, "points": [[0, 50], [2, 49.6], [10, 49.8]]}``
      linear between (seconds from at_s, Hz) points; nominal outside them
  ``{"type": "trace", "at_s": 0, "time_s": [...], "hz": [...]}``
      a recorded trace, replayed exactly at its own sample times (linear in between, at sample_ms
      where the trace is coarser)
  ``{"type": "ou", "at_s": 0, "duration_s": 600, "mean_hz": 50, "theta_per_s": .., "sigma_hz_per_sqrt_s": ..,
     "seed": 1}``  normal operation: an Ornstein-Uhlenbeck process sampled exactly every sample_ms

Output: ``Frequency.f_hz`` at each change, and ``Frequency.record_f_hz``, the same changes for a recorder,
``{"time_ms": [...], "value": [...]}``, held and given together about every ``record_ms``
(``v2g_testbed.sims.Held``: a recorder steps that often, not at every change). With ``ahead_ms`` > 0 the
simulator steps once per ``ahead_ms`` window instead of at every change, and gives ``Frequency.f_samples``: the
window's changes, each with its own time, ``{"time_ms": [...], "value": [...]}`` (the profile is known in
advance, so a receiver that acts on each sample at its own time, as ``ControllerSim`` does, sees exactly what it
would see one change at a time, from a world that steps ~50x less during a 20 ms-sampled ramp); ``f_hz`` is then
not given. Sim params: ``nominal_hz``, ``events``, ``sample_ms`` (default 20), ``until_ms`` (optional: the end of
the run; nothing is prepared beyond it), ``record_ms`` (default 0: each change's at once), ``ahead_ms`` (default
0: one step per change, ``f_hz``).
Start it with ``world.set_initial_event(sid)``: the first step outputs the frequency at t=0.
"""

from __future__ import annotations

import math

import mosaik_api_v3
import numpy as np

from v2g_testbed.sims import Held, require_milliseconds

META = {
    "api_version": "3.0",
    "type": "event-based",
    "models": {"Frequency": {"public": True, "params": [], "attrs": ["f_hz", "f_samples", "record_f_hz"]}},
}


def _component(event: dict, nominal_hz: float, sample_ms: int, until_ms: float = math.inf):
    """(sample times in ms, deviation function of an array of ms) of one event; no sample times are made
    beyond ``until_ms`` (a long gap in a trace must not cost anything past the end of the run)."""
    start = round(event["at_s"] * 1000)
    kind = event["type"]
    if kind in ("step", "ramp"):
        dev = float(event["to_hz"]) - nominal_hz
        ramp_ms = round(abs(dev) / event["rocof_hz_per_s"] * 1000) if kind == "ramp" else 0
        end = None if event.get("hold_s") is None else start + ramp_ms + round(event["hold_s"] * 1000)
        times = [start] + list(range(start + sample_ms, int(min(start + ramp_ms, until_ms + 1)), sample_ms)) + [start + ramp_ms]
        times += [] if end is None else [end]

        def f(t, dev=dev, start=start, ramp_ms=ramp_ms, end=end):
            t = np.asarray(t, dtype=float)
            shape = np.clip((t - start) / ramp_ms, 0, 1) if ramp_ms else (t >= start).astype(float)
            on = (t >= start) & ((t < end) if end is not None else True)
            return np.where(on, dev * shape, 0.0)
        return times, f
    if kind in ("piecewise", "trace"):
        if kind == "piecewise":
            pts = np.asarray(event["points"], dtype=float)
            t_pts, hz = start + np.round(pts[:, 0] * 1000), pts[:, 1]
        else:
            t_pts, hz = start + np.round(np.asarray(event["time_s"], float) * 1000), np.asarray(event["hz"], float)
        first, last = t_pts[0], t_pts[-1]
        dense = [t for a, b in zip(t_pts[:-1], t_pts[1:]) if a <= until_ms
                 for t in range(int(a), int(min(b, until_ms + 1)), sample_ms)]
        times = sorted(set(int(t) for t in t_pts) | set(dense) | {int(last) + 1})

        def f(t, t_pts=t_pts, hz=hz, first=first, last=last):
            t = np.asarray(t, dtype=float)
            return np.where((t >= first) & (t <= last), np.interp(t, t_pts, hz) - nominal_hz, 0.0)
        return times, f
    if kind == "ou":
        n = int(round(min(event["duration_s"] * 1000, max(until_ms - start, 0) + sample_ms))) // sample_ms
        dt = sample_ms / 1000.0
        theta, sigma, mean = event["theta_per_s"], event["sigma_hz_per_sqrt_s"], event.get("mean_hz", nominal_hz)
        rng = np.random.default_rng(event.get("seed", 0))
        decay = math.exp(-theta * dt)
        noise = sigma * math.sqrt((1 - decay * decay) / (2 * theta))
        x = np.empty(n + 1)
        x[0] = event.get("start_hz", mean)
        shocks = rng.standard_normal(n)
        for k in range(n):  # exact discretisation of the OU process
            x[k + 1] = mean + (x[k] - mean) * decay + noise * shocks[k]
        t_pts = start + np.arange(n + 1) * sample_ms
        times = t_pts.tolist() + [int(t_pts[-1]) + sample_ms]

        def f(t, t_pts=t_pts, x=x):
            t = np.asarray(t, dtype=float)
            idx = np.clip(np.searchsorted(t_pts, t, side="right") - 1, 0, len(x) - 1)
            return np.where((t >= t_pts[0]) & (t <= t_pts[-1]), x[idx] - nominal_hz, 0.0)
        return times, f
    raise ValueError(f"unknown frequency event type {kind!r}")


def build_profile(events: list[dict], nominal_hz: float, sample_ms: int = 20,
                  until_ms: float = math.inf) -> list[tuple[int, float]]:
    """The list of (time in ms, Hz) changes of the sum of the events' deviations, from t=0 up to ``until_ms``."""
    parts = [_component(e, nominal_hz, sample_ms, until_ms) for e in events]
    times = sorted({0, *(int(t) for ts, _ in parts for t in ts if 0 <= t <= until_ms)})
    hz = nominal_hz + sum((f(times) for _, f in parts), np.zeros(len(times)))
    out: list[tuple[int, float]] = []
    for t, value in zip(times, hz.tolist()):
        value = round(value, 9)  # sums of deviations: no 1e-15 Hz "changes"
        if not out or out[-1][1] != value:
            out.append((t, value))
    return out


class FrequencySim(mosaik_api_v3.Simulator):
    def __init__(self):
        super().__init__(META)
        self.profile: list[tuple[int, float]] = []
        self.cursor = 0
        self.output: float | dict | None = None
        self.held = Held()
        self.record: dict = {}

    def init(self, sid, time_resolution=0.001, nominal_hz=50.0, events=(), sample_ms=20, until_ms=None,
             record_ms=0, ahead_ms=0):
        require_milliseconds("FrequencySim", time_resolution)
        self.profile = build_profile(list(events), nominal_hz, int(sample_ms),
                                     math.inf if until_ms is None else float(until_ms))
        self.held = Held(record_ms, until_ms)
        self.ahead_ms = int(ahead_ms)
        if self.ahead_ms < 0:
            raise ValueError(f"FrequencySim: ahead_ms must be >= 0, got {ahead_ms}")
        return self.meta

    def create(self, num, model):
        if num != 1:
            raise ValueError("FrequencySim creates one Frequency entity")
        return [{"eid": "frequency", "type": model}]

    def step(self, time, inputs, max_advance):
        self.output = None
        if self.ahead_ms:
            return self._step_ahead(time)
        while self.cursor < len(self.profile) and self.profile[self.cursor][0] <= time:
            self.output = self.profile[self.cursor][1]
            self.cursor += 1
        nxt = self._next_change()
        if self.output is not None:
            self.held.add("record_f_hz", {"time_ms": [time], "value": [self.output]})
        self.record = self.held.take(nxt)
        return nxt

    def _next_change(self):
        return int(self.profile[self.cursor][0]) if self.cursor < len(self.profile) else None

    def _step_ahead(self, time: int):
        """The changes up to the end of this ``ahead_ms`` window, each at its own time; the next step is the
        first change of a later window."""
        end = (time // self.ahead_ms + 1) * self.ahead_ms
        first = self.cursor
        while self.cursor < len(self.profile) and self.profile[self.cursor][0] < end:
            self.cursor += 1
        window = self.profile[first:self.cursor]
        if window:
            self.output = {"time_ms": [int(t) for t, _ in window], "value": [f for _, f in window]}
            self.held.add("record_f_hz", self.output)
        nxt = self._next_change()
        self.record = self.held.take(nxt)
        return nxt

    def get_data(self, outputs):
        data = {}
        if self.output is not None:
            data["f_samples" if self.ahead_ms else "f_hz"] = self.output
        data.update(self.record)
        return {"frequency": data} if data else {}


SYSTEM_META = {
    "api_version": "3.0",
    "type": "hybrid",
    "models": {"System": {"public": True, "params": [], "attrs": ["f_hz", "fleet_p_kw", "support_mw"],
                          "trigger": [], "persistent": [], "non-persistent": ["f_hz", "fleet_p_kw", "support_mw"]}},
}


class SystemModel:
    """Single-area swing equation (parameters: ``systems`` in data/frequency_profiles.yaml).

    Losses (``losses``: ``at_s`` after ``strike_at_s``, ``mw``, optional ``ramp_s``) and the response held
    (``response``: tranches, each ``mw`` in proportion to the frequency deviation up to ``full_at_hz``, following
    with ``time_constant_s``, active from ``from_s`` until ``until_s`` after the strike; a tranche that
    ``replaces`` another takes over from it: the two give the larger of their outputs, not the sum); load damping
    ``damping_mw_per_hz``; low-frequency demand disconnection (``lfdd_mw`` at ``lfdd_hz`` after ``lfdd_delay_s``).
    """

    def __init__(self, params: dict, nominal_hz: float = 50.0):
        self.p, self.f0 = params, nominal_hz
        self.t0 = float(params.get("strike_at_s", 0.0))
        self.df = 0.0  # Hz, f - f0
        self.tranche_mw = {t["name"]: 0.0 for t in params["response"]}
        self.shed_mw = 0.0
        self.lfdd_at_s = None

    def loss_mw(self, t_s: float) -> float:
        total = 0.0
        for loss in self.p["losses"]:
            at, ramp = self.t0 + loss["at_s"], loss.get("ramp_s", 0.0)
            total += loss["mw"] * (float(t_s >= at) if ramp <= 0 else min(max((t_s - at) / ramp, 0.0), 1.0))
        return total

    def response_mw(self) -> float:
        """What the tranches give now: their sum, a replacing tranche and the one it replaces counting once."""
        replaced = {t["replaces"]: t["name"] for t in self.p["response"] if t.get("replaces")}
        total = 0.0
        for t in self.p["response"]:
            name = t["name"]
            if name in replaced:
                continue
            own = self.tranche_mw[name]
            total += max(own, self.tranche_mw[t["replaces"]]) if t.get("replaces") else own
        return total

    def step(self, t_s: float, dt_s: float, support_mw: float = 0.0) -> float:
        """Advance from t_s by dt_s (explicit Euler); return the frequency at t_s + dt_s."""
        p = self.p
        if self.lfdd_at_s is None and self.f0 + self.df <= p["lfdd_hz"]:
            self.lfdd_at_s = t_s + p["lfdd_delay_s"]
        if self.lfdd_at_s is not None and t_s >= self.lfdd_at_s:
            self.shed_mw = p["lfdd_mw"]
        since = t_s - self.t0
        for t in p["response"]:
            active = since >= t.get("from_s", 0.0) and (t.get("until_s") is None or since < t["until_s"])
            target = t["mw"] * min(max(-self.df, 0.0) / t["full_at_hz"], 1.0) if active else 0.0
            self.tranche_mw[t["name"]] += (target - self.tranche_mw[t["name"]]) * dt_s / t["time_constant_s"]
        balance = self.response_mw() + self.shed_mw + support_mw - self.loss_mw(t_s) - p["damping_mw_per_hz"] * self.df
        self.df += self.f0 * balance / (2 * p["kinetic_energy_mws"]) * dt_s
        return self.f0 + self.df


class SystemFrequencySim(mosaik_api_v3.Simulator):
    """The frequency of a whole power system, from a swing-equation model, every ``step_ms``.

    Closed loop: connect a fleet's persistent total power to ``fleet_p_kw`` (time-shifted); the
    fleet's change from its first reported power, times ``replication_factor`` (the fleet stands for
    that many like it), is added to the system's power balance. With factor 0 the loop is open.
    Outputs ``f_hz`` every step, and ``support_mw`` (what the replicated fleets added)."""

    def __init__(self):
        super().__init__(SYSTEM_META)

    def init(self, sid, time_resolution=0.001, nominal_hz=50.0, system=None, replication_factor=0.0):
        require_milliseconds("SystemFrequencySim", time_resolution)
        self.model = SystemModel(system, nominal_hz)
        self.step_ms = int(system["step_ms"])
        self.replication = float(replication_factor)
        self.baseline_kw = None
        self.f = nominal_hz
        self.support = 0.0
        return self.meta

    def create(self, num, model):
        if num != 1:
            raise ValueError("SystemFrequencySim creates one System entity")
        return [{"eid": "frequency", "type": model}]

    def step(self, time, inputs, max_advance):
        values = [v for v in inputs.get("frequency", {}).get("fleet_p_kw", {}).values() if v is not None]
        if values:
            p_kw = float(sum(values))
            self.baseline_kw = p_kw if self.baseline_kw is None else self.baseline_kw
            self.support = self.replication * (self.baseline_kw - p_kw) / 1000.0
        if time > 0:
            self.f = self.model.step((time - self.step_ms) / 1000.0, self.step_ms / 1000.0, self.support)
        return time + self.step_ms

    def get_data(self, outputs):
        return {"frequency": {"f_hz": self.f, "support_mw": self.support}}


if __name__ == "__main__":
    mosaik_api_v3.start_simulation(FrequencySim(), "v2g-testbed frequency generator")
