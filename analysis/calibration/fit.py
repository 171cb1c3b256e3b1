"""Fitting the response model to one vehicle's setpoint steps.

The model (``sims/obc.py``) answers a step from ``p0`` to ``p1`` after a delay (``t_a`` when the magnitude rises,
``t_c`` when it falls), then ramps linearly at a rate (``ramp_up`` / ``ramp_down``, kW/s) until it holds. For each
step in a log this finds, from the samples alone:

* ``p0`` and the noise: the median and the robust spread (1.4826 x MAD) of the power before the step;
* ``p1``: the level it settles at (the median of the window's last fifth), so a step the charger only partly
  follows is fitted as what it did;
* the ramp: a straight line through the samples between 10 % and 90 % of the change (least squares); its slope
  is the ramp rate, and where it leaves ``p0`` and reaches ``p1`` are the start and the end of the ramp;
* when the ramp is faster than the sampling (fewer than two samples inside it), the start is taken midway between
  the last sample before the change and the first one after it, and the ramp rate is only bounded from below:
  the fit says so (``ramp_resolved`` False) and widens the uncertainty to what the sampling allows.

Each parameter comes with its uncertainty: the line's standard errors and, for times, half a sample interval (the
moment of a change is known only to within the samples around it). Steps that do not fit are kept with the reason
(``rejected``): no response beyond the noise, a reversal (charging to discharging, which the model treats as two
motions), or too few samples after the step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MIN_STEP_KW = 0.5          # a setpoint change smaller than this is no step
NOISE_SIGMAS = 4.0         # a change is a response once it leaves p0 by this many noise deviations ...
MIN_RESPONSE_FRACTION = 0.2  # ... and a response must reach this share of the commanded change to count


@dataclass
class StepFit:
    vehicle: str
    model: str
    source: str
    at_s: float                 # when the setpoint changed
    from_kw: float
    to_kw: float
    direction: str              # "up" (magnitude rises: t_a, ramp up) or "down" (t_c, ramp down)
    sample_s: float             # median sample interval around the step
    delay_s: float | None = None
    delay_err_s: float | None = None
    ramp_kw_per_s: float | None = None
    ramp_err_kw_per_s: float | None = None
    ramp_resolved: bool = True
    rise_s: float | None = None  # start of the ramp -> reached its level
    rejected: str | None = None
    notes: list[str] = field(default_factory=list)
    level_before_kw: float | None = None
    level_after_kw: float | None = None
    samples: tuple | None = field(default=None, repr=False)  # (seconds from the command, kW) around the step


def _robust_sd(x: np.ndarray) -> float:
    if x.size < 3:
        return 0.0
    return float(1.4826 * np.median(np.abs(x - np.median(x))))


def fit_steps(log) -> list[StepFit]:
    """Every setpoint step of one vehicle's log (``logs.VehicleLog``), fitted or rejected with the reason."""
    t, sp, p = log.time_s, log.setpoint_kw, log.power_kw
    changes = np.flatnonzero(np.abs(np.diff(sp)) > MIN_STEP_KW) + 1
    # the meter's noise over the whole log, from successive differences (ramps are a small share of samples): a
    # floor under each step's own estimate, which a short pre-step window (1 Hz meter values) cannot give
    noise_floor = float(1.4826 * np.median(np.abs(np.diff(p))) / np.sqrt(2)) if p.size > 2 else 0.0
    if log.commands:  # exact command times (OCPP): steps between the samples
        steps, level = [], 0.0
        for at, kw in log.commands:
            if abs(kw - level) > MIN_STEP_KW:
                steps.append((at, level, kw, int(np.searchsorted(t, at, side="left"))))
            level = kw
    else:  # the setpoint column: a step where it changes, at that row
        steps = [(float(t[i]), float(sp[i - 1]), float(sp[i]), i) for i in changes.tolist()]
    out = []
    previous = 0
    for k, (at, old, new, i) in enumerate(steps):
        end = steps[k + 1][3] if k + 1 < len(steps) else t.size
        # the level before the step: the last 2 s of it (at least one sample), not reaching back into the last step
        lo = max(previous, min(int(np.searchsorted(t, at - 2.0)), i - 1))
        out.append(_fit_one(log, t, p, at, old, new, i, end, slice(max(lo, 0), i), noise_floor))
        previous = i
    return out


def _fit_one(log, t, p, t0: float, old: float, new: float, i, end, before, noise_floor: float = 0.0) -> StepFit:
    """One step commanded at ``t0`` from ``old`` to ``new`` kW; samples ``i:end`` after it, ``before`` before."""
    dt = float(np.median(np.diff(t[max(0, i - 5):min(t.size, i + 5)]))) if t.size > 1 else 0.0
    step = StepFit(log.vehicle, log.model, log.source, float(t0), float(old), float(new), "up", dt)
    pre, post_t, post_p = p[before], t[i:end], p[i:end]
    step.samples = (np.concatenate([t[before], post_t]) - t0, np.concatenate([pre, post_p]))
    if pre.size < 1 or post_p.size < 3:
        step.rejected = "too few samples before or after the step"
        return step
    p0, noise = float(np.median(pre)), _robust_sd(pre)
    if pre.size >= 3:  # the level before the step must have settled: a power still moving is no level to time from
        trend = np.polyfit(t[before], pre, 1)
        noise = _robust_sd(pre - np.polyval(trend, t[before]))  # the noise about the trend, not the trend itself
        drift = abs(float(trend[0])) * float(t[before][-1] - t[before][0])
        if drift > max(NOISE_SIGMAS * noise, 0.1, 0.05 * abs(new - old)):
            step.rejected = (f"the power was still moving before the step ({drift:.2f} kW over the last "
                             f"{float(t[before][-1] - t[before][0]):.1f} s): hold each level until it settles")
            return step
    tail = post_p[-max(1, post_p.size // 5):]
    p1 = float(np.median(tail))
    step.level_before_kw, step.level_after_kw = p0, p1
    change = p1 - p0
    commanded = new - old
    noise = max(noise, noise_floor)
    if old * new < 0 and p0 * p1 < 0:
        step.rejected = "a reversal (charging <-> discharging): two motions in the model, not fitted as one"
        return step
    threshold = max(NOISE_SIGMAS * noise, 0.1)
    if abs(change) < max(threshold, MIN_RESPONSE_FRACTION * abs(commanded)):
        step.rejected = (f"no response: the power moved {change:+.2f} kW of the {commanded:+.2f} kW commanded "
                         f"(noise {noise:.2f} kW)")
        return step
    step.direction = "up" if abs(p1) > abs(p0) else "down"
    frac = (post_p - p0) / change
    inside = (frac >= 0.1) & (frac <= 0.9)
    if inside.sum() >= 3:
        centre = float(post_t[inside].mean())  # about its centre the line's slope and level are uncorrelated
        slope, level, err_slope, err_level = _line(post_t[inside] - centre, post_p[inside])
        t_start = centre + (p0 - level) / slope
        t_end = centre + (p1 - level) / slope
        # uncertainty of where the line leaves p0: the line's standard errors, and half a sample for the command
        var = (err_level / slope) ** 2 + ((p0 - level) / slope ** 2 * err_slope) ** 2
        step.delay_s = float(t_start - t0)
        step.delay_err_s = float(np.sqrt(var + (dt / 2) ** 2))
        step.ramp_kw_per_s = float(abs(slope))
        step.ramp_err_kw_per_s = float(err_slope)
        step.rise_s = float(t_end - t_start)
    else:  # faster than the sampling: bounded, not measured
        # the ramp crossed 10 % between the last sample below it and the first above; it started before that
        first = int(np.flatnonzero(frac >= 0.1)[0])
        last_quiet = post_t[first - 1] if first > 0 else (t[i - 1] if i > 0 else t0)
        reached = np.flatnonzero(frac >= 0.9)
        span = float(post_t[reached[0]] - last_quiet) if reached.size else dt
        # between the last sample below 10 % and the first at 90 % it moved at least 80 % of the change: the rate
        # is at least 0.8 x change / span, so the 10 % it moved before took at most span / 8
        earliest, latest = last_quiet - span / 8, post_t[first]
        step.delay_s = float((earliest + latest) / 2 - t0)
        step.delay_err_s = float(np.hypot((latest - earliest) / 2, dt / 2))
        step.ramp_kw_per_s = float(0.8 * abs(change) / max(span, 1e-9))  # at least this
        step.ramp_err_kw_per_s = None
        step.ramp_resolved = False
        step.rise_s = None
        step.notes.append(f"the ramp is faster than the {dt:g} s sampling: its rate is at least "
                          f"{step.ramp_kw_per_s:.1f} kW/s, the delay known to +/-{step.delay_err_s:.2f} s")
    if step.delay_s is not None and step.delay_s < -dt:
        step.rejected = "the power moved before the setpoint changed (not a response to it)"
    return step


def _line(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float, float]:
    """Least-squares line: slope, intercept and their standard errors (scipy.stats.linregress)."""
    from scipy.stats import linregress

    if x.size == 2:
        slope = (y[1] - y[0]) / (x[1] - x[0])
        return float(slope), float(y[0] - slope * x[0]), 0.0, 0.0
    fit = linregress(x, y)
    return float(fit.slope), float(fit.intercept), float(fit.stderr), float(fit.intercept_stderr)
