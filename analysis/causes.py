"""Why a rule failed, in the words of the chain: measurement, network latency, loss/outage, start delay, ramp,
energy/SoC, tracking, headroom, grid (and contract, for a contract below the market's minimum).

Everything comes from the run's record: when the aggregator first sent a setpoint after the event (the
measurement and dispatch delay), when each vehicle received it (network latency; vehicles never reached),
each vehicle's start delay and ramp rate as the fleet simulator drew them, the state of charge it recorded.
For a timing rule the links of the vehicle that sets the rule's time (the first to move for initiation, the
last to arrive for full delivery: the aggregator shares the response by headroom, so all are needed) are added
up in order; the link at which the sum crosses the rule's allowance is the cause. If none does, the fleet was
fast enough and the cause lies elsewhere: lost messages, too little headroom, or a requirement that moved
faster than the response followed (tracking).
"""

from __future__ import annotations

import numpy as np

from v2g_testbed.sims.obc import at_soc_limits, plug_windows, present, time_to_reach_s
from v2g_testbed.sims.services import direction_sign

LINKS = ("measurement", "network latency", "start delay", "ramp")


def chain(service: dict, receipts: dict | None, vehicles: dict, t_event: int) -> dict | None:
    """Per vehicle that heard of the event: seconds spent in each link, from t_event until it reached the
    setpoint it was sent (arrays over those vehicles), and how many plugged-in vehicles never heard."""
    here = present(vehicles, t_event)
    if receipts is None or receipts["vehicle"].size == 0:
        return {"vehicles": 0, "not_reached": int(here.sum())}
    idx = receipts["vehicle"]
    base = np.asarray(vehicles["baseline_kw"], float)[idx]
    start_s, ramp_s = time_to_reach_s(vehicles, idx, base, receipts["kw"])
    return {"vehicles": int(idx.size), "not_reached": int(np.setdiff1d(np.flatnonzero(here), idx).size),
            "measurement": (receipts["sent_ms"] - t_event) / 1000.0,
            "network latency": (receipts["recv_ms"] - receipts["sent_ms"]) / 1000.0,
            "start delay": start_s, "ramp": ramp_s}


def _crossing(links: dict, k: int, allowance: float, names=LINKS) -> tuple[str | None, str]:
    """The first link of vehicle k at which the running sum passes the allowance, and the budget in words."""
    total, parts, crossed = 0.0, [], None
    for name in names:
        total += float(links[name][k])
        parts.append(f"{name} {float(links[name][k]):.2f} s")
        if crossed is None and total > allowance + 1e-9:
            crossed = name
    return crossed, ", ".join(parts) + f" = {total:.2f} s"


def timing_cause(rule_name: str, allowance: float, links: dict | None, entry: dict, which: str,
                 names: tuple = ()) -> tuple[str, str]:
    """(cause, sentence) for a late timing rule. ``which``: "first" (initiation) or "last" vehicle; ``names``:
    the links counted (default: all; the first movement needs no ramp)."""
    if links is None or links["vehicles"] == 0:
        return "loss/outage", "no vehicle received a setpoint after the event"
    names = names or (LINKS[:3] if which == "first" else LINKS)
    total = sum(links[name] for name in names)
    k = int(np.argmin(total) if which == "first" else np.argmax(total))
    crossed, budget = _crossing(links, k, allowance, names)
    who = "the first vehicle to respond" if which == "first" else "the last vehicle to reach its setpoint"
    if crossed is not None:
        return crossed, f"{rule_name}: {who}: {budget}, past the {allowance:g} s allowance at the {crossed}"
    if links["not_reached"]:
        return "loss/outage", (f"{rule_name}: {links['not_reached']} plugged-in vehicle(s) never received a setpoint "
                               f"(the others were in time: {who}: {budget})")
    if entry.get("available_mw") is not None and entry["available_mw"] < entry["required_mw"] - 1e-9:
        return "headroom", (f"{rule_name}: the fleet's headroom ({entry['available_mw']:g} MW) is below the "
                            f"requirement ({entry['required_mw']:g} MW)")
    return "tracking", (f"{rule_name}: every vehicle was within the {allowance:g} s allowance ({who}: {budget}), "
                        "but the response lagged a requirement that kept moving")


def explain_failures(entry: dict, service: dict, links: dict | None, soc_series, vehicles: dict) -> None:
    """Add ``cause`` and ``because`` to each failed rule of ``entry`` (in place)."""
    ctx = entry.get("_context", {})
    for name, rule in entry["rules"].items():
        if rule["passed"]:
            continue
        if name in ("initiation", "partial_delivery", "full_delivery"):
            allowance = {"initiation": service.get("initiation_max_s"),
                         "partial_delivery": (service.get("partial_delivery") or {}).get("within_s"),
                         "full_delivery": service["full_delivery_max_s"]}[name]
            cause, why = timing_cause(name, allowance, links, entry, "first" if name == "initiation" else "last")
            if cause == "tracking" and rule.get("regime") == "step_test" and name == "initiation":
                # a step's requirement does not move: the vehicles that started in time ramped too slowly for
                # the fleet's power to reach the initiation threshold within the allowance
                cause, why = "ramp", (why.split(", but ")[0].replace("every vehicle was within",
                                                                     "the first vehicles started within")
                                      + f", but their ramps brought the fleet's response to the initiation threshold "
                                        f"only at {rule['value']:g} s")
        elif name == "envelope":
            spec = service["envelope"]
            if entry["envelope"]["too_fast"]:
                fastest = None if links is None or not links["vehicles"] else float(
                    np.min(sum(links[k] for k in LINKS[:3])))
                if fastest is not None and fastest < spec["window_s"][0]:
                    cause, why = "start delay", (f"envelope: too fast: the quickest vehicle moved {fastest:.2f} s after "
                                                 f"the frequency, before the envelope's {spec['window_s'][0]:g} s")
                else:
                    cause, why = "ramp", (f"envelope: too fast: the response rose faster than the envelope's "
                                          f"{spec['upper_ramp_pu_per_s'][0]:g} pu/s")
            else:  # too little: a delay past the envelope's look-back, else a ramp slower than its lower bound's
                delay_allowance = spec["window_s"][1]
                ramp_allowance = delay_allowance + 1.0 / spec["lower_ramp_pu_per_s"][0]
                cause, why = _short_because_gone(entry, service, entry["envelope"]["at_s"], soc_series, vehicles) or \
                    timing_cause("envelope", delay_allowance, links, entry, "last", LINKS[:3])
                if cause == "tracking":
                    cause, why = timing_cause("envelope", ramp_allowance, links, entry, "last")
        elif name == "activation":
            cause, why = _short_because_gone(entry, service, rule["at_s"], soc_series, vehicles) or \
                timing_cause("activation", service["activation"]["steps"][0][0], links, entry, "last")
        elif name == "volume":
            if service["contracted_mw"] < service["min_volume_mw"] - 1e-9:
                cause, why = "contract", (f"volume: {service['contracted_mw']:g} MW contracted, below the market's "
                                          f"minimum of {service['min_volume_mw']:g} MW")
            else:
                cause, why = "headroom", (f"volume: {entry['available_mw']:g} MW of headroom in the service's "
                                          f"direction at the event, {service['contracted_mw']:g} MW contracted")
        elif name == "duration":
            cause, why = _duration_cause(entry, service, ctx, soc_series, vehicles)
        elif name == "metering":
            cause, why = "measurement", (f"metering: the chargers meter at {rule['value']:g} Hz, the market needs "
                                         f"{rule['limit']:g} Hz (fleet.telemetry_hz)")
        elif name == "grid":
            cause, why = "grid", f"grid: {rule.get('worst')}"
        else:
            cause, why = "unknown", name
        rule["cause"], rule["because"] = cause, why


def ran_out(service: dict, t_ms: int, soc_series, vehicles: dict) -> tuple[int, int]:
    """(vehicles at their state-of-charge limit in the service's direction, vehicles departed) at ``t_ms``."""
    soc = soc_series.value[max(np.searchsorted(soc_series.time_ms, t_ms, side="right") - 1, 0)]
    at_reserve, full = at_soc_limits(soc, vehicles["soc_min"], vehicles["soc_max"])
    empty = int(np.sum(at_reserve if direction_sign(service) < 0 else full))
    _, _, departure = plug_windows(vehicles)
    return empty, int(np.sum(departure <= t_ms))


def _short_because_gone(entry, service, at_s, soc_series, vehicles) -> tuple[str, str] | None:
    """The response fell short when vehicles had run out of energy or left: that, not timing, is the cause."""
    t_ms = round((entry["event_start_s"] + at_s) * 1000)
    empty, left = ran_out(service, t_ms, soc_series, vehicles)
    if empty:
        return "energy/SoC", f"{empty} vehicle(s) had reached their state-of-charge limit {at_s:g} s into the event"
    if left:
        return "headroom", f"{left} vehicle(s) had left {at_s:g} s into the event"
    return None


def _duration_cause(entry, service, ctx, soc_series, vehicles) -> tuple[str, str]:
    dip = ctx.get("dip_ms")
    if dip is not None:  # the response fell below what the market allows while simulated
        empty, left = ran_out(service, dip, soc_series, vehicles)
        at = (dip - round(entry["event_start_s"] * 1000)) / 1000.0
        if empty:
            return "energy/SoC", (f"duration: {empty} vehicle(s) reached their state-of-charge limit; the response "
                                  f"fell short {at:g} s into the event")
        if left:
            return "headroom", f"duration: {left} vehicle(s) left; the response fell short {at:g} s into the event"
        return "tracking", (f"duration: the response fell below the requirement {at:g} s into the event while no "
                            "vehicle ran out or left: it lagged a rising requirement (not an energy shortage)")
    return "energy/SoC", (f"duration: from the state at the end of the simulated event, the fleet's energy lasts "
                          f"{entry['rules']['duration']['value']} of {service['delivery_duration_min']:g} min")
