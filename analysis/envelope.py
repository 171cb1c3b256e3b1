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
    # values at the window's start and at every change inside it: a run of consecutive recorded values
    lo_win, hi_win = window_extremes(freq.time_ms, freq.value, t_ms - hi_ms, t_ms - lo_ms, nominal_hz)
    a_pu, b_pu = response_pu(service, lo_win, nominal_hz), response_pu(service, hi_win, nominal_hz)
    upper_raw, lower_raw = np.maximum(a_pu, b_pu), np.minimum(a_pu, b_pu)
    return _ramp_limit(lower_raw, *spec["lower_ramp_pu_per_s"], dt_s), _ramp_limit(upper_raw, *spec["upper_ramp_pu_per_s"], dt_s)


def window_extremes(times: np.ndarray, values: np.ndarray, a: np.ndarray, b: np.ndarray, empty: float):
    """(min, max) of a piecewise-constant series (``values`` from each of ``times`` on) over each window
    ``(a, b]`` with its value at ``a``; ``empty`` where the series has no value in or before a window. Windows
    are runs of consecutive samples: range minima and maxima from a sparse table, no loop over the windows."""
    times, values = np.asarray(times), np.asarray(values, dtype=float)
    first = np.searchsorted(times, a, side="right") - 1  # the value held at a (-1: none yet)
    last = np.searchsorted(times, b, side="right") - 1  # the last change at or before b
    first = np.maximum(first, 0)
    lo, hi = np.full(np.shape(a), float(empty)), np.full(np.shape(a), float(empty))
    some = last >= first
    if not some.any():
        return lo, hi
    l, r = first[some], last[some]
    level = np.floor(np.log2(r - l + 1)).astype(int)
    mins, maxs = [values], [values]
    while (1 << len(mins)) <= values.size:
        w = 1 << (len(mins) - 1)
        mins.append(np.minimum(mins[-1][:-w], mins[-1][w:]))
        maxs.append(np.maximum(maxs[-1][:-w], maxs[-1][w:]))
    lo_some, hi_some = np.empty(l.size), np.empty(l.size)
    for k in np.unique(level):  # one query per table level present
        at = level == k
        left, right = l[at], r[at] - (1 << k) + 1
        lo_some[at] = np.minimum(mins[k][left], mins[k][right])
        hi_some[at] = np.maximum(maxs[k][left], maxs[k][right])
    lo[some], hi[some] = lo_some, hi_some
    return lo, hi


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
