"""The desk method: the hand calculation people use to decide eligibility without simulating.

For one vehicle model on a charger of a given rating, fully charged, two variants (``method``):

* ``published`` (Bayram & Shi 2024, Table 12; reproduces it exactly): eligible when the start delay t_a is
  within the service's initiation time; power at the full-delivery deadline = min(charger rating, ramp-up
  rate x full-delivery time): the start delay is not counted inside the ramp window.
* ``consistent``: the same, but the ramp starts after t_a: min(charger, ramp x (full-delivery time - t_a)).
  For GB DC on 10 kW chargers this doubles the Nissan Ariya count, 152 -> 304.

Under both, a car that has not started by a deadline is never eligible for it (services with no
initiation limit, like Nordic FFR and AU FCAS, still have the full-delivery deadline).
Vehicles needed = ceil(minimum volume / power at the deadline). For a fleet, the desk method adds up the
power at the deadline of the vehicles it calls eligible.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from v2g_testbed.analysis.verdict import ServiceVerdict

import math

RULES = ("initiation", "volume")
METHODS = ("published", "consistent")


def screen_vehicle(vehicle, service: dict, charger_kw: float, method: str = "published") -> dict:
    """Desk verdict for one vehicle model on one service."""
    window = service["full_delivery_max_s"]
    ramp_window = window if method == "published" else max(window - vehicle.t_a_s, 0.0)
    power_kw = min(charger_kw, vehicle.ramp_up_kw_per_s * ramp_window)
    limit = service["initiation_max_s"]
    started = vehicle.t_a_s < window - 1e-9  # not started by the deadline: delivers nothing by it
    in_time = started and (limit is None or vehicle.t_a_s <= limit + 1e-9)
    needed = math.ceil(service["min_volume_mw"] * 1000 / power_kw - 1e-9) if power_kw > 0 else None
    late = limit is not None and vehicle.t_a_s > limit + 1e-9
    failed = [] if in_time else ["initiation" if late else "full_delivery"]
    return {
        "vehicle": vehicle.model,
        "service": service["id"],
        "method": method,
        "eligible": in_time and needed is not None,
        "failed": failed,
        "power_at_deadline_kw": round(power_kw, 3),
        "vehicles_needed": needed if in_time else None,
    }


def screen_fleet(groups: list[dict], service: dict, method: str = "published") -> dict:
    """Desk verdict for a fleet: eligible vehicles' power at the deadline against the contracted power."""
    kw = 0.0
    counted = 0
    for g in groups:
        one = screen_vehicle(g["vehicle"], service, g["charger_kw"], method)
        if one["eligible"]:
            plugged = round(g["plugged_in_fraction"] * g["count"])
            kw += plugged * one["power_at_deadline_kw"]
            counted += plugged
    contracted_kw = service["contracted_mw"] * 1000
    failed = []
    if counted == 0:
        failed.append("initiation")
    if kw < max(contracted_kw, service["min_volume_mw"] * 1000) - 1e-9:
        failed.append("volume")
    return {"service": service["id"], "method": method, "eligible": not failed, "failed": failed,
            "vehicles_counted": counted, "power_at_deadline_mw": round(kw / 1000, 6)}


def differences(desk: dict, simulated: "ServiceVerdict", network_profile: dict, spread_pct: float) -> list[str]:
    """Why the simulation and the desk method disagree, in the causes the verdict found in the record."""
    if simulated.get("eligible") is None or desk["eligible"] == simulated["eligible"]:
        return []
    if simulated["eligible"]:
        return ["the desk method counts only vehicles whose own t_a is within the initiation time and whose ramp "
                "reaches the contract by the deadline; simulated, the fleet together meets what the market judges "
                "(" + ", ".join(name.replace("_", " ") for name, r in simulated.get("regimes", {}).items()
                                if r["applies"]) + ")"]
    reasons = []
    for name in simulated["failed"]:
        rule = simulated["rules"][name]
        cause = rule.get("cause")
        if name == "metering":
            reasons.append("the desk method does not check the metering rate")
        elif name == "grid":
            reasons.append("the desk method does not check the feeder")
        elif cause in ("measurement", "network latency"):
            reasons.append(f"{name}: the desk method compares t_a alone with the deadline; the simulation adds the "
                           f"{cause} (profile {network_profile.get('description') or 'as configured'})")
        elif cause == "start delay":
            reasons.append(f"{name}: the start delays (t_a" + (f", {spread_pct:g} % spread" if spread_pct else "")
                           + ") come before the ramp; the published desk method lets every car ramp for the whole "
                           "window")
        elif cause == "ramp":
            reasons.append(f"{name}: the ramp, counted from each car's start, does not reach the setpoint in time")
        elif cause in ("energy/SoC", "headroom"):
            reasons.append(f"{name}: the desk method assumes fully charged, plugged-in vehicles ({cause})")
        elif cause == "tracking":
            reasons.append(f"{name}: the desk method judges a step; this event's requirement kept moving")
        elif cause == "loss/outage":
            reasons.append(f"{name}: setpoints lost in the network never reach the desk method")
    return reasons
