"""NESO-style performance envelope for GB dynamic services (DC, DM, DR).

Following NESO's illustrative Dynamic Containment monitoring script: at each 20 Hz sample, the
*upper* bound is the service curve applied to the frequency seen 0.2-0.55 s earlier that asks for
the most response, the *lower* bound the curve applied to the frequency that asks for the least;
the upper bound may rise at most 4 pu/s and fall at most 2 pu/s, the lower bound rise at most 2 pu/s
and fall at most 4 pu/s. The error is how far the response lies outside the envelope, in per unit of
contracted power: too little response and too much (too fast) both count.
"""

from __future__ import annotations

import numpy as np

from v2g_testbed.sims.services import response_pu


def envelope(service: dict, freq, t_ms: np.ndarray, nominal_hz: float) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) bounds in pu of contracted power at times ``t_ms`` (a regular grid)."""
    spec = service["envelope"]
    dt_s = float(t_ms[1] - t_ms[0]) / 1000.0 if t_ms.size > 1 else 0.05
    lo_ms, hi_ms = (round(w * 1000) for w in spec["window_s"])
    # the frequency is piecewise constant: its extremes over [t - hi, t - lo] are found among the
    # values at the window's start and at every change inside it
    lo_win = np.empty(t_ms.size)
    hi_win = np.empty(t_ms.size)
    changes_t, changes_f = freq.time_ms, freq.value
    for k, t in enumerate(t_ms):
        a, b = t - hi_ms, t - lo_ms
        inside = changes_f[(changes_t > a) & (changes_t <= b)]
        start = freq.at([a])[0]
        values = np.concatenate([[start], inside]) if np.isfinite(start) else inside
        if values.size == 0:
            values = np.array([nominal_hz])
        lo_win[k], hi_win[k] = values.min(), values.max()
    a_pu, b_pu = response_pu(service, lo_win, nominal_hz), response_pu(service, hi_win, nominal_hz)
    upper_raw, lower_raw = np.maximum(a_pu, b_pu), np.minimum(a_pu, b_pu)
    return _ramp_limit(lower_raw, *spec["lower_ramp_pu_per_s"], dt_s), _ramp_limit(upper_raw, *spec["upper_ramp_pu_per_s"], dt_s)


def _ramp_limit(raw: np.ndarray, rise_pu_per_s: float, fall_pu_per_s: float, dt_s: float) -> np.ndarray:
    out = np.empty_like(raw)
    prev = raw[0] if raw.size else 0.0
    for k, target in enumerate(raw):
        prev = min(max(target, prev - fall_pu_per_s * dt_s), prev + rise_pu_per_s * dt_s)
        out[k] = prev
    return out


def error_pu(response_pu_values: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Distance outside the envelope (0 inside), in pu of contracted power."""
    return np.maximum(0.0, np.maximum(response_pu_values - upper, lower - response_pu_values))
