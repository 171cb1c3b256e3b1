"""Service response curves: how much of the contracted power a service asks for at a given frequency.

Sign convention used throughout the testbed: power is positive when a vehicle *imports* (charges).
A Low service (responds to low frequency) asks the fleet to import less or export, i.e. a negative
change of power; a High service asks for a positive change. ``direction_sign`` gives that sign.
"""

from __future__ import annotations

import numpy as np


def direction_sign(service: dict) -> int:
    """-1 for a Low service (power must fall), +1 for a High service (power must rise)."""
    return -1 if service["direction"] == "low" else 1


def response_pu(service: dict, frequency_hz, nominal_hz: float = 50.0):
    """Required response in per unit of contracted power (0..1) at ``frequency_hz`` (scalar or array).

    Only deviations in the service's own direction count: a Low service asks nothing above nominal.
    """
    deviation = np.asarray(frequency_hz, dtype=float) - nominal_hz
    # a Low service (sign -1) acts on negative deviations: deviation * sign > 0 in its own direction
    magnitude = np.where(deviation * direction_sign(service) > 0, np.abs(deviation), 0.0)
    curve = service["curve"]
    if "trigger_deviation_hz" in curve:
        # a tiny tolerance so that a trace sitting exactly on the trigger (e.g. 49.7 Hz) triggers
        result = (magnitude >= curve["trigger_deviation_hz"] - 1e-9).astype(float)
    else:
        points = np.asarray(curve["points_hz_pu"], dtype=float)
        result = np.interp(magnitude, points[:, 0], points[:, 1], left=0.0, right=points[-1, 1])
        # an insensitivity band (CE FCR's 10 mHz: a measurement allowance) answers nothing inside it, but
        # does not shift the line: outside it the curve is the one its points draw from 0 mHz
        result = np.where(magnitude < curve.get("insensitivity_hz", 0.0), 0.0, result)
    return float(result) if np.ndim(result) == 0 else result


def withdrawn_at_most(x, t_ms, rate_pu_per_s: float):
    """``x`` (pu at the times ``t_ms``) where it may fall by at most ``rate_pu_per_s``: each value is at least
    every earlier one less the rate times the time since (the running maximum of ``x + rate t``, less ``rate t``)."""
    x = np.asarray(x, dtype=float)
    ramp = rate_pu_per_s * (np.asarray(t_ms, dtype=float) - (t_ms[0] if np.size(t_ms) else 0.0)) / 1000.0
    return np.maximum(x, np.maximum.accumulate(x + ramp) - ramp) if x.size else x


def support_hold(service: dict, t_ms, pu):
    """A trigger service that must hold its support (Nordic FFR, ``support: {min_s[, withdrawal_pu_per_s]}``):
    once the full response is asked for, it stays asked for ``min_s`` from that moment, whatever the frequency
    does meanwhile (a new activation inside a hold does not extend it). Where the option lets the support end
    early if it is withdrawn slowly (Nordic FFR's 5 s option: at most 20 % of the capacity a second), what is
    asked falls no faster than ``withdrawal_pu_per_s``. ``pu``: the curve's answer at the times ``t_ms``."""
    spec = service.get("support")
    pu = np.asarray(pu, dtype=float)
    if not spec:
        return pu
    t = np.asarray(t_ms, dtype=float)
    out, until = pu.copy(), -np.inf
    on = pu >= 1.0 - 1e-12
    for k in np.flatnonzero(on & ~np.concatenate([[False], on[:-1]])):
        if t[k] < until:
            continue
        until = t[k] + spec["min_s"] * 1000.0
        out[(t >= t[k]) & (t < until)] = 1.0
    if spec.get("withdrawal_pu_per_s"):
        out = withdrawn_at_most(out, t, spec["withdrawal_pu_per_s"])
    return out


def deadband_hz(service: dict) -> float:
    """|deviation| beyond which the service is active (the trigger, the insensitivity band, or the first curve
    point)."""
    curve = service["curve"]
    if "trigger_deviation_hz" in curve:
        return float(curve["trigger_deviation_hz"])
    return max(float(curve.get("insensitivity_hz", 0.0)), float(curve["points_hz_pu"][0][0]))


def outside_deadband(service: dict, frequency_hz, nominal_hz: float = 50.0):
    """True where the frequency has left the service's deadband in the service's direction."""
    toward = (np.asarray(frequency_hz, dtype=float) - nominal_hz) * direction_sign(service)
    edge = deadband_hz(service)
    if "trigger_deviation_hz" in service["curve"]:
        return toward >= edge - 1e-9
    return toward > edge
