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
* Every setpoint takes effect its own delay after it was received (t_a up, t_c down, classified against
  the newest target the charger has, queued ones included): a setpoint updated every few milliseconds
  is followed with exactly the measured latency, neither never (a delay restarted by every update) nor
  sooner (an update applied early because an earlier one was pending). An older value never takes effect
  after a newer one: a newer setpoint due sooner (a quick stop after a slow start) cancels those queued
  behind it. A setpoint that takes effect in the middle of a ramp re-anchors the ramp at the current
  power: power is continuous, it never jumps.
* If, when a setpoint takes effect, the power still has the opposite sign (an earlier motion did
  not finish), the vehicle first ramps to zero, as for a reversal.
* Energy: the battery gains ``eta_charge * P`` while importing and loses ``|P| / eta_discharge``
  while exporting (integrated exactly over each linear piece; pieces never cross zero). A vehicle
  whose state of charge reaches ``soc_max`` stops importing, one at ``soc_min`` stops exporting:
  it ramps to zero at ``ramp_down`` with no delay, and later setpoints beyond that limit are clipped.
  The limit is checked at every ``advance`` from the moment any vehicle could have reached it at full
  power (before that, checking cannot find anything), so it is detected to within one simulator step.
  Energy is integrated lazily: at events, limit checks, and whenever ``soc`` is read.
* Each time a vehicle comes to a limit (its reserve, or full) the model notes the moment it acted on it: the
  ``limit_events`` (time, vehicle, -1 reserve / +1 full), taken with ``take_limit_events``. The analysis names
  energy as the cause of a shortfall from these, the model's own events, not from sampled states of charge.
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

import collections
import heapq
import itertools

import numpy as np

KWMS_PER_KWH = 3.6e6  # kW x ms in one kWh
# a state of charge within this of soc_min / soc_max is at that limit: the run records the state of charge as
# float32 (about 7 digits; 0.2 is stored as 0.20000000298), and the model and the analysis must agree on who
# is at a limit (1e-6 of a 100 kWh battery is 0.1 Wh)
SOC_AT_LIMIT = 1e-6
DEPARTURE, PENDING, ZERO = 0, 1, 2  # event kinds, in the order they apply at equal times
_BLOCK = 1 << 20  # most (vehicles x times) powers total_power_at evaluates at once (8 MB of float64)

PARAMETERS = (
    "start_delay_ms", "stop_delay_ms", "ramp_up_kw_per_s", "ramp_down_kw_per_s",
    "p_min_kw", "p_max_kw", "baseline_kw", "capacity_kwh", "soc", "soc_min", "soc_max",
    "eta_charge", "eta_discharge", "plugged",
)
OPTIONAL_PARAMETERS = {"arrival_ms": 0.0, "departure_ms": np.inf, "min_power_kw": 0.0, "setpoint_step_kw": 0.0}


def at_soc_limits(soc, soc_min, soc_max) -> tuple[np.ndarray, np.ndarray]:
    """(at or below its reserve, at or above full) per vehicle, within SOC_AT_LIMIT: the one rule the model,
    the verdict and the causes share."""
    soc = np.asarray(soc, float)
    return soc <= np.asarray(soc_min, float) + SOC_AT_LIMIT, soc >= np.asarray(soc_max, float) - SOC_AT_LIMIT


def floats(values, default: float) -> np.ndarray:
    """Per-vehicle numbers as a float array, each ``None`` (not given) replaced by ``default``."""
    out = np.array(values, dtype=float)  # None becomes NaN
    out[np.isnan(out)] = default
    return out


def plug_windows(vehicles: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(plugged, arrival_ms, departure_ms) from per-vehicle lists; without arrival_ms a vehicle is there
    from the start, and a missing or None departure_ms means it never leaves."""
    plugged = np.asarray(vehicles["plugged"], dtype=bool)
    n = plugged.size
    arrival = vehicles.get("arrival_ms")
    arrival = np.zeros(n) if arrival is None or len(arrival) == 0 else np.asarray(arrival, dtype=float)
    departure = vehicles.get("departure_ms")
    departure = np.full(n, np.inf) if departure is None or len(departure) == 0 else floats(departure, np.inf)
    return plugged, arrival, departure


def present(vehicles: dict, t_ms: float) -> np.ndarray:
    """Which vehicles are plugged in at ``t_ms`` (plugged, arrived, not yet departed)."""
    plugged, arrival, departure = plug_windows(vehicles)
    return plugged & (arrival <= t_ms) & (t_ms < departure)


def scheduled_kw(vehicles: dict, t_ms) -> np.ndarray:
    """The fleet's baseline at each time of ``t_ms``: the sum of ``baseline_kw`` over the vehicles plugged in
    then (what it would draw with no service; a market's declared baseline)."""
    plugged, arrival, departure = plug_windows(vehicles)
    base = np.where(plugged, np.asarray(vehicles["baseline_kw"], float), 0.0)
    times = np.concatenate([arrival, departure])
    steps = np.concatenate([base, -base])
    order = np.argsort(times, kind="stable")
    times, level = times[order], np.cumsum(steps[order])
    idx = np.searchsorted(times, np.asarray(t_ms, dtype=float), side="right") - 1
    return np.where(idx >= 0, level[np.clip(idx, 0, None)], 0.0)


def soc_limited_kw(vehicles: dict, soc) -> tuple[np.ndarray, np.ndarray]:
    """(p_min, p_max) of plugged vehicles at state of charge ``soc``: a vehicle at its reserved minimum is not
    asked to export, a full one not to import (the rule ``ChargerFleet`` applies to its own setpoints)."""
    plugged = np.asarray(vehicles["plugged"], dtype=bool)
    p_min = np.where(plugged, np.asarray(vehicles["p_min_kw"], float), 0.0)
    p_max = np.where(plugged, np.asarray(vehicles["p_max_kw"], float), 0.0)
    if soc is None:
        return p_min, p_max
    empty, full = at_soc_limits(soc, vehicles["soc_min"], vehicles["soc_max"])
    p_min = np.where(empty, np.maximum(p_min, 0.0), p_min)
    p_max = np.where(full, np.minimum(p_max, 0.0), p_max)
    return p_min, p_max


def headroom_kw(sign: int, vehicles: dict, soc, t_ms: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per vehicle at ``t_ms`` and state of charge ``soc``, in direction ``sign`` (-1: import less / export,
    +1: import more / export less): (headroom, the part of it that costs no energy (charging less, or
    exporting less), kWh the rest may use at the grid side)."""
    here = present(vehicles, t_ms)
    base = np.asarray(vehicles["baseline_kw"], float)
    cap = np.asarray(vehicles["capacity_kwh"], float)
    soc = np.asarray(soc, float)
    p_min, p_max = soc_limited_kw(vehicles, soc)
    if sign < 0:
        head = np.where(here, np.maximum(base - np.minimum(p_min, base), 0.0), 0.0)
        free = np.minimum(head, np.maximum(base, 0.0))
        energy = np.maximum(soc - np.asarray(vehicles["soc_min"], float), 0.0) * cap * np.asarray(
            vehicles["eta_discharge"], float)
    else:
        head = np.where(here, np.maximum(np.maximum(p_max, base) - base, 0.0), 0.0)
        free = np.minimum(head, np.maximum(-base, 0.0))
        energy = np.maximum(np.asarray(vehicles["soc_max"], float) - soc, 0.0) * cap / np.asarray(
            vehicles["eta_charge"], float)
    return head, free, np.where(here, energy, 0.0)


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
            arr[k] = np.full(self.n, float(default)) if value is None else floats(value, default)
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
        self._at_limit = np.zeros(self.n, dtype=np.int8)  # -1 at its reserve, +1 full, 0 neither
        self._limit_events: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.last_seq = np.full(self.n, -1, dtype=np.int64)  # newest setpoint number each vehicle has
        self.stale_ignored = 0

        self.t_ms = int(t0_ms)
        present = (self.arrival_ms <= t0_ms) & (t0_ms < self.departure_ms)
        self.p_ref = np.where(present, np.clip(arr["baseline_kw"], self.p_min, self.p_max), 0.0)
        self.t_ref = np.full(self.n, float(t0_ms))
        self.goal = self.p_ref.copy()
        self.rate = np.zeros(self.n)
        self.then_goal = np.full(self.n, np.nan)   # goal after a reversal has reached zero
        # setpoints received and not yet in effect, per vehicle, in the order they take effect: [time, kW];
        # the first is mirrored in pending_t / pending_goal (vectorised checks, the event heap)
        # (a deque only for vehicles with something queued: a million empty deques would cost ~0.6 GB)
        self._queue: dict[int, collections.deque] = {}
        self.pending_goal = np.full(self.n, np.nan)
        self.pending_t = np.full(self.n, np.inf)
        self.t_energy = np.full(self.n, float(t0_ms))
        self.last_effect_ms = np.full(self.n, np.nan)
        leaving = np.flatnonzero(np.isfinite(self.departure_ms))
        self._events: list[tuple[float, int, int]] = list(zip(
            self.departure_ms[leaving].tolist(), itertools.repeat(DEPARTURE), leaving.tolist()))
        heapq.heapify(self._events)
        self._limit_check_ms = -np.inf
        self._moving = None  # vehicles still ramping (None: to be found again after a change of motion)
        self._reach_all = None  # every vehicle's reach time, kept until some motion changes
        self._energy_rate = None  # kWh per ms of each vehicle at its target (the same)

    # -- evaluation -------------------------------------------------------------------------
    def _power_at(self, idx, t):
        dist = self.goal[idx] - self.p_ref[idx]
        moved = np.minimum(self.rate[idx] * (t - self.t_ref[idx]), np.abs(dist))
        return self.p_ref[idx] + np.sign(dist) * moved

    def _reach_time(self, idx):
        dist = np.abs(self.goal[idx] - self.p_ref[idx])
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(dist == 0, self.t_ref[idx], self.t_ref[idx] + dist / self.rate[idx])

    def _reach_times(self) -> np.ndarray:
        """Every vehicle's reach time, kept until some vehicle's motion changes."""
        if self._reach_all is None:
            self._reach_all = self._reach_time(slice(None))
        return self._reach_all

    def power_kw(self) -> np.ndarray:
        """Power of every vehicle at the current time (kW, + import)."""
        return self._power_at(slice(None), float(self.t_ms))

    def total_power_kw(self) -> float:
        """The fleet's power now (kW), kept incrementally: vehicles at their target count once into a fixed
        sum, only those still ramping are evaluated, and the split is redone only when some vehicle's
        motion changes (a setpoint taking effect, a departure, a reversal, an energy limit), not per sample."""
        t = float(self.t_ms)
        if self._moving is None:
            reach = self._reach_times()
            moving = reach > t
            self._static_kw = float(self.goal[~moving].sum())
            self._moving = np.flatnonzero(moving)
            self._moving_reach = reach[moving]
        else:
            done = self._moving_reach <= t
            if done.any():
                self._static_kw += float(self.goal[self._moving[done]].sum())
                self._moving, self._moving_reach = self._moving[~done], self._moving_reach[~done]
        return self._static_kw + float(self._power_at(self._moving, t).sum())

    def total_power_at(self, times) -> np.ndarray:
        """The fleet's power (kW) at each of ``times`` (integer ms, ascending, none before now), leaving the fleet
        at the last: what ``advance(t); total_power_kw()`` gives at each, with the times before the next
        change of motion (a due event or energy-limit check) evaluated together, as one array over the vehicles
        still ramping and those times. Advancing to a time before any event changes nothing but the clock."""
        times = np.asarray(times, dtype=np.int64)
        if times.size and times[0] < self.t_ms:
            raise ValueError(f"ChargerFleet cannot go back in time: {int(times[0])} < {self.t_ms}")
        out = np.empty(times.size)
        k = 0
        while k < times.size:
            change = min(self._events[0][0] if self._events else np.inf, self._limit_check_ms)
            j = k + int(np.searchsorted(times[k:], change, side="left"))  # times[k:j] come before it
            if j == k:
                self.advance(int(times[k]))
                out[k] = self.total_power_kw()
                k += 1
                continue
            self.t_ms = int(times[k])
            out[k] = self.total_power_kw()  # also splits moving / settled vehicles as of now
            moving = self._moving
            if moving.size and j > k + 1:
                rest = times[k + 1:j].astype(float)
                per = max(1, _BLOCK // moving.size)  # bound the (vehicles x times) block
                for a in range(0, rest.size, per):
                    chunk = rest[a:a + per]
                    ramping = self._power_at(moving[:, None], chunk[None, :]).sum(axis=0)
                    out[k + 1 + a:k + 1 + a + chunk.size] = self._static_kw + ramping
            else:
                out[k + 1:j] = out[k]
            self.t_ms = int(times[j - 1])
            k = j
        return out

    @property
    def soc(self) -> np.ndarray:
        """State of charge of every vehicle now. Ramping vehicles are integrated exactly; a vehicle already at
        its target since its energy clock draws a constant power, so its energy is that clock's plus a fixed
        rate times the time since (kept until some motion changes), with nothing written back."""
        t = float(self.t_ms)
        ramping = np.flatnonzero(self._reach_times() > self.t_energy)
        if ramping.size:
            self._integrate(ramping, t)  # their energy clock moves to t: the rate term below adds nothing
        if self._energy_rate is None:
            g = self.goal
            with np.errstate(divide="ignore", invalid="ignore"):
                self._energy_rate = np.where(g >= 0, g * self.eta_charge, g / self.eta_discharge) / KWMS_PER_KWH
        return (self.energy_kwh + self._energy_rate * (t - self.t_energy)) / self.capacity_kwh

    def meters(self, idx) -> tuple[np.ndarray, np.ndarray]:
        """What the meters of vehicles ``idx`` read now: (plugged in, power in kW)."""
        return self._plugged_at(idx, self.t_ms), self._power_at(idx, float(self.t_ms))

    def _plugged_at(self, idx, t) -> np.ndarray:
        """Whether vehicles ``idx`` are plugged in at ``t`` (one time, or one per vehicle)."""
        return self.plugged[idx] & (self.arrival_ms[idx] <= t) & (t < self.departure_ms[idx])


    def limits_kw(self, idx=slice(None)) -> tuple[np.ndarray, np.ndarray]:
        """(p_min, p_max) vehicles ``idx`` can be asked for now, after plug state and energy limits."""
        self._integrate(idx, float(self.t_ms))
        return self._limits(idx, self.energy_kwh[idx], self._plugged_at(idx, self.t_ms))

    def _limits(self, idx, energy, here) -> tuple[np.ndarray, np.ndarray]:
        """(p_min, p_max) of vehicles ``idx`` holding ``energy`` (kWh), plugged in where ``here``."""
        soc = energy / self.capacity_kwh[idx]
        empty, full = at_soc_limits(soc, self.soc_min[idx], self.soc_max[idx])
        p_max = np.where(here, np.where(full, np.minimum(self.p_max[idx], 0.0), self.p_max[idx]), 0.0)
        p_min = np.where(here, np.where(empty, np.maximum(self.p_min[idx], 0.0), self.p_min[idx]), 0.0)
        return p_min, p_max

    # -- time -------------------------------------------------------------------------------
    def _integrate(self, idx, t_to):
        """Add the battery energy of vehicles ``idx`` from their energy clock up to ``t_to``."""
        if isinstance(idx, slice) and idx == slice(None) and np.ndim(t_to) == 0:
            # the whole fleet (each recorded step): vehicles already at their target since their energy clock
            # draw a constant power; only those still ramping need the piecewise integral
            settled = self._reach_times() <= self.t_energy
            g = self.goal[settled]
            area = g * (float(t_to) - self.t_energy[settled])
            with np.errstate(divide="ignore", invalid="ignore"):
                de = np.where(g >= 0, area * self.eta_charge[settled], area / self.eta_discharge[settled])
            self.energy_kwh[settled] += de / KWMS_PER_KWH
            self.t_energy[settled] = float(t_to)
            idx = np.flatnonzero(~settled)
            if idx.size == 0:
                return
        self.energy_kwh[idx], self.t_energy[idx] = self._energy_to(idx, t_to)

    def _energy_to(self, idx, t_to) -> tuple[np.ndarray, np.ndarray]:
        """(battery energy, energy clock) of vehicles ``idx`` integrated from their energy clock up to ``t_to``
        (one time, or one per vehicle), not written back."""
        a = self.t_energy[idx]
        b = np.broadcast_to(np.asarray(t_to, dtype=float), a.shape)
        reach = np.clip(self._reach_time(idx), a, b)
        pa = self._power_at(idx, a)
        pr = self._power_at(idx, reach)
        area = 0.5 * (pa + pr) * (reach - a) + pr * (b - reach)  # kW x ms
        charging = (pa + pr) >= 0
        with np.errstate(divide="ignore", invalid="ignore"):
            de = np.where(charging, area * self.eta_charge[idx], area / self.eta_discharge[idx])
        return self.energy_kwh[idx] + de / KWMS_PER_KWH, b

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
        for i in idx.tolist():
            q = self._queue[i]
            q.popleft()
            if not q:
                del self._queue[i]
        self._sync_heads(idx)
        self.last_effect_ms[idx] = te
        self._moving = self._reach_all = self._energy_rate = None
        reversing = idx[~np.isnan(self.then_goal[idx])]
        self._push(self._reach_time(reversing), ZERO, reversing)

    def _apply_zero_reached(self, idx):
        te = self._reach_time(idx)
        self._integrate(idx, te)
        self.p_ref[idx], self.t_ref[idx], self.goal[idx], self.rate[idx] = 0.0, te, 0.0, 0.0
        restart = te + self.start_delay_ms[idx]
        for i, t_restart, value in zip(idx.tolist(), restart.tolist(), self.then_goal[idx].tolist()):
            q = self._queue.setdefault(i, collections.deque())  # setpoints due before the restart take effect with it
            while q and q[0][0] <= t_restart:
                value = q.popleft()[1]
            q.appendleft([t_restart, value])
        self.then_goal[idx] = np.nan
        self._sync_heads(idx)
        self._moving = self._reach_all = self._energy_rate = None

    def _apply_departure(self, idx):
        te = self.departure_ms[idx]
        self._integrate(idx, te)
        self.p_ref[idx], self.t_ref[idx] = self._power_at(idx, te), te
        self.goal[idx], self.rate[idx] = 0.0, self.ramp_down[idx]
        self.then_goal[idx] = np.nan
        for i in idx.tolist():
            self._queue.pop(i, None)
        self._sync_heads(idx)
        self.departed[idx] = True
        self._moving = self._reach_all = self._energy_rate = None

    def _sync_heads(self, idx) -> None:
        """Mirror each vehicle's first queued setpoint in pending_t / pending_goal, and schedule the vehicles whose
        first one changed. (A vehicle given twice is scheduled twice: ``_pop_due`` applies an event once.)"""
        idx = np.asarray(idx, dtype=int)
        if idx.size == 0:
            return
        heads = [q[0] if (q := self._queue.get(i)) else None for i in idx.tolist()]
        t = np.array([h[0] if h else np.inf for h in heads], dtype=float)
        changed = idx[self.pending_t[idx] != t]
        self.pending_t[idx] = t
        self.pending_goal[idx] = np.array([h[1] if h else np.nan for h in heads], dtype=float)
        self._push(self.pending_t[changed], PENDING, changed)

    def _push(self, times, kind: int, idx) -> None:
        for t, i in zip(np.asarray(times, dtype=float).tolist(), np.asarray(idx).tolist()):
            heapq.heappush(self._events, (t, kind, i))

    def _pop_due(self, t: float):
        """Each vehicle's earliest due event (at or before ``t``) as ``{kind: (vehicle indices, event times)}`` (the
        kinds with one), its later ones left in the heap; None when nothing is due. A vehicle's events apply in their
        order; different vehicles' do not touch each other, so each one's earliest are applied together, each at its
        own time."""
        if not self._events or self._events[0][0] > t:
            return None
        first: dict[int, tuple] = {}
        later = []
        while self._events and self._events[0][0] <= t:
            event = heapq.heappop(self._events)
            if event[2] not in first:
                first[event[2]] = event
            elif event != first[event[2]]:  # (the same event twice: once is enough)
                later.append(event)
        for event in later:
            heapq.heappush(self._events, event)
        found: dict[int, tuple[list, list]] = {}
        for te, kind, i in first.values():
            vehicles, times = found.setdefault(kind, ([], []))
            vehicles.append(i)
            times.append(te)
        return {k: (np.asarray(v, dtype=int), np.asarray(at, dtype=float)) for k, (v, at) in found.items()}

    def advance(self, t_ms: int) -> None:
        """Move every vehicle to time ``t_ms`` (>= the current time), processing due events in order (each
        vehicle's in its own order: see ``_pop_due``)."""
        if t_ms < self.t_ms:
            raise ValueError(f"ChargerFleet cannot go back in time: {t_ms} < {self.t_ms}")
        t = float(t_ms)
        while (by_kind := self._pop_due(t)) is not None:
            # stale entries (superseded by a later setpoint, a departure, a limit) are skipped here; departures
            # first, then setpoints taking effect, then reversals reaching zero, each kind checked after the last
            if DEPARTURE in by_kind:
                idx, at = by_kind[DEPARTURE]
                idx = idx[~self.departed[idx] & (self.departure_ms[idx] == at)]
                if idx.size:
                    self._apply_departure(idx)
            if PENDING in by_kind:
                idx, at = by_kind[PENDING]
                idx = idx[self.pending_t[idx] == at]
                if idx.size:
                    self._apply_pending(idx)
            if ZERO in by_kind:
                idx, at = by_kind[ZERO]
                live = ~np.isnan(self.then_goal[idx])
                idx, at = idx[live], at[live]
                idx = idx[self._reach_time(idx) == at]
                if idx.size:
                    self._apply_zero_reached(idx)
        self.t_ms = int(t_ms)
        if t >= self._limit_check_ms:
            self._enforce_energy_limits()

    def _next_limit_check(self, idx=slice(None)):
        """Earliest time any of vehicles ``idx`` could reach an energy limit, were it at full power from now."""
        self._integrate(idx, float(self.t_ms))
        hours = np.min(self._hours_to_limit(idx, self.energy_kwh[idx]), initial=np.inf)
        return self.t_ms + hours * 3.6e6  # hours -> ms

    def _hours_to_limit(self, idx, energy) -> np.ndarray:
        """Hours each of vehicles ``idx`` holding ``energy`` (kWh) would take to reach a limit at full power
        (infinite for one at a limit: its setpoints are clipped, and every new setpoint brings its horizon
        forward, so until then it cannot cross it)."""
        cap = self.capacity_kwh[idx]
        with np.errstate(divide="ignore", invalid="ignore"):
            to_full = (self.soc_max[idx] * cap - energy) / (self.p_max[idx] * self.eta_charge[idx])
            to_empty = (energy - self.soc_min[idx] * cap) * self.eta_discharge[idx] / -self.p_min[idx]
        return np.minimum(np.where(to_full > 0, to_full, np.inf), np.where(to_empty > 0, to_empty, np.inf))

    def _note_limits(self, p_min, p_max):
        """Record the vehicles that came to a limit now (the model's event, not a sample)."""
        state = np.where(p_min > self.p_min, -1, np.where(p_max < self.p_max, 1, 0)).astype(np.int8)
        new = np.flatnonzero((state != 0) & (state != self._at_limit))
        if new.size:
            self._limit_events.append((np.full(new.size, self.t_ms, dtype=np.int64), new, state[new].copy()))
        self._at_limit = state

    def take_limit_events(self) -> dict[str, list]:
        """The limit events since the last call: ``{"time_ms", "vehicle", "limit"}`` (limit -1: reached its
        reserve, cannot export; +1: full, cannot import)."""
        events, self._limit_events = self._limit_events, []
        if not events:
            return {"time_ms": [], "vehicle": [], "limit": []}
        return {k: np.concatenate([e[j] for e in events]).tolist() for j, k in enumerate(("time_ms", "vehicle", "limit"))}

    def _enforce_energy_limits(self):
        p_min, p_max = self.limits_kw()  # (integrates energy up to now)
        self._note_limits(p_min, p_max)
        p_now = self.power_kw()
        over = (p_now > p_max) | (self.goal > p_max) | (p_now < p_min) | (self.goal < p_min)
        if over.any():
            idx = np.flatnonzero(over)
            self.p_ref[idx], self.t_ref[idx] = p_now[idx], float(self.t_ms)
            self.goal[idx] = np.clip(0.0, p_min[idx], p_max[idx])
            self.rate[idx] = self.ramp_down[idx]
            self.then_goal[idx] = np.nan
            self._moving = self._reach_all = self._energy_rate = None
        self.then_goal[:] = np.where(np.isnan(self.then_goal), np.nan, np.clip(self.then_goal, p_min, p_max))
        for i in np.flatnonzero((p_min > self.p_min) | (p_max < self.p_max)).tolist():  # at an energy limit
            for item in self._queue.get(i, ()):
                item[1] = min(max(item[1], p_min[i]), p_max[i])
        self.pending_goal[:] = np.where(np.isnan(self.pending_goal), np.nan,
                                        np.clip(self.pending_goal, p_min, p_max))
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
        self._receive(np.full(idx.size, int(t_ms), dtype=np.int64), idx, setpoint_kw, seq)

    def command_many(self, times, vehicles, setpoint_kw, seq=None) -> int:
        """Setpoints received at their own ``times`` (integer ms, ascending, none before now) by ``vehicles``:
        what one ``command`` per time does, several times at once. Advances to the first time and applies its
        setpoints and those of the following times while that is exactly what ``command`` would do: up to a
        vehicle's second time, a time at or after an event of one of its vehicles (a setpoint taking effect, a
        reversal reaching zero, a departure: ``command`` would apply it first), or a time at or after the fleet's
        next energy-limit check, these setpoints' own horizons included (``command``'s advance would act on it
        first). Events of other vehicles do not touch these: they stay in the heap, for the next ``advance``.
        Returns how many setpoints it applied; the rest are the caller's to give again after what is due before
        them. The clock stays at the first time."""
        times = np.asarray(times, dtype=np.int64)
        if times.size == 0:
            return 0
        self.advance(int(times[0]))
        idx = np.asarray(vehicles, dtype=int)
        first = int(np.searchsorted(times, times[0], side="right"))
        n = times.size
        if n > first:
            # each vehicle's next event; a time at or after one of its vehicles' ends the run
            nxt = np.minimum(self.pending_t[idx], np.where(self.departed[idx], np.inf, self.departure_ms[idx]))
            zero = ~np.isnan(self.then_goal[idx])
            nxt[zero] = np.minimum(nxt[zero], self._reach_time(idx[zero]))
            late = np.flatnonzero((nxt <= times) | (times >= self._limit_check_ms))
            # one time per vehicle: a vehicle's second time ends the run
            order = np.lexsort((times, idx))
            again = np.r_[False, (idx[order][1:] == idx[order][:-1]) & (times[order][1:] != times[order][:-1])]
            stop = min(int(late[0]) if late.size else n, int(order[again].min()) if again.any() else n)
            n = max(first, int(np.searchsorted(times, times[stop], side="left")) if stop < n else n)
        return self._receive(times[:n], idx[:n], np.asarray(setpoint_kw, dtype=float)[:n],
                             None if seq is None else np.asarray(seq, dtype=np.int64)[:n])

    def _receive(self, times, idx, setpoint_kw, seq) -> int:
        """Apply setpoints received at ``times`` (ascending, the first now; no vehicle at two times; none at or
        after an event of its vehicle or the limit check), each time's as ``command`` applies them, as many
        leading times as come before the limit horizons the earlier ones bring; returns how many setpoints."""
        if idx.size == 0:
            return 0
        t = times.astype(float)
        kw = np.asarray(setpoint_kw, dtype=float)
        keep = self._plugged_at(idx, t)
        if seq is not None:
            seq = np.asarray(seq, dtype=np.int64)
            # two setpoints for one vehicle in the same millisecond: the higher number wins (else the later)
            order = np.lexsort((np.arange(idx.size), seq, idx))
            newest = np.zeros(idx.size, dtype=bool)
            newest[order[np.r_[idx[order][1:] != idx[order][:-1], True]]] = True
            fresh = newest & ((seq < 0) | (seq >= self.last_seq[idx]))
            stale = keep & ~fresh
            keep &= fresh
        kept = np.flatnonzero(keep)
        i, at = idx[kept], t[kept]
        energy, clock = self._energy_to(i, at)  # each one's energy and limits as of its own time
        # each time's new limit horizon: a later time applies with the earlier ones only before it (an advance to
        # it would enforce the limits first, even with nothing kept at it)
        hours = np.full(idx.size, np.inf)
        hours[kept] = self._hours_to_limit(i, energy)
        starts = np.flatnonzero(np.r_[True, times[1:] != times[:-1]])
        horizon = times[starts] + np.minimum.reduceat(hours, starts) * 3.6e6
        late = np.flatnonzero(np.minimum.accumulate(horizon)[:-1] <= times[starts[1:]])
        groups = int(late[0]) + 1 if late.size else starts.size
        applied = int(starts[groups]) if groups < starts.size else idx.size
        if seq is not None:
            self.stale_ignored += int(np.sum(stale[:applied]))
            np.maximum.at(self.last_seq, idx[:applied][keep[:applied]], seq[:applied][keep[:applied]])
        c = int(np.searchsorted(kept, applied))  # kept setpoints applied
        if c == 0:
            return applied
        i, at, energy = i[:c], at[:c], energy[:c]
        self.energy_kwh[i], self.t_energy[i] = energy, clock[:c]
        p_min, p_max = self._limits(i, energy, True)
        kw = self.realisable_kw(i, np.clip(kw[kept[:c]], p_min, p_max))
        # against the newest target the charger has: the last one queued, else the one it is executing
        current = np.where(np.isnan(self.then_goal[i]), self.goal[i], self.then_goal[i])
        current = np.array([q[-1][1] if (q := self._queue.get(v)) else c for v, c in zip(i.tolist(), current.tolist())])
        reversal, up = classify(current, kw)
        effect = at + np.where(up, self.start_delay_ms[i], self.stop_delay_ms[i])
        changes = kw != current  # the target it already has: nothing to do
        for v, t_effect, value in zip(i[changes].tolist(), effect[changes].tolist(), kw[changes].tolist()):
            q = self._queue.setdefault(v, collections.deque())
            while q and q[-1][0] >= t_effect:  # superseded: an older value never takes effect after a newer one
                q.pop()
            q.append([t_effect, value])
        self._sync_heads(i)
        # these vehicles' motion changed: make sure a limit they could now reach is checked in time
        self._limit_check_ms = min(self._limit_check_ms, float(horizon[:groups].min()))
        return applied
