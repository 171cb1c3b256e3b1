"""The desk method: the hand calculation people use to decide eligibility without simulating.

For one vehicle model on a charger of a given rating, fully charged (the published convention):
* eligible when the start delay t_a is within the service's initiation time;
* power available at the full-delivery deadline = min(charger rating, ramp-up rate x full-delivery
  time) -- the convention ignores t_a inside the ramp window;
* vehicles needed = ceil(minimum volume / that power).

For a fleet, the desk method adds up the power at the deadline of the vehicles it calls eligible.
"""

from __future__ import annotations

import math

RULES = ("initiation", "volume")


def screen_vehicle(vehicle, service: dict, charger_kw: float) -> dict:
    """Desk verdict for one vehicle model on one service."""
    power_kw = min(charger_kw, vehicle.ramp_up_kw_per_s * service["full_delivery_max_s"])
    in_time = service["initiation_max_s"] is None or vehicle.t_a_s <= service["initiation_max_s"] + 1e-9
    needed = math.ceil(service["min_volume_mw"] * 1000 / power_kw - 1e-9) if power_kw > 0 else None
    return {
        "vehicle": vehicle.model,
        "service": service["id"],
        "eligible": in_time and needed is not None,
        "failed": [] if in_time else ["initiation"],
        "power_at_deadline_kw": round(power_kw, 3),
        "vehicles_needed": needed if in_time else None,
    }


def screen_fleet(groups: list[dict], service: dict) -> dict:
    """Desk verdict for a fleet: eligible vehicles' power at the deadline against the contracted power."""
    kw = 0.0
    counted = 0
    for g in groups:
        one = screen_vehicle(g["vehicle"], service, g["charger_kw"])
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
    return {"service": service["id"], "eligible": not failed, "failed": failed,
            "vehicles_counted": counted, "power_at_deadline_mw": round(kw / 1000, 6)}


def differences(desk: dict, simulated: dict, network_profile: dict, spread_pct: float) -> list[str]:
    """Why the simulation and the desk method disagree, as far as the run shows."""
    if simulated.get("eligible") is None or desk["eligible"] == simulated["eligible"]:
        return []
    if simulated["eligible"]:
        return ["the desk method counts only vehicles whose own t_a is within the initiation time; in the fleet the "
                "quick vehicles start the response and the slower ones still add their power by the full-delivery "
                "deadline"]
    reasons = []
    failed = set(simulated["failed"])
    if "initiation" in failed:
        reasons.append(f"the desk method compares t_a alone with the initiation time; the simulation adds the "
                       f"frequency measurement ({network_profile['measurement_delay_ms']} ms)"
                       + (" and the network latency" if network_profile["hops"] else "")
                       + (f" and a {spread_pct:g} % spread of t_a" if spread_pct else ""))
    if "full_delivery" in failed:
        reasons.append("the desk method ignores t_a inside the ramp window: a car that starts late reaches "
                       "less power by the full-delivery deadline than ramp x deadline")
    if "duration" in failed:
        reasons.append("the desk method assumes fully charged vehicles; the simulated fleet's energy does not "
                       "last the delivery duration")
    if "volume" in failed:
        reasons.append("the simulated fleet's plugged-in headroom is smaller than the desk method's count")
    if "metering" in failed:
        reasons.append("the desk method does not check the metering rate")
    return reasons
