"""Why a rule failed, from what the model knows: each vehicle's command, start delay, ramp, energy limit and
departure, and each message's latency. Never from how often rows were recorded: the same run recorded at any
``outputs.vehicle_sample_ms`` gives the same causes.

Causes (``rule["cause"]``): ``measurement`` (the measurement and dispatch delay before a setpoint left the
aggregator), ``network latency``, ``loss/outage`` (setpoints that never arrived), ``start delay``, ``ramp``,
``energy/SoC`` (vehicles at their state-of-charge limit: the model's own limit events), ``vehicles leaving``
(departures), ``too few vehicles`` (headroom below the requirement), ``too fast`` (response above the
envelope while the requirement held or rose), ``late withdrawal`` (still above it after the requirement fell),
``early withdrawal`` (below it because the response fell faster than the requirement), ``tracking`` (a
moving requirement followed too slowly though every vehicle was in time), ``grid``, ``contract`` (below the
market's minimum).

A timing rule's time is set by one vehicle (the first to move for initiation; the last to arrive for full
delivery, as the aggregator shares the response by headroom). Its links (measurement, network latency, start
delay, ramp) add up to that time. The cause named is the link whose removal would help most: the rule's time
recomputed over the whole fleet without that link, for every link; the sentence also names each link that
alone is past the allowance. So adding network latency can only move the blame towards the network.
"""

from __future__ import annotations

import numpy as np

from v2g_testbed.sims.obc import plug_windows, present, time_to_reach_s
from v2g_testbed.sims.services import direction_sign

LINKS = ("measurement", "network latency", "start delay", "ramp")


class LimitEvents:
    """Which vehicles were at an energy limit at a moment, from the model's limit events (``limit_events``
    in the record: each vehicle coming to its reserve, -1, or full, +1, or leaving it, 0)."""

    def __init__(self, table: dict | None, n: int):
        self.n = n
        if not table or np.size(table.get("time_ms", [])) == 0:
            self.time_ms = np.zeros(0, dtype=np.int64)
            self.vehicle = np.zeros(0, dtype=int)
            self.limit = np.zeros(0, dtype=np.int8)
            return
        order = np.argsort(np.asarray(table["time_ms"]), kind="stable")
        self.time_ms = np.asarray(table["time_ms"], dtype=np.int64)[order]
        self.vehicle = np.asarray(table["vehicle"], dtype=int)[order]
        self.limit = np.asarray(table["limit"], dtype=np.int8)[order]

    def state(self, t_ms: float) -> np.ndarray:
        """Per vehicle at ``t_ms``: -1 at its reserve, +1 full, 0 neither (the latest event at or before it)."""
        k = int(np.searchsorted(self.time_ms, t_ms, side="right"))
        out = np.zeros(self.n, dtype=np.int8)
        if k:
            last = self.vehicle[:k][::-1]
            first_of_each = np.unique(last, return_index=True)[1]  # the latest event of each vehicle
            out[last[first_of_each]] = self.limit[:k][::-1][first_of_each]
        return out

    def first_time(self, limit: int, until_ms: float) -> float | None:
        """When the first vehicle came to ``limit`` (ms), at or before ``until_ms``."""
        hit = self.time_ms[(self.limit == limit) & (self.time_ms <= until_ms)]
        return float(hit[0]) if hit.size else None


def ran_out(service: dict, t_ms: int, limits: LimitEvents, vehicles: dict) -> tuple[int, int]:
    """(vehicles at their energy limit in the service's direction, vehicles departed) at ``t_ms``: the model's
    own events, exact to the model's step, whatever the recording interval."""
    wanted = direction_sign(service)
    empty = int(np.sum(limits.state(t_ms) == wanted))
    _, _, departure = plug_windows(vehicles)
    return empty, int(np.sum(departure <= t_ms))


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


def _critical(total: np.ndarray, which: str) -> float:
    return float(np.min(total) if which == "first" else np.max(total))


def blame(links: dict, which: str, names: tuple, allowance: float) -> dict:
    """The rule's time and what each link contributes to it, over the whole fleet: ``time_s`` (the first or
    last vehicle's sum), ``vehicle`` (its index among the receivers), ``without`` (the rule's time with each
    link removed from every vehicle), ``largest`` (the link whose removal helps most; ties in link order) and
    ``alone`` (links that alone are past the allowance, with their time)."""
    parts = {name: np.asarray(links[name], float) for name in names}
    total = sum(parts.values())
    k = int(np.argmin(total) if which == "first" else np.argmax(total))
    time_s = float(total[k])
    without = {name: _critical(total - part, which) for name, part in parts.items()}
    largest = min(names, key=lambda name: (without[name], names.index(name)))
    alone = {name: _critical(part, which) for name, part in parts.items()}
    return {"time_s": time_s, "vehicle": k, "without": without, "largest": largest,
            "alone": {name: v for name, v in alone.items() if v > allowance + 1e-9},
            "parts": {name: float(part[k]) for name, part in parts.items()}}


def timing_cause(rule_name: str, allowance: float, links: dict | None, entry: dict, which: str,
                 names: tuple = ()) -> tuple[str, str]:
    """(cause, sentence) for a late timing rule. ``which``: "first" (initiation) or "last" vehicle; ``names``:
    the links counted (default: all; the first movement needs no ramp)."""
    if links is None or links["vehicles"] == 0:
        return "loss/outage", "no vehicle received a setpoint after the event"
    names = names or (LINKS[:3] if which == "first" else LINKS)
    b = blame(links, which, names, allowance)
    who = "the first vehicle to respond" if which == "first" else "the last vehicle to reach its setpoint"
    budget = ", ".join(f"{name} {v:.2f} s" for name, v in b["parts"].items()) + f" = {b['time_s']:.2f} s"
    if b["time_s"] > allowance + 1e-9:
        whose = "the quickest vehicle's" if which == "first" else "the slowest vehicle's"
        alone = (f"; past it on its own ({whose}): " + ", ".join(f"{name} {v:.2f} s" for name, v in b["alone"].items())
                 if b["alone"] else "; no link is past it on its own")
        return b["largest"], (f"{rule_name}: {who}: {budget}, past the {allowance:g} s allowance; weighs most: the "
                               f"{b['largest']} (without it {b['without'][b['largest']]:.2f} s){alone}")
    if links["not_reached"]:
        return "loss/outage", (f"{rule_name}: {links['not_reached']} plugged-in vehicle(s) never received a setpoint "
                               f"(the others were in time: {who}: {budget})")
    if entry.get("available_mw") is not None and entry["available_mw"] < entry["required_mw"] - 1e-9:
        return "too few vehicles", (f"{rule_name}: the fleet's headroom ({entry['available_mw']:g} MW) is below the "
                                    f"requirement ({entry['required_mw']:g} MW)")
    return "tracking", (f"{rule_name}: every vehicle was within the {allowance:g} s allowance ({who}: {budget}), "
                        "but the response lagged a requirement that kept moving")


def explain_failures(entry: dict, service: dict, links: dict | None, limits: LimitEvents, vehicles: dict,
                     dip_ms: int | None = None, dip_withdrew: bool = False) -> None:
    """Add ``cause`` and ``because`` to each failed rule of ``entry`` (in place). ``dip_ms``: when the response
    first fell below what the judging regime allowed (the duration rule's finding); ``dip_withdrew``: it fell
    because the fleet withdrew it (its response fell from what it had reached while the requirement did not rise)."""
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
            cause, why = _envelope_cause(entry, service, links, limits, vehicles)
        elif name == "activation":
            cause, why = _short_because_gone(entry, service, rule["at_s"], limits, vehicles) or \
                timing_cause("activation", service["activation"]["steps"][0][0], links, entry, "last")
        elif name == "volume":
            cause, why = _volume_cause(entry, service)
        elif name == "duration":
            cause, why = _duration_cause(entry, service, dip_ms, limits, vehicles, dip_withdrew)
        elif name == "reactivation":
            cause, why = _reactivation_cause(entry, service, rule)
        elif name == "metering":
            cause, why = "measurement", (f"metering: the chargers meter at {rule['value']:g} Hz, the market needs "
                                         f"{rule['limit']:g} Hz (fleet.telemetry_hz)")
        elif name == "grid":
            cause, why = "grid", f"grid: {rule.get('worst')}"
        else:
            cause, why = "unknown", name
        rule["cause"], rule["because"] = cause, why


def _envelope_cause(entry, service, links, limits, vehicles) -> tuple[str, str]:
    """Above the envelope: too fast while the requirement held or rose, a late withdrawal after it fell.
    Below it: an early withdrawal where the requirement fell slower than the response, else a response that
    came too late (its delays and ramps), or vehicles that ran out of energy or left."""
    spec, found = service["envelope"], entry["envelope"]
    at = found["at_s"]
    if found["too_fast"]:
        if found.get("requirement_falling"):
            return "late withdrawal", (
                f"envelope: {at:g} s into the event the requirement had fallen (to {found['requirement_pu']:.3f} pu "
                f"of a {found['requirement_peak_pu']:.3f} pu peak) but the response stayed above the envelope's "
                f"upper bound: the vehicles withdrew late (their ramp-down delay t_c and ramp down, after the "
                "measurement and the network)")
        fastest = None if links is None or not links["vehicles"] else float(np.min(sum(links[k] for k in LINKS[:3])))
        if fastest is not None and fastest < spec["window_s"][0]:
            return "too fast", (f"envelope: too fast: the quickest vehicle moved {fastest:.2f} s after the frequency, "
                                f"before the envelope's {spec['window_s'][0]:g} s")
        return "too fast", (f"envelope: too fast: {at:g} s into the event the response rose above the envelope, "
                            f"whose upper bound rises at most {spec['upper_ramp_pu_per_s'][0]:g} pu/s")
    gone = _short_because_gone(entry, service, at, limits, vehicles)
    if gone:
        return gone
    if found.get("requirement_falling") and found.get("response_withdrawing"):
        return "early withdrawal", (
            f"envelope: {at:g} s into the event the response fell below the envelope's lower bound while the "
            f"requirement was falling (to {found['requirement_pu']:.3f} pu): the vehicles withdrew faster than "
            f"the lower bound may fall ({spec['lower_ramp_pu_per_s'][1]:g} pu/s)")
    delay_allowance = spec["window_s"][1]
    cause, why = timing_cause("envelope", delay_allowance, links, entry, "last", LINKS[:3])
    if cause == "tracking":
        cause, why = timing_cause("envelope", delay_allowance + 1.0 / spec["lower_ramp_pu_per_s"][0], links, entry,
                                  "last")
    return cause, why


def _volume_cause(entry, service) -> tuple[str, str]:
    contracted, minimum, available = service["contracted_mw"], service["min_volume_mw"], entry["available_mw"]
    if contracted < minimum - 1e-9:
        return "contract", (f"volume: {contracted:g} MW contracted, below the market's minimum of {minimum:g} MW "
                            f"({available:g} MW available)")
    return "too few vehicles", (f"volume: {available:g} MW available in the service's direction at the event (plugged-in "
                                f"headroom), {contracted:g} MW contracted (market minimum {minimum:g} MW)")


def _short_because_gone(entry, service, at_s, limits, vehicles) -> tuple[str, str] | None:
    """The response fell short when vehicles had run out of energy or left: that, not timing, is the cause."""
    t_ms = round((entry["event_start_s"] + at_s) * 1000)
    empty, left = ran_out(service, t_ms, limits, vehicles)
    if empty:
        return "energy/SoC", f"{empty} vehicle(s) had reached their state-of-charge limit {at_s:g} s into the event"
    if left:
        return "vehicles leaving", f"{left} vehicle(s) had left {at_s:g} s into the event"
    return None


def _reactivation_cause(entry, service, rule) -> tuple[str, str]:
    spec = service["support"]
    when = f"{spec['reactivation_min']:g} min after the support ended ({rule['at_s']:g} s after the event began)"
    if rule["value"] is not None and rule["value"] < rule["limit"] - 1e-9:
        return "vehicles leaving", (f"reactivation: {when} the vehicles still plugged in offer {rule['value']:g} MW "
                                    f"of the {rule['limit']:g} MW contracted")
    return "energy/SoC", (f"reactivation: {when} the vehicles still plugged in have the power but not the energy "
                          f"to hold it for the {spec['min_s']:g} s support again")


def _duration_cause(entry, service, dip, limits, vehicles, withdrew: bool = False) -> tuple[str, str]:
    if dip is not None:  # the response fell below what the market allows while simulated
        empty, left = ran_out(service, dip, limits, vehicles)
        at = (dip - round(entry["event_start_s"] * 1000)) / 1000.0
        if empty:
            first = limits.first_time(direction_sign(service), dip)
            when = "" if first is None else f" (the first {(first - round(entry['event_start_s'] * 1000)) / 1000:g} s in)"
            return "energy/SoC", (f"duration: {empty} vehicle(s) reached their state-of-charge limit{when}; the "
                                  f"response fell short {at:g} s into the event")
        if left:
            return "vehicles leaving", f"duration: {left} vehicle(s) left; the response fell short {at:g} s into the event"
        if withdrew:
            support = service.get("support") or {}
            rate = support.get("withdrawal_pu_per_s")
            asked = "" if not support else (
                f"; the {support['option']} support option asks it held {support['min_s']:g} s" + (
                    f", then withdrawn at most {rate:g} of the capacity a second" if rate else ""))
            return "early withdrawal", (f"duration: the fleet withdrew its response {at:g} s into the event, before "
                                        f"the requirement let it (no vehicle ran out or left){asked}")
        return "tracking", (f"duration: the response fell below the requirement {at:g} s into the event while no "
                            "vehicle ran out or left: it lagged a rising requirement (not an energy shortage)")
    return "energy/SoC", (f"duration: from the state at the end of the simulated event, the fleet's energy lasts "
                          f"{entry['rules']['duration']['value']} of {service['delivery_duration_min']:g} min")
