"""How markets judge delivery: which regime applies to an event, and the bounds each one draws.

A service's catalog entry lists its regimes (``sims/data/services.yaml``):

* ``step_test`` (prequalification): initiation, partial and full delivery timed from the moment the
  frequency leaves the deadband. It measures the fleet only when the event *is* a step: it applies when the
  required response reaches its peak within ``step_test_max_rise_fraction`` of the service's first deadline.
  On a frequency that falls over seconds, timing "deadband exit to peak requirement" measures the frequency.
* ``monitoring`` (continuous performance monitoring, GB DC/DM/DR): the response against an envelope around
  the service curve applied to the frequency seen a little earlier (``analysis/envelope.py``), any event.
* ``trigger`` (static services: GB SFFR, Nordic FFR, AU FCAS): timed from the trigger crossing.
* ``linear_activation`` (CE FCR, Nordic FCR-N/FCR-D): the response must reach each fraction of the
  requirement within its time. For any event shape the lower bound is
  ``L(t) = sum_j (f_j - f_(j-1)) * min(R over [t - d_j, t])``: on a step it is the market's checkpoints
  (50 % by 15 s, 100 % by 30 s for CE FCR); a fleet that follows the requirement with a delay no longer
  than d_1 is never below it, one slower is, and a larger delay can only lower the response relative to it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

REGIMES = ("step_test", "monitoring", "trigger", "linear_activation")
ANY = "any"  # rules every regime shares: volume, duration, metering, grid

WHAT = {
    "monitoring": "the response against the performance envelope around the service curve, any event shape",
    "trigger": "timed from the moment the frequency crossed the trigger, full contracted power by the deadline",
    "linear_activation": "at every moment at least the share of the requirement the activation times allow",
}


def first_deadline_s(service: dict) -> float:
    """The service's earliest timing requirement: initiation, else partial delivery, else full delivery."""
    if service.get("initiation_max_s") is not None:
        return float(service["initiation_max_s"])
    if service.get("partial_delivery"):
        return float(service["partial_delivery"]["within_s"])
    return float(service["full_delivery_max_s"])


def applicable(service: dict, rise_s: float, max_rise_fraction: float, fell_s: float | None = None) -> dict[str, dict]:
    """Each of the service's regimes: whether it applies to this event, and why (plain words). ``fell_s``: when
    the requirement fell back below the held fraction of its peak before the full-delivery deadline (None:
    it held)."""
    out = {}
    for name in service["regimes"]:
        if name == "step_test":
            limit = round(max_rise_fraction * first_deadline_s(service), 6)
            applies = rise_s <= limit + 1e-9 and fell_s is None
            if rise_s > limit + 1e-9:
                why = (f"not a step: the requirement took {rise_s:g} s from deadband exit to its peak (a step test "
                       f"needs at most {limit:g} s), so times from deadband exit are reported, not judged")
            elif fell_s is not None:
                why = (f"not a held step: the requirement fell back {fell_s:g} s after deadband exit, before the "
                       f"{service['full_delivery_max_s']:g} s full-delivery deadline")
            else:
                why = f"a step: the requirement reached its peak {rise_s:g} s after deadband exit (at most {limit:g} s)"
        else:
            applies, why = True, WHAT[name]
        out[name] = {"applies": bool(applies), "why": why}
    return out


def activation_lower_kw(t_ms: np.ndarray, required_kw: np.ndarray, steps: list) -> np.ndarray:
    """Least response the linear-activation rule allows at each sample of a regular grid ``t_ms``."""
    dt = float(t_ms[1] - t_ms[0]) if t_ms.size > 1 else 1.0
    required = pd.Series(np.asarray(required_kw, dtype=float))
    lower = np.zeros(required.size)
    previous = 0.0
    for seconds, fraction in steps:
        window = int(round(seconds * 1000 / dt)) + 1  # samples in [t - d, t]
        lower += (fraction - previous) * required.rolling(window, min_periods=1).min().to_numpy()
        previous = fraction
    return lower


def settlement_periods(grid_ms: np.ndarray, error_pu: np.ndarray, period_min: float) -> list[dict]:
    """The envelope error scored per settlement period (aligned to the start of the run)."""
    period_ms = round(period_min * 60_000)
    out = []
    for k in np.unique(grid_ms // period_ms):
        here = (grid_ms // period_ms) == k
        out.append({"start_s": round(float(k * period_ms) / 1000, 3), "samples": int(here.sum()),
                    "max_error_pu": round(float(error_pu[here].max()), 6) + 0.0,
                    "mean_error_pu": round(float(error_pu[here].mean()), 6) + 0.0})
    return out
