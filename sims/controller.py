"""Aggregator / frequency controller (mosaik event-based simulator).

Measures the frequency (a change is seen ``measurement_delay_ms`` after it happens), applies every
contracted service's response curve, and dispatches the fleet's total required change of power to
the vehicles in proportion to each vehicle's headroom in that direction (a vehicle charging at its
baseline first charges less, then, if bidirectional, discharges). It sends a setpoint only to
vehicles whose setpoint changed.

With network profile ``local`` the same logic stands for the controller inside every charger, each
measuring the frequency itself; the setpoints then go straight to the fleet with no network leg.

Input:  ``Aggregator.f_hz`` (trigger), measured at the step's time; or ``Aggregator.f_samples`` (trigger),
        ``{"time_ms": [...], "value": [...]}``, each sample measured at its own time, which may lie ahead of the step
        (``FrequencySim`` with ``ahead_ms``: a known profile given a window at a time); a sample is never acted on
        before its time plus the measurement delay, so both give the same dispatches.
Output: ``Aggregator.setpoints`` ``{"vehicle": [...], "kw": [...], "seq": [...]}`` (``seq``: the dispatch's
        sequence number, increasing; a charger keeps the newest; with ``run_ahead`` also ``time_ms``, each
        setpoint's dispatch time) and ``Aggregator.required_kw`` (with ``run_ahead``, the step's last)
        (the fleet's total required change of power, + import); for a recorder, ``record_setpoints`` and
        ``record_required_kw``: the same with each row's ``time_ms``, held and given together about every
        ``record_ms`` (``v2g_testbed.sims.Held``: a recorder steps that often, not at every dispatch).
Create params: ``services`` (service dicts with ``direction``, ``curve`` and ``contracted_kw``),
``vehicles`` (per-vehicle lists ``baseline_kw``, ``p_min_kw``, ``p_max_kw``, ``plugged``, optionally
``soc``, ``soc_min``, ``soc_max`` (the state of charge it knows at the start: an event lasts seconds to
minutes, so it does not track it), and ``arrival_ms`` and ``departure_ms``: the aggregator knows who is plugged in when it dispatches, but a
vehicle that leaves later is not replaced until the next dispatch),
``nominal_hz``. Sim params: ``measurement_delay_ms``; ``record_ms`` (default 0: each dispatch's at once) and
``until_ms`` (the end of the run: nothing held is left behind); ``dispatch_interval_ms``, the least time between
two dispatches (a dispatch uses the latest measurement; the first one after a quiet spell goes at once).
Waiting out that interval while every frequency sample wakes it, it asks mosaik for steps sooner
(``v2g_testbed.sims.WakeBound``: mosaik 3.6 keeps a wait for each wake-up); such a step does nothing.
``run_ahead`` (default False): within one step, do what a step at each of its own wake times would, up to
mosaik's ``max_advance`` (the last millisecond before any input can come) and the run's end, and send every
dispatch stamped with its time: for a world where nothing but the frequency reaches it (no network leg; a
consumer must apply each setpoint at its ``time_ms``, as ``FleetSim`` does). The dispatches are the same.
"""

from __future__ import annotations

import collections

import mosaik_api_v3
import numpy as np

from v2g_testbed.sims import Held, WakeBound, require_milliseconds
from v2g_testbed.sims.obc import plug_windows, soc_limited_kw
from v2g_testbed.sims.services import direction_sign, response_pu

META = {
    "api_version": "3.0",
    "type": "event-based",
    "models": {
        "Aggregator": {
            "public": True,
            "params": ["services", "vehicles", "nominal_hz"],
            "attrs": ["f_hz", "f_samples", "setpoints", "required_kw", "record_setpoints", "record_required_kw"],
        }
    },
}


# while a support is withdrawn slowly, the aggregator lowers it this often (each command the fraction the rate
# allows at that moment, so the fleet never falls faster than the rate): a testbed choice, not a market figure
WITHDRAWAL_TICK_MS = 100

VEHICLE_KEYS = ("baseline_kw", "p_min_kw", "p_max_kw", "plugged", "arrival_ms", "departure_ms", "soc", "soc_min",
                "soc_max")


def aggregator_vehicles(fleet_parameters: dict) -> dict:
    """What the ``Aggregator`` entity's ``vehicles`` parameter takes from the fleet's (``FleetSim``'s) parameters."""
    return {k: fleet_parameters[k] for k in VEHICLE_KEYS if k in fleet_parameters}


def required_change_kw(services: list[dict], f_hz: float, nominal_hz: float, floor: dict | None = None) -> float:
    """Total change of fleet power the contracted services ask for at ``f_hz`` (kW, + import); the services in
    ``floor`` ask for at least that fraction of their response (1: a support being held; less: one being withdrawn
    slowly)."""
    floor = floor or {}
    return sum(direction_sign(s) * max(response_pu(s, f_hz, nominal_hz), floor.get(s["id"], 0.0)) * s["contracted_kw"]
               for s in services)


def dispatch(change_kw: float, baseline_kw, p_min_kw, p_max_kw) -> np.ndarray:
    """Setpoints that add up to ``baseline + change``, shared in proportion to headroom."""
    baseline = np.asarray(baseline_kw, dtype=float)
    if change_kw < 0:
        headroom = np.maximum(baseline - np.asarray(p_min_kw, dtype=float), 0.0)
    else:
        headroom = np.maximum(np.asarray(p_max_kw, dtype=float) - baseline, 0.0)
    total = headroom.sum()
    if change_kw == 0 or total == 0:
        return baseline.copy()
    share = min(abs(change_kw) / total, 1.0)
    return baseline + np.sign(change_kw) * share * headroom


class ControllerSim(mosaik_api_v3.Simulator):
    def __init__(self):
        super().__init__(META)
        self.measurements: collections.deque[tuple[int, float]] = collections.deque()
        self.output: dict = {}
        self.held = Held()

    def init(self, sid, time_resolution=0.001, measurement_delay_ms=100, dispatch_interval_ms=0, record_ms=0,
             until_ms=None, run_ahead=False):
        require_milliseconds("ControllerSim", time_resolution)
        self.held = Held(record_ms, until_ms)
        self.until_ms = float("inf") if until_ms is None else int(until_ms)
        self.run_ahead = bool(run_ahead)
        self.delay_ms = int(measurement_delay_ms)
        self.interval_ms = int(dispatch_interval_ms)
        self.wake_bound = WakeBound(100)
        self.last_dispatch_ms = None
        self.seq = 0
        self.last_f = None
        return self.meta

    def create(self, num, model, services=(), vehicles=None, nominal_hz=50.0):
        if num != 1:
            raise ValueError("ControllerSim creates one Aggregator entity")
        self.services = list(services)
        self.nominal_hz = float(nominal_hz)
        self.plugged, self.arrival_ms, self.departure_ms = plug_windows(vehicles)
        self.baseline = np.where(self.plugged, np.asarray(vehicles["baseline_kw"], dtype=float), 0.0)
        # a vehicle at its reserved minimum is not asked to export, a full one not to import (the model's rule)
        self.p_min, self.p_max = soc_limited_kw(vehicles, vehicles.get("soc"))
        self.sent = self.baseline.copy()
        # a service that must hold its support (Nordic FFR) keeps its full response until then, per service
        self.support_until = {s["id"]: -np.inf for s in self.services if s.get("support")}
        # ... and where its option ends the support early if withdrawn slowly (Nordic FFR's 5 s option), what it
        # last asked for and when: it falls from there no faster than the option's rate
        self.withdrawing = {s["id"]: (0.0, 0) for s in self.services
                            if (s.get("support") or {}).get("withdrawal_pu_per_s")}
        return [{"eid": "aggregator", "type": model}]

    def _required(self, f_hz: float, time: int) -> float:
        """The fleet's required change at ``f_hz``: each service's curve, full while a support must be held (a
        hold starts when the curve asks for all of it, and a new activation inside a hold does not extend it)."""
        for s in self.services:
            if s["id"] in self.support_until and time >= self.support_until[s["id"]] \
                    and response_pu(s, f_hz, self.nominal_hz) >= 1.0 - 1e-12:
                self.support_until[s["id"]] = time + s["support"]["min_s"] * 1000.0
        floor = {sid: 1.0 for sid, until in self.support_until.items() if time < until}  # supports being held
        for s in self.services:
            if s["id"] in self.withdrawing:
                if s["id"] in floor:  # all of it until the hold ends; from then on it may fall at the rate
                    self.withdrawing[s["id"]] = (1.0, self.support_until[s["id"]])
                    continue
                last, since = self.withdrawing[s["id"]]
                now = max(response_pu(s, f_hz, self.nominal_hz),
                          last - s["support"]["withdrawal_pu_per_s"] * max(time - since, 0) / 1000.0, 0.0)
                self.withdrawing[s["id"]] = (now, time)
                floor[s["id"]] = now
        return required_change_kw(self.services, f_hz, self.nominal_hz, floor)

    def _still_withdrawing(self) -> bool:
        return self.last_f is not None and any(
            last > response_pu(s, self.last_f, self.nominal_hz) + 1e-12
            for s in self.services if s["id"] in self.withdrawing for last in [self.withdrawing[s["id"]][0]])

    def _withdrawal_due(self, time: int) -> bool:
        """A support being withdrawn steps down one ``WITHDRAWAL_TICK_MS`` after the last dispatch."""
        return self._still_withdrawing() and time >= self.last_dispatch_ms + WITHDRAWAL_TICK_MS

    def step(self, time, inputs, max_advance):
        given = inputs.get("aggregator", {})
        for f in given.get("f_hz", {}).values():
            self.measurements.append((time + self.delay_ms, float(f)))
        for block in given.get("f_samples", {}).values():
            self.measurements.extend((int(t) + self.delay_ms, float(f))
                                     for t, f in zip(block["time_ms"], block["value"]))
        self.output = {}
        # run ahead: what a step at each of its own wake times would do, up to the last millisecond before any
        # input can come (mosaik's max_advance) or the run ends, each dispatch stamped with its own time
        bound = min(max_advance, self.until_ms - 1) if self.run_ahead else time
        dispatches = []
        at = time
        while True:
            own_next, early = self._act(at, dispatches)
            if own_next is None or own_next > bound:
                break
            at = own_next
        if dispatches:
            self.output["required_kw"] = dispatches[-1][0]
            sent = [setpoints for _, setpoints in dispatches if setpoints is not None]
            if sent:
                self.output["setpoints"] = {key: [x for one in sent for x in one[key]] for key in sent[0]}
        return self._hold(time, self.wake_bound.next_step(time, own_next, early=early))

    def _act(self, time: int, dispatches: list) -> tuple:
        """What a step at ``time`` does with the measurements it has: a dispatch if one is due (appended to
        ``dispatches`` as ``(required_kw, setpoints or None)``, its rows held for the recorder); returns its
        own next step and whether a step sooner changes nothing (``WakeBound``'s ``early``)."""
        if self.last_dispatch_ms is not None and time < self.last_dispatch_ms + self.interval_ms:
            # too soon after the last dispatch: wait (woken by every sample meanwhile: see WakeBound; a step
            # sooner lands here too and does nothing)
            return self.last_dispatch_ms + self.interval_ms, True
        measured = None
        while self.measurements and self.measurements[0][0] <= time:
            measured = self.measurements.popleft()[1]
        if measured is None and self.last_f is not None and (time in self.support_until.values()
                                                             or self._withdrawal_due(time)):
            # a support hold ends, or its withdrawal steps down: the latest measurement decides again (at these
            # times only, not whenever input arrives: the dispatches do not depend on how the frequency is given)
            measured = self.last_f
        if measured is not None:
            self.last_f = measured
            self.last_dispatch_ms = time
            change = self._required(measured, time)
            here = self.plugged & (self.arrival_ms <= time) & (time < self.departure_ms)
            baseline = np.where(here, self.baseline, 0.0)
            setpoints = dispatch(change, baseline, np.where(here, self.p_min, 0.0), np.where(here, self.p_max, 0.0))
            changed = np.flatnonzero(np.abs(setpoints - self.sent) > 1e-9)
            self.sent[changed] = setpoints[changed]
            sent = None
            self.held.add("record_required_kw", {"time_ms": [time], "value": [float(change)]})
            if changed.size:
                self.seq += 1  # one number per dispatch: a charger never applies an older one after a newer
                sent = {"vehicle": changed.tolist(), "kw": setpoints[changed].tolist(),
                        "seq": [self.seq] * int(changed.size)}
                self.held.add("record_setpoints", {"time_ms": [time] * int(changed.size), **sent})
                if self.run_ahead:  # each setpoint leaves at its dispatch's time, not the step's
                    sent["time_ms"] = [time] * int(changed.size)
            dispatches.append((float(change), sent))
        wake = [int(self.measurements[0][0])] if self.measurements else []
        wake += [int(u) for u in self.support_until.values() if np.isfinite(u) and u > time]
        if self._still_withdrawing():  # step the withdrawal down every WITHDRAWAL_TICK_MS (each command is what
            wake.append(self.last_dispatch_ms + WITHDRAWAL_TICK_MS)  # may be withdrawn by then: never faster)
        return (min(wake) if wake else None), False

    def _hold(self, time: int, next_step):
        """The held rows for the recorder go out with this step's output when due (``Held``)."""
        self.output.update(self.held.take(next_step))
        return next_step

    def get_data(self, outputs):
        return {"aggregator": self.output} if self.output else {}


if __name__ == "__main__":
    mosaik_api_v3.start_simulation(ControllerSim(), "v2g-testbed aggregator")
