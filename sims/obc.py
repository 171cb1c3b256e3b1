"""Vectorised onboard-charger (OBC) model: how each vehicle's power follows its setpoints.

One ``ChargerFleet`` holds N vehicles as numpy arrays; nothing loops over vehicles. Power is
positive when the vehicle imports (charges), negative when it exports (V2G).

State machine (per vehicle), built on the measured step tests in ``data/vehicles.csv``:

* The power trajectory is piecewise linear: from an anchor ``(t_ref, p_ref)`` the power moves
  toward ``goal`` at ``rate`` (kW/ms) and then holds. It is evaluated exactly at any time, so the
  sampling step of the simulator never changes the physics.
* A setpoint received at time t is classified against the target the OBC is executing now:
    - *up*: same sign and larger magnitude (or from zero): takes effect after the start delay
      ``t_a``, then the power ramps at ``ramp_up``;
    - *down*: smaller magnitude, same sign, or zero: takes effect after the ramp-down delay
      ``t_c``, then ramps at ``ramp_down``;
    - *reversal* (charging <-> discharging): takes effect after ``t_c``, ramps to zero at
      ``ramp_down``, then waits the start delay ``t_a`` and ramps to the new power at ``ramp_up``.
      (Our choice: the measured data covers one direction only; the converter must stop before it
      can reverse, and a start from standstill takes ``t_a``.)
* Discharge uses the same delays and rates as charge (the source says similar profiles can be
  assumed for bidirectional operation).
* A setpoint arriving while another is still waiting to take effect replaces its *value* but not
  its timing: the charger applies the latest value when the earlier one would have taken effect (or
  at the new setpoint's own time, if that is sooner). It does not restart its delay, so a setpoint
  updated every few milliseconds is followed with the measured latency instead of never. A setpoint
  that takes effect in the middle of a ramp re-anchors the ramp at the current power: power is
  continuous, it never jumps.
* If, when a setpoint takes effect, the power still has the opposite sign (an earlier motion did
  not finish), the vehicle first ramps to zero, as for a reversal.
* Energy: the battery gains ``eta_charge * P`` while importing and loses ``|P| / eta_discharge``
  while exporting (integrated exactly over each linear piece; pieces never cross zero). A vehicle
  whose state of charge reaches ``soc_max`` stops importing, one at ``soc_min`` stops exporting:
  it ramps to zero at ``ramp_down`` with no delay, and later setpoints beyond that limit are clipped.
  The limit is checked at every ``advance`` from the moment any vehicle could have reached it at full
  power (before that, checking cannot find anything), so it is detected to within one simulator step.
  Energy is integrated lazily: at events, limit checks, and whenever ``soc`` is read.
* Availability: a vehicle is plugged in from ``arrival_ms`` (with zero power) until ``departure_ms``;
  outside that window it ignores setpoints. At its departure the charger ends the session: the power
  ramps to zero at ``ramp_down`` from that exact moment, with no delay. A vehicle with
  ``plugged = False`` never takes part.
* Setpoint resolution: a setpoint is rounded to the nearest multiple of ``setpoint_step_kw`` (if > 0)
  and, below ``min_power_kw`` in magnitude (the 6 A minimum of AC charging), to zero or to the
  minimum, whichever is nearer. The aggregator does not know: the shortfall shows in the response.

Times are integer milliseconds at the interface; internally ramp end times may fall between
milliseconds (the model is continuous in time).

Events (a setpoint taking effect, a reversal reaching zero, a departure) sit in a heap with lazy
invalidation, so advancing time touches only the vehicles whose events are due: the cost of a step
does not grow with the fleet unless the whole fleet is busy.
"""

from __future__ import annotations

import heapq

import numpy as np

KWMS_PER_KWH = 3.6e6  # kW x ms in one kWh
DEPARTURE, PENDING, ZERO = 0, 1, 2  # event kinds, in the order they apply at equal times

PARAMETERS = (
    "start_delay_ms", "stop_delay_ms", "ramp_up_kw_per_s", "ramp_down_kw_per_s",
    "p_min_kw", "p_max_kw", "baseline_kw", "capacity_kwh", "soc", "soc_min", "soc_max",
    "eta_charge", "eta_discharge", "plugged",
)
OPTIONAL_PARAMETERS = {"arrival_ms": 0.0, "departure_ms": np.inf, "min_power_kw": 0.0, "setpoint_step_kw": 0.0}


def plug_windows(vehicles: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(plugged, arrival_ms, departure_ms) from per-vehicle lists; without arrival_ms a vehicle is there
    from the start, and a missing or None departure_ms means it never leaves."""
    plugged = np.asarray(vehicles["plugged"], dtype=bool)
    n = plugged.size
    arrival = vehicles.get("arrival_ms")
    arrival = np.zeros(n) if arrival is None or len(arrival) == 0 else np.asarray(arrival, dtype=float)
    departure = vehicles.get("departure_ms")
    departure = np.full(n, np.inf) if departure is None or len(departure) == 0 else np.asarray(
        [np.inf if d is None else d for d in departure], dtype=float)
    return plugged, arrival, departure


def classify(current_kw, setpoint_kw) -> tuple[np.ndarray, np.ndarray]:
    """(reversal, up) of setpoints against the targets being executed: a reversal crosses zero (charging <->
    discharging); *up* is a larger magnitude of the same sign (or from zero); the rest are *down*."""
    reversal = np.sign(setpoint_kw) * np.sign(current_kw) < 0
    return reversal, ~reversal & (np.abs(setpoint_kw) > np.abs(current_kw))


def time_to_reach_s(vehicles: dict, idx, current_kw, setpoint_kw) -> tuple[np.ndarray, np.ndarray]:
    """For vehicles ``idx`` (per-vehicle lists as ``ChargerFleet`` takes them) holding ``current_kw`` when a
    setpoint arrives: (seconds of delay before the power moves, seconds of ramping until it reaches the
    setpoint), by the state machine of this module (a reversal: t_c, ramp down to zero, t_a, ramp up)."""
    idx = np.asarray(idx, dtype=int)
    current, kw = np.asarray(current_kw, float), np.asarray(setpoint_kw, float)
    t_a = np.asarray(vehicles["start_delay_ms"], float)[idx] / 1000.0
    t_c = np.asarray(vehicles["stop_delay_ms"], float)[idx] / 1000.0
    up_rate = np.asarray(vehicles["ramp_up_kw_per_s"], float)[idx]
    down_rate = np.asarray(vehicles["ramp_down_kw_per_s"], float)[idx]
    reversal, up = classify(current, kw)
    delay = np.where(reversal, t_c + t_a, np.where(up, t_a, t_c))
    ramp = np.where(reversal, np.abs(current) / down_rate + np.abs(kw) / up_rate,
                    np.where(up, (np.abs(kw) - np.abs(current)) / up_rate, (np.abs(current) - np.abs(kw)) / down_rate))
    return delay, ramp


class ChargerFleet:
    """N onboard chargers stepping together. Construct from per-vehicle arrays (see ``PARAMETERS``)."""

    def __init__(self, t0_ms: int = 0, **params):
        missing = set(PARAMETERS) - set(params)
        if missing:
            raise ValueError(f"ChargerFleet needs per-vehicle arrays for: {', '.join(sorted(missing))}")
        arr = {k: np.asarray(params[k], dtype=float) for k in PARAMETERS if k != "plugged"}
        self.n = len(arr["soc"])
        for k, default in OPTIONAL_PARAMETERS.items():
            value = params.get(k)
            arr[k] = np.full(self.n, default) if value is None else np.asarray(
                [default if x is None else x for x in value], dtype=float)
        for k, v in arr.items():
            if v.shape != (self.n,):
                raise ValueError(f"ChargerFleet: {k} has shape {v.shape}, expected ({self.n},)")
        self.plugged = np.asarray(params["plugged"], dtype=bool)
        self.start_delay_ms = arr["start_delay_ms"]
        self.stop_delay_ms = arr["stop_delay_ms"]
        self.ramp_up = arr["ramp_up_kw_per_s"] / 1000.0  # kW per ms
        self.ramp_down = arr["ramp_down_kw_per_s"] / 1000.0
        self.p_min = np.where(self.plugged, arr["p_min_kw"], 0.0)
        self.p_max = np.where(self.plugged, arr["p_max_kw"], 0.0)
        self.capacity_kwh = arr["capacity_kwh"]
        self.soc_min, self.soc_max = arr["soc_min"], arr["soc_max"]
        self.eta_charge, self.eta_discharge = arr["eta_charge"], arr["eta_discharge"]
        self.energy_kwh = arr["soc"] * self.capacity_kwh
        self.arrival_ms, self.departure_ms = arr["arrival_ms"], arr["departure_ms"]
        self.min_power_kw, self.setpoint_step_kw = arr["min_power_kw"], arr["setpoint_step_kw"]
        self.departed = np.zeros(self.n, dtype=bool)
        self.last_seq = np.full(self.n, -1, dtype=np.int64)  # newest setpoint number each vehicle has
        self.stale_ignored = 0

        self.t_ms = int(t0_ms)
        present = (self.arrival_ms <= t0_ms) & (t0_ms < self.departure_ms)
        self.p_ref = np.where(present, np.clip(arr["baseline_kw"], self.p_min, self.p_max), 0.0)
        self.t_ref = np.full(self.n, float(t0_ms))
        self.goal = self.p_ref.copy()
        self.rate = np.zeros(self.n)
        self.then_goal = np.full(self.n, np.nan)   # goal after a reversal has reached zero
        self.pending_goal = np.full(self.n, np.nan)
        self.pending_t = np.full(self.n, np.inf)
        self.t_energy = np.full(self.n, float(t0_ms))
        self.last_effect_ms = np.full(self.n, np.nan)
        self._events: list[tuple[float, int, int]] = [
            (float(d), DEPARTURE, int(i)) for i, d in enumerate(self.departure_ms) if np.isfinite(d)]
        heapq.heapify(self._events)
        self._limit_check_ms = -np.inf

    # -- evaluation -------------------------------------------------------------------------
    def _power_at(self, idx, t):
        dist = self.goal[idx] - self.p_ref[idx]
        moved = np.minimum(self.rate[idx] * (t - self.t_ref[idx]), np.abs(dist))
        return self.p_ref[idx] + np.sign(dist) * moved

    def _reach_time(self, idx):
        dist = np.abs(self.goal[idx] - self.p_ref[idx])
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(dist == 0, self.t_ref[idx], self.t_ref[idx] + dist / self.rate[idx])

    def power_kw(self) -> np.ndarray:
        """Power of every vehicle at the current time (kW, + import)."""
        return self._power_at(slice(None), float(self.t_ms))

    @property
    def soc(self) -> np.ndarray:
        self._integrate(slice(None), float(self.t_ms))
        return self.energy_kwh / self.capacity_kwh

    def plugged_now(self) -> np.ndarray:
        return self.plugged & (self.arrival_ms <= self.t_ms) & (self.t_ms < self.departure_ms)


    def limits_kw(self, idx=slice(None)) -> tuple[np.ndarray, np.ndarray]:
        """(p_min, p_max) vehicles ``idx`` can be asked for now, after plug state and energy limits."""
        self._integrate(idx, float(self.t_ms))
        soc = self.energy_kwh[idx] / self.capacity_kwh[idx]
        here = self.plugged_now()[idx]
        p_max = np.where(here, np.where(soc >= self.soc_max[idx], np.minimum(self.p_max[idx], 0.0), self.p_max[idx]), 0.0)
        p_min = np.where(here, np.where(soc <= self.soc_min[idx], np.maximum(self.p_min[idx], 0.0), self.p_min[idx]), 0.0)
        return p_min, p_max

    # -- time -------------------------------------------------------------------------------
    def _integrate(self, idx, t_to):
        """Add the battery energy of vehicles ``idx`` from their energy clock up to ``t_to``."""
        a = self.t_energy[idx]
        b = np.broadcast_to(np.asarray(t_to, dtype=float), a.shape)
        reach = np.clip(self._reach_time(idx), a, b)
        pa = self._power_at(idx, a)
        pr = self._power_at(idx, reach)
        area = 0.5 * (pa + pr) * (reach - a) + pr * (b - reach)  # kW x ms
        charging = (pa + pr) >= 0
        with np.errstate(divide="ignore", invalid="ignore"):
            de = np.where(charging, area * self.eta_charge[idx], area / self.eta_discharge[idx])
        self.energy_kwh[idx] += de / KWMS_PER_KWH
        self.t_energy[idx] = b

    def _apply_pending(self, idx):
        te = self.pending_t[idx]
        self._integrate(idx, te)
        p = self._power_at(idx, te)
        g = self.pending_goal[idx]
        opposite = (p != 0) & (np.sign(g) != np.sign(p))
        self.p_ref[idx], self.t_ref[idx] = p, te
        self.goal[idx] = np.where(opposite, 0.0, g)
        self.then_goal[idx] = np.where(opposite & (g != 0), g, np.nan)
        up = ~opposite & (np.abs(g) >= np.abs(p))
        self.rate[idx] = np.where(up, self.ramp_up[idx], self.ramp_down[idx])
        self.pending_goal[idx], self.pending_t[idx] = np.nan, np.inf
        self.last_effect_ms[idx] = te
        reversing = idx[~np.isnan(self.then_goal[idx])]
        self._push(self._reach_time(reversing), ZERO, reversing)

    def _apply_zero_reached(self, idx):
        te = self._reach_time(idx)
        self._integrate(idx, te)
        self.p_ref[idx], self.t_ref[idx], self.goal[idx], self.rate[idx] = 0.0, te, 0.0, 0.0
        self.pending_goal[idx] = self.then_goal[idx]
        self.pending_t[idx] = te + self.start_delay_ms[idx]
        self.then_goal[idx] = np.nan
        self._push(self.pending_t[idx], PENDING, idx)

    def _apply_departure(self, idx):
        te = self.departure_ms[idx]
        self._integrate(idx, te)
        self.p_ref[idx], self.t_ref[idx] = self._power_at(idx, te), te
        self.goal[idx], self.rate[idx] = 0.0, self.ramp_down[idx]
        self.then_goal[idx], self.pending_goal[idx], self.pending_t[idx] = np.nan, np.nan, np.inf
        self.departed[idx] = True

    def _push(self, times, kind: int, idx) -> None:
        for t, i in zip(np.asarray(times, dtype=float).tolist(), np.asarray(idx).tolist()):
            heapq.heappush(self._events, (t, kind, i))

    def _pop_due(self, t: float):
        """All events at the earliest time if that is <= t, as (time, {kind: vehicle indices}); else None."""
        if not self._events or self._events[0][0] > t:
            return None
        t0 = self._events[0][0]
        found: dict[int, list[int]] = {DEPARTURE: [], PENDING: [], ZERO: []}
        while self._events and self._events[0][0] == t0:
            _, kind, i = heapq.heappop(self._events)
            found[kind].append(i)
        return t0, {k: np.unique(np.asarray(v, dtype=int)) for k, v in found.items()}

    def advance(self, t_ms: int) -> None:
        """Move every vehicle to time ``t_ms`` (>= the current time), processing due events in order."""
        if t_ms < self.t_ms:
            raise ValueError(f"ChargerFleet cannot go back in time: {t_ms} < {self.t_ms}")
        t = float(t_ms)
        while (due := self._pop_due(t)) is not None:
            t0, by_kind = due
            # stale entries (superseded by a later setpoint, a departure, a limit) are skipped here
            idx = by_kind[DEPARTURE]
            idx = idx[~self.departed[idx] & (self.departure_ms[idx] == t0)]
            if idx.size:
                self._apply_departure(idx)
            idx = by_kind[PENDING]
            idx = idx[self.pending_t[idx] == t0]
            if idx.size:
                self._apply_pending(idx)
            idx = by_kind[ZERO]
            idx = idx[~np.isnan(self.then_goal[idx])]
            idx = idx[self._reach_time(idx) == t0]
            if idx.size:
                self._apply_zero_reached(idx)
        self.t_ms = int(t_ms)
        if t >= self._limit_check_ms:
            self._enforce_energy_limits()

    def _next_limit_check(self, idx=slice(None)):
        """Earliest time any of vehicles ``idx`` could reach an energy limit, were it at full power from now."""
        self._integrate(idx, float(self.t_ms))
        cap, energy = self.capacity_kwh[idx], self.energy_kwh[idx]
        with np.errstate(divide="ignore", invalid="ignore"):
            to_full = (self.soc_max[idx] * cap - energy) / (self.p_max[idx] * self.eta_charge[idx])
            to_empty = (energy - self.soc_min[idx] * cap) * self.eta_discharge[idx] / -self.p_min[idx]
        both = np.concatenate([to_full, to_empty])
        # a vehicle at a limit cannot cross it (its setpoints are clipped) until a new setpoint
        # arrives, and every setpoint brings the horizon forward for its vehicle: leave it out
        hours = np.min(np.where(both > 0, both, np.inf), initial=np.inf)
        return self.t_ms + hours * 3.6e6  # hours -> ms

    def _enforce_energy_limits(self):
        p_min, p_max = self.limits_kw()  # (integrates energy up to now)
        p_now = self.power_kw()
        over = (p_now > p_max) | (self.goal > p_max) | (p_now < p_min) | (self.goal < p_min)
        if over.any():
            idx = np.flatnonzero(over)
            self.p_ref[idx], self.t_ref[idx] = p_now[idx], float(self.t_ms)
            self.goal[idx] = np.clip(0.0, p_min[idx], p_max[idx])
            self.rate[idx] = self.ramp_down[idx]
            self.then_goal[idx] = np.nan
        for goals in (self.pending_goal, self.then_goal):
            has = ~np.isnan(goals)
            goals[has] = np.clip(goals[has], p_min[has], p_max[has])
        self._limit_check_ms = self._next_limit_check()

    # -- commands ---------------------------------------------------------------------------
    def realisable_kw(self, idx, kw):
        """The setpoint the charger can actually apply: rounded to its step, then the minimum power."""
        step = self.setpoint_step_kw[idx]
        with np.errstate(invalid="ignore", divide="ignore"):
            kw = np.where(step > 0, np.round(kw / step) * step, kw)
        floor = self.min_power_kw[idx]
        small = (np.abs(kw) < floor) & (kw != 0)
        return np.where(small, np.where(np.abs(kw) < floor / 2, 0.0, np.sign(kw) * floor), kw)

    def command(self, t_ms: int, vehicles, setpoint_kw, seq=None) -> None:
        """Setpoints received at ``t_ms`` by ``vehicles`` (indices). Advances to ``t_ms`` first. With ``seq``
        (the aggregator's sequence numbers; negative: unnumbered), a setpoint numbered below the newest one a
        vehicle already has is stale and ignored, as a charger keeps the newest charging profile."""
        self.advance(t_ms)
        idx = np.asarray(vehicles, dtype=int)
        kw = np.asarray(setpoint_kw, dtype=float)
        keep = self.plugged_now()[idx]
        if seq is not None:
            seq = np.asarray(seq, dtype=np.int64)
            # two setpoints for one vehicle in the same millisecond: the higher number wins (else the later)
            order = np.lexsort((np.arange(idx.size), seq, idx))
            newest = np.zeros(idx.size, dtype=bool)
            newest[order[np.r_[idx[order][1:] != idx[order][:-1], True]]] = True
            fresh = newest & ((seq < 0) | (seq >= self.last_seq[idx]))
            self.stale_ignored += int(np.sum(keep & ~fresh))
            keep &= fresh
            np.maximum.at(self.last_seq, idx[keep], seq[keep])
        idx, kw = idx[keep], kw[keep]
        if idx.size == 0:
            return
        p_min, p_max = self.limits_kw(idx)
        kw = self.realisable_kw(idx, np.clip(kw, p_min, p_max))
        current = np.where(np.isnan(self.then_goal[idx]), self.goal[idx], self.then_goal[idx])
        reversal, up = classify(current, kw)
        delay = np.where(up, self.start_delay_ms[idx], self.stop_delay_ms[idx])
        self.pending_goal[idx] = kw
        self.pending_t[idx] = np.minimum(self.pending_t[idx], t_ms + delay)  # no pending: +inf
        self._push(self.pending_t[idx], PENDING, idx)
        # these vehicles' motion changed: make sure a limit they could now reach is checked in time
        self._limit_check_ms = min(self._limit_check_ms, self._next_limit_check(idx))
