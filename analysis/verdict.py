"""Eligibility verdicts: did the simulated fleet deliver each contracted service, and by what margin?

Everything is measured from the recorded time series (``timeseries.h5``) of one run:

* The **event** for a service is the excursion of the frequency outside the service's deadband (in
  the service's direction) in which the service asked for the most response; it starts at
  ``t_event`` and ends when the frequency comes back (or at the end of the run). For a step test
  that is the step; on a recorded trace it is the biggest dip, not the first wobble.
* The fleet's **response** is its change of power against its **baseline**, the fleet power at
  ``t_event``, counted positive in the service's direction (less import for Low services). Where
  several services of the same direction are contracted, the response is shared among them in
  proportion to what each requires at that moment.
* **Required** response: the service curve at the actual frequency times the contracted power; the
  reference level is its peak during the event.

Rules (each a function below; each returns passed, the measured value, the limit and the margin):
``initiation``, ``partial_delivery`` (where defined), ``full_delivery``, ``volume``, ``duration``,
``metering``, ``envelope`` (GB DC and DM).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from pydantic import ConfigDict
from typing_extensions import Required, TypedDict

import numpy as np

from v2g_testbed.analysis.budget import first_receipts
from v2g_testbed.analysis import parameters
from v2g_testbed.analysis.causes import LimitEvents, chain, explain_failures, ran_out
from v2g_testbed.analysis.envelope import envelope, error_pu
from v2g_testbed.analysis.limits import Limits
from v2g_testbed.analysis.regimes import ANY, activation_lower_kw, applicable, settlement_periods
from v2g_testbed.analysis.timeseries import RunRecord
from v2g_testbed.sims import PHASES
from v2g_testbed.sims.obc import OPTIONAL_PARAMETERS, PARAMETERS, ChargerFleet, scheduled_kw
from v2g_testbed.sims.obc import headroom_kw as obc_headroom_kw
from v2g_testbed.sims.services import direction_sign, outside_deadband, response_pu, support_hold

# The structure of verdicts.json, defined once: typed dicts, validated by pydantic before a run writes them
# (``check_verdicts``: a field of the wrong type, or a key no one declared, such as private working state, is a
# bug caught at the source) and published as a JSON Schema (``v2g schema --verdicts``, docs/verdicts.schema.json).
_CLOSED = ConfigDict(extra="forbid")


class RuleResult(TypedDict, total=False):
    """One rule of a verdict: ``passed``, the measured ``value``, its ``limit``, the ``margin`` (in ``unit``),
    the ``regime`` that asked for it (or ``any``); for a failed rule its ``cause`` and ``because``; the
    ``parameters`` it judged with and what each rests on (analysis/parameters.py)."""
    __pydantic_config__ = _CLOSED
    passed: Required[bool]
    value: float | None
    limit: float | None
    margin: float | None
    unit: str
    regime: str
    cause: str
    because: str
    at_s: float
    worst: str
    parameters: dict[str, dict]
    convention: str


class RegimeStatus(TypedDict):
    __pydantic_config__ = _CLOSED
    applies: bool
    why: str


class Envelope(TypedDict, total=False):
    """Where the response lay farthest outside the performance envelope, and what the requirement was doing."""
    __pydantic_config__ = _CLOSED
    max_error_pu: float
    at_s: float
    too_fast: bool
    requirement_pu: float
    requirement_peak_pu: float
    requirement_falling: bool
    response_withdrawing: bool
    too_fast_counts: bool
    settlement_periods: list[dict]


class ServiceVerdict(TypedDict, total=False):
    """The verdict on one contracted service: what ``verdicts.json`` holds per service, and what the terminal
    table, ``check``, ``sweep``, the plots and the report read (README: "How each number is measured")."""
    __pydantic_config__ = _CLOSED
    service: Required[str]
    name: str
    eligible: Required[bool | None]
    failed: Required[list[str]]
    contracted_mw: float
    regimes: dict[str, RegimeStatus]
    not_judged: list[str]
    note: str
    event_start_s: float
    event_end_s: float
    initiation_s: float | None
    full_delivery_s: float | None
    required_mw: float
    delivered_mw: float | None
    peak_response_mw: float | None
    available_mw: float
    envelope: Envelope | None
    rules: dict[str, RuleResult]
    vehicles_needed: dict
    desk: dict
    desk_differs_because: list[str]
    notes: list[str]
    judged_by: list[str]            # the regimes that applied (computed once, here)
    decided_by: list[dict]          # assumptions that decide the verdict (analysis/parameters.py)


@dataclass
class Working:
    """What judging one service works out besides its verdict, for the causes and the sensitivity checks that
    follow: kept beside the verdict, never in it (nothing private travels in verdicts.json's structure)."""
    trace: dict
    dip_ms: int | None
    dip_withdrew: bool  # the response fell short because the fleet withdrew it, not because the requirement rose
    rejudge: Callable[[str, str, float], bool | None]


class RunVerdicts(TypedDict, total=False):
    """verdicts.json: the scenario, its seed, a verdict per service, the grid's and the network's summaries."""
    __pydantic_config__ = _CLOSED
    scenario: Required[str]
    seed: Required[int]
    services: Required[list[ServiceVerdict]]
    grid: dict
    network: dict | None


def check_verdicts(verdicts: dict) -> dict:
    """``verdicts`` as verdicts.json defines it (``RunVerdicts``), or ValueError naming the first field that is not:
    run before the file is written, so nothing undeclared (private working state) or mistyped reaches it."""
    from pydantic import TypeAdapter, ValidationError

    try:
        TypeAdapter(RunVerdicts).validate_python(verdicts, strict=False)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ValueError(f"verdicts.json: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    return verdicts


def verdicts_schema() -> dict:
    """The JSON Schema of verdicts.json (draft 2020-12), from ``RunVerdicts``."""
    from pydantic import TypeAdapter

    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$comment": "generated by `v2g schema --verdicts`; do not edit by hand",
            **TypeAdapter(RunVerdicts).json_schema(), "title": "v2g-testbed verdicts.json"}


def judged_by(regimes: dict) -> list[str]:
    """The regimes that judged an event (the one definition: the table, check, sweeps and the API read it)."""
    return [name for name, r in (regimes or {}).items() if r["applies"]]


RULES = ("initiation", "partial_delivery", "full_delivery", "envelope", "activation", "volume", "duration",
         "reactivation", "metering", "grid")
TOLERANCE_PU = 1e-6  # numerical tolerance on "reached", in per unit of the required response


def _r(value: float, digits: int) -> float:
    """Round for the verdict file; adding 0.0 turns a rounded -0.0 into 0.0."""
    return round(value, digits) + 0.0



def _rule(passed: bool, value, limit, margin, unit: str) -> RuleResult:
    return {"passed": bool(passed), "value": value, "limit": limit, "margin": margin, "unit": unit}


def initiation(initiation_s: float | None, service: dict) -> dict:
    """The response must start within the service's initiation time: the first fleet sample, at or
    after t_event, whose response reaches ``initiation_threshold_pu`` of the required response, must
    come no later than ``initiation_max_s`` after t_event (NESO DC/DM/DR: 0.5 s / 0.5 s / 2 s).
    Margin: seconds to spare (negative: late)."""
    limit = service["initiation_max_s"]
    if limit is None:  # the market sets no initiation time (FCR, FFR, FCAS): reported, not judged
        return _rule(True, initiation_s, None, None, "s")
    if initiation_s is None:
        return _rule(False, None, limit, None, "s")
    return _rule(initiation_s <= limit + 1e-9, initiation_s, limit, _r(limit - initiation_s, 6), "s")


def partial_delivery(partial_s: float | None, service: dict) -> dict | None:
    """Where the market asks for part of the response early (CE FCR prequalification: 50 % within
    15 s), the response must reach that fraction of the required response in time. Margin: seconds."""
    spec = service.get("partial_delivery")
    if spec is None:
        return None
    limit = spec["within_s"]
    if partial_s is None:
        return _rule(False, None, limit, None, "s")
    return _rule(partial_s <= limit + 1e-9, partial_s, limit, _r(limit - partial_s, 6), "s")


def envelope_rule(found: dict | None, service: dict) -> dict | None:
    """GB dynamic services (DC, DM): the response must stay inside the NESO-style performance envelope
    (see analysis/envelope.py) to within ``tolerance_pu``; too much response counts like too little.
    Value: the largest error in pu of contracted power; margin: pu to spare."""
    if found is None:
        return None
    limit = service["envelope"]["tolerance_pu"]
    return _rule(found["max_error_pu"] <= limit + 1e-9, found["max_error_pu"], limit,
                 _r(limit - found["max_error_pu"], 6), "pu")


def full_delivery(full_delivery_s: float | None, service: dict) -> dict:
    """The fleet must reach the full required response within ``full_delivery_max_s`` of t_event
    (NESO DC/DM: 1 s, DR: 10 s, Static FFR: 30 s). Margin: seconds to spare (negative: late)."""
    limit = service["full_delivery_max_s"]
    if full_delivery_s is None:
        return _rule(False, None, limit, None, "s")
    return _rule(full_delivery_s <= limit + 1e-9, full_delivery_s, limit, _r(limit - full_delivery_s, 6), "s")


def volume(available_mw: float, service: dict) -> dict:
    """The contracted power must be at least the service's minimum volume (1 MW for the GB services),
    and the fleet's plugged-in headroom in the service's direction at t_event must cover it.
    Margin: headroom - contracted, in MW; for a contract below the minimum, contracted - minimum (negative)."""
    contracted, minimum = service["contracted_mw"], service["min_volume_mw"]
    need = max(contracted, minimum)
    # margin: headroom to spare above the contract; a contract below the market's minimum fails by the shortfall
    margin = contracted - minimum if contracted < minimum - 1e-9 else available_mw - contracted
    return _rule(margin >= -1e-9, _r(available_mw, 6), need, _r(margin, 6), "MW")


def duration(held_s: float | None, event_s: float, sustain_min: float, service: dict) -> dict:
    """The fleet must hold the contracted power for the delivery duration (15 / 30 / 60 min for
    DC / DM / DR). Two parts: (1) once fully delivered, the response must not fall below the required
    level during the simulated part of the event (a vehicle that leaves, or empties, shows here);
    (2) from its state at the end of the simulated event, the fleet's energy must cover the rest of
    the duration, vehicles that run out being covered by others up to their headroom (response
    that only stops or reduces charging costs no stored energy). Value: minutes the fleet can hold
    from t_event (simulated + projected); margin: minutes to spare."""
    limit = service["delivery_duration_min"]
    if held_s is not None and held_s < event_s - 1e-9:
        minutes = _r(held_s / 60.0, 4)
        return _rule(False, minutes, limit, _r(minutes - limit, 4), "min")
    total = event_s / 60.0 + sustain_min
    if math.isinf(total):
        return _rule(True, None, limit, None, "min")
    return _rule(total >= limit - 1e-9, _r(total, 3), limit, _r(total - limit, 3), "min")


def metering(telemetry_hz: float, service: dict) -> dict:
    """Performance data must be metered at the service's rate: 20 Hz for DC/DM/DR, 1 Hz for Static
    FFR (NESO). The chargers' telemetry rate is a scenario setting (``fleet.telemetry_hz``); a trial
    logging at 0.1 Hz failed this rule. Margin: Hz to spare."""
    limit = service["metering_hz"]
    return _rule(telemetry_hz >= limit - 1e-9, telemetry_hz, limit, _r(telemetry_hz - limit, 6), "Hz")


def reactivation(available_mw: float, sustain_min: float, service: dict) -> dict | None:
    """A support service must be able to activate again ``support.reactivation_min`` after an activation ended
    (Nordic FFR: 15 min): the vehicles still plugged in then, from their state of charge at the end of the
    record, must cover the contracted power (value: their MW, limit: the contract) for the support's hold
    (checked beside it: a fleet that has the power but not the energy fails too). Margin: MW to spare."""
    spec = service.get("support") or {}
    if spec.get("reactivation_min") is None:
        return None
    contracted = service["contracted_mw"]
    enough_energy = sustain_min >= spec["min_s"] / 60.0 - 1e-9
    margin = available_mw - contracted
    return _rule(margin >= -1e-9 and enough_energy, _r(available_mw, 6), contracted, _r(margin, 6), "MW")


def headroom_kw(service: dict, vehicles: dict, soc, t_ms: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per vehicle at ``t_ms``, in the service's direction: the charger model's ``v2g_testbed.sims.obc.headroom_kw``."""
    return obc_headroom_kw(direction_sign(service), vehicles, soc, t_ms)


def sustainable_minutes(contracted_kw: float, head, free, energy_kwh) -> float:
    """Longest time T (minutes) with sum_i min(head_i, free_i + E_i / T) >= contracted (inf if unlimited)."""
    if free.sum() >= contracted_kw - 1e-9:
        return math.inf

    def deliverable(t_h):
        return np.minimum(head, free + energy_kwh / t_h).sum()

    if deliverable(1e-9) < contracted_kw - 1e-9:
        return 0.0
    lo, hi = 1e-9, 1e6  # hours
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if deliverable(mid) >= contracted_kw else (lo, mid)
        if hi / lo < 1 + 1e-9:
            break
    return lo * 60.0


def _first(times_ms, mask):
    hit = np.flatnonzero(mask)
    return int(times_ms[hit[0]]) if hit.size else None


def service_trace(service: dict, services: list[dict], freq, power, nominal_hz: float,
                  vehicles: dict | None = None) -> dict | None:
    """The event and the fleet's response for one service, on the fleet's sampling grid (None if the
    frequency never left the service's deadband). Keys: t_ms, t_event, t_end, response_kw, required_kw.

    The response is measured, at every sample of the run, from the fleet's *baseline*: the power its plugged-in
    vehicles were scheduled to draw then (``v2g_testbed.sims.obc.scheduled_kw`` of the recorded vehicles), as a market
    measures it from the provider's declared baseline; without the vehicles, the power just before t_event
    (the same when nothing answered an earlier excursion)."""
    sign = direction_sign(service)
    leaves = outside_deadband(service, freq.value, nominal_hz)
    if not leaves.any():
        return None
    # the event: the excursion outside the deadband in which the service asked for the most
    edges = np.diff(np.concatenate([[0], leaves.astype(int), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    asked = response_pu(service, freq.value, nominal_hz)
    best = int(np.argmax([asked[a:b].max() for a, b in zip(starts, stops)]))
    t_event = int(freq.time_ms[starts[best]])
    t_end = int(freq.time_ms[stops[best]]) if stops[best] < freq.time_ms.size else int(power.time_ms[-1]) + 1
    t = power.time_ms
    f_at = freq.at(t)
    same_dir = [s for s in services if s["direction"] == service["direction"]]
    req = {s["id"]: support_hold(s, t, response_pu(s, f_at, nominal_hz)) * s["contracted_kw"] for s in same_dir}
    if service.get("support"):  # the support must be held past the excursion (Nordic FFR): the event lasts that long
        held = np.flatnonzero((t >= t_event) & (req[service["id"]] > 0))
        if held.size:
            t_end = max(t_end, min(int(t[held[-1]]) + 1, int(t[-1]) + 1))
    total_req = sum(req.values())
    total_contracted = sum(s["contracted_kw"] for s in same_dir)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(total_req > 0, req[service["id"]] / total_req, service["contracted_kw"] / total_contracted)
    if vehicles is not None:
        baseline = scheduled_kw(vehicles, t)
    else:
        baseline = float(np.nan_to_num(power.at([t_event - 1])[0], nan=power.value[0]))
    return {"t_ms": t, "t_event": t_event, "t_end": t_end, "response_kw": sign * (power.value - baseline) * share,
            "required_kw": req[service["id"]]}


def envelope_error(service: dict, trace: dict, freq, nominal_hz: float) -> tuple[dict, np.ndarray | None] | None:
    """Largest distance outside the NESO-style envelope during the event (None for services without one),
    too-fast response counted only where the market counts it (``too_fast_counts``); the error scored per
    settlement period; beside it, the lower bound on the fleet's grid (kW) for the ``duration`` rule."""
    if "envelope" not in service:
        return None
    spec = service["envelope"]
    step = round(1000 / spec["sample_hz"])
    # continuous monitoring: the whole record, not only the event (the bounds look back up to window_s[1],
    # so a response owed after the frequency recovered is judged too)
    grid = np.arange(trace["t_ms"][0], trace["t_ms"][-1] + 1, step)
    lower, upper = envelope(service, freq, grid, nominal_hz)
    response = np.interp(grid, trace["t_ms"], trace["response_kw"]) / service["contracted_kw"]
    err = error_pu(response, lower, upper if spec.get("too_fast_counts", True) else np.full(grid.size, np.inf))
    k = int(np.argmax(err))
    # what the requirement was doing then: fallen below its peak so far (a withdrawal is being judged), or not
    required = np.interp(grid, trace["t_ms"], trace["required_kw"]) / service["contracted_kw"]
    peak = float(required[:k + 1].max()) if grid.size else 0.0
    return {"max_error_pu": _r(float(err[k]), 6), "at_s": _r((grid[k] - trace["t_event"]) / 1000, 3),
            "too_fast": bool(response[k] > upper[k] + 1e-12 and err[k] > 0),
            "requirement_pu": _r(float(required[k]), 6), "requirement_peak_pu": _r(peak, 6),
            "requirement_falling": bool(required[k] < peak - 1e-6),
            # the response had been higher before: it was withdrawing (not still on its way up)
            "response_withdrawing": bool(response[k] < float(response[:k + 1].max()) - 1e-6),
            "too_fast_counts": bool(spec.get("too_fast_counts", True)),
            "settlement_periods": settlement_periods(grid, err, spec.get("settlement_period_min", 30))}, (
        np.interp(trace["t_ms"], grid, lower) * service["contracted_kw"] if grid.size else None)


def activation_rule(service: dict, trace: dict, window: np.ndarray) -> tuple[dict, np.ndarray] | None:
    """Linear activation (CE FCR, Nordic FCR-N/FCR-D): at every moment of the event the response must be at
    least what the activation times allow (``analysis/regimes.py``). Value: the largest shortfall in pu of
    contracted power; margin: pu to spare (negative: short)."""
    spec = service.get("activation")
    if spec is None:
        return None
    lower = activation_lower_kw(trace["t_ms"], trace["required_kw"], spec["steps"])
    short = np.where(window, (lower * (1 - TOLERANCE_PU) - trace["response_kw"]) / service["contracted_kw"], -np.inf)
    k = int(np.argmax(short))
    worst = max(float(short[k]), 0.0)
    limit = spec.get("tolerance_pu", 0.0)
    rule = _rule(worst <= limit + 1e-9, _r(worst, 6), limit, _r(limit - worst, 6), "pu")
    rule["at_s"] = _r((trace["t_ms"][k] - trace["t_event"]) / 1000, 3)
    return rule, lower


def _rise_s(t: np.ndarray, required: np.ndarray, window: np.ndarray, t_event: int, peak_kw: float) -> float:
    """Seconds from deadband exit until the requirement first reaches its peak (to 1e-9)."""
    hit = np.flatnonzero(window & (required >= peak_kw * (1 - 1e-9)))
    return _r((t[hit[0]] - t_event) / 1000.0, 3) if hit.size else math.inf


def evaluate_service(service: dict, services: list[dict], freq, power, soc, vehicles: dict, nominal_hz: float,
                     threshold_pu: float, telemetry_hz: float, step_rise_fraction: float = 0.1,
                     held_pu: float = 0.99, limits: LimitEvents | None = None) -> ServiceVerdict:
    """The verdict on one service (see ``judge_service``, which also returns the working state)."""
    return judge_service(service, services, freq, power, soc, vehicles, nominal_hz, threshold_pu, telemetry_hz,
                         step_rise_fraction, held_pu, limits)[0]


def judge_service(service: dict, services: list[dict], freq, power, soc, vehicles: dict, nominal_hz: float,
                  threshold_pu: float, telemetry_hz: float, step_rise_fraction: float = 0.1,
                  held_pu: float = 0.99, limits: LimitEvents | None = None) -> tuple[ServiceVerdict, Working | None]:
    """The verdict on one service, and what judging it worked out (for the causes and sensitivity checks)."""
    if limits is None:  # a caller without a record: no vehicle came to a limit
        limits = LimitEvents(None, np.atleast_1d(vehicles["soc_min"]).size)
    threshold_pu = service.get("initiation_threshold_pu", threshold_pu)  # a scenario's own assumption
    entry: ServiceVerdict = {"service": service["id"], "name": service["name"], "eligible": None, "failed": [],
                             "contracted_mw": service["contracted_mw"]}
    trace = service_trace(service, services, freq, power, nominal_hz, vehicles)
    if trace is None:
        entry.update(note="the frequency never left this service's deadband: nothing to judge",
                     initiation_s=None, full_delivery_s=None, delivered_mw=None)
        return entry, None
    t, t_event, t_end, response = trace["t_ms"], trace["t_event"], trace["t_end"], trace["response_kw"]
    required_series = trace["required_kw"]
    window = (t >= t_event) & (t < t_end)
    required_kw = float(np.max(required_series[window])) if window.any() else 0.0
    rise_s = _rise_s(t, required_series, window, t_event, required_kw)
    hold_to = min(t_event + round(service["full_delivery_max_s"] * 1000), t_end)
    fell = np.flatnonzero((t >= t_event + rise_s * 1000) & (t < hold_to) & (required_series < held_pu * required_kw))
    regimes = applicable(service, rise_s, step_rise_fraction, _r((t[fell[0]] - t_event) / 1000, 3) if fell.size else None)
    event_s = (min(t_end, int(t[-1]) + 1) - t_event) / 1000.0  # as far as the record shows it
    t_init = _first(t, window & (response >= threshold_pu * required_kw - 1e-12) & (response > 0))
    t_full = _first(t, window & (response >= required_kw * (1 - TOLERANCE_PU)))
    fraction = service.get("partial_delivery", {}).get("fraction")
    t_partial = None if fraction is None else _first(t, window & (response >= fraction * required_kw * (1 - TOLERANCE_PU)))
    deadline = t_event + round(service["full_delivery_max_s"] * 1000)
    delivered_kw = float(np.interp(deadline, t, response)) if t[0] <= deadline <= t[-1] else None

    def soc_at(t_ms):
        return soc.value[max(np.searchsorted(soc.time_ms, t_ms, side="right") - 1, 0)]

    head, _, _ = headroom_kw(service, vehicles, soc_at(t_event), t_event)
    available_mw = float(head.sum()) / 1000.0

    def secs(t_ms):
        return None if t_ms is None else _r((t_ms - t_event) / 1000.0, 3)

    timed = {"step_test", "trigger"} & {name for name, r in regimes.items() if r["applies"]}
    rules: dict[str, dict | None] = {}
    not_judged: list[str] = []
    found_envelope, envelope_lower_kw = (envelope_error(service, trace, freq, nominal_hz) if "monitoring" in regimes
                                         else None) or (None, None)
    activation, activation_lower = (activation_rule(service, trace, np.ones(t.size, dtype=bool))
                                    if "linear_activation" in regimes else None) or (None, None)  # the whole record
    if timed:
        regime = "trigger" if "trigger" in timed else "step_test"
        rules["initiation"] = dict(initiation(secs(t_init), service), regime=regime, convention=(
            f"initiated: the first moment the fleet's response reached {threshold_pu:g} of the response the event "
            "requires (the testbed's reading of NESO's 'a change in the delivery of response': a first change "
            "beyond measurement noise; initiation_threshold_pu, an assumption)"))
        partial = partial_delivery(secs(t_partial), service)
        rules["partial_delivery"] = None if partial is None else dict(partial, regime=regime)
        rules["full_delivery"] = dict(full_delivery(secs(t_full), service), regime=regime)
        if service["initiation_max_s"] is None:  # the market sets none: reported, not a rule
            rules.pop("initiation")
        for name in ("initiation", "partial_delivery", "full_delivery"):  # never reached, but the event (or the
            rule = rules.get(name)                                         # run) ended before the deadline
            if rule is not None and rule["value"] is None and event_s < rule["limit"] - 1e-9:
                rules.pop(name)
                not_judged.append(f"{name}: the event ended {event_s:g} s after it began, before the "
                                  f"{rule['limit']:g} s deadline: not judged")
    rules["volume"] = dict(volume(available_mw, service), regime=ANY)
    # duration: held while simulated (against the least response the judging regime allows, so that lagging
    # a rising requirement is judged as tracking by its own rule, not as running out), then projected
    if timed:
        reference = required_series * (1 - TOLERANCE_PU)
    elif found_envelope is not None and envelope_lower_kw is not None:
        reference = envelope_lower_kw - service["envelope"]["tolerance_pu"] * service["contracted_kw"]
    elif activation is not None:
        reference = activation_lower * (1 - TOLERANCE_PU)
    else:
        reference = required_series * (1 - TOLERANCE_PU)
    t_last = int(min(t_end - 1, t[-1]))
    t_proj = int(soc.time_ms[max(np.searchsorted(soc.time_ms, t_last, side="right") - 1, 0)])
    held_s, dip_ms = None, None
    reached = _first(t, window & (response >= reference) & (reference > 0))
    if reached is not None:
        dips = np.flatnonzero((t >= reached) & (t <= t_last) & (response < reference - 1e-9))
        dip_ms = int(t[dips[0]]) if dips.size else None
        if dip_ms is not None and not any(ran_out(service, dip_ms, limits, vehicles)):
            # nobody ran out or left: lagging a requirement that rose again is tracking, judged by the timing,
            # envelope or activation rule; a fall below a requirement that did not rise stays a duration failure
            rose = required_series[t == dip_ms][0] > required_series[t == reached][0] * (1 + 1e-9)
            if not timed or rose:
                dip_ms = None
        held_s = ((dip_ms if dip_ms is not None else t_last) - t_event) / 1000.0
    head_end, free_end, energy_end = headroom_kw(service, vehicles, soc_at(t_proj), t_proj)
    sustain = sustainable_minutes(service["contracted_kw"], head_end, free_end, energy_end)
    rules["duration"] = dict(duration(held_s, (t_proj - t_event) / 1000.0, sustain, service), regime=ANY)
    spec = service.get("support") or {}
    if spec.get("reactivation_min") is not None:  # ready again reactivation_min after the support ended
        t_again = t_end + round(spec["reactivation_min"] * 60_000)
        head_again, free_again, energy_again = headroom_kw(service, vehicles, soc_at(t_proj), t_again)
        again = reactivation(float(head_again.sum()) / 1000.0, sustainable_minutes(
            service["contracted_kw"], head_again, free_again, energy_again), service)
        rules["reactivation"] = dict(again, regime="trigger", at_s=_r((t_again - t_event) / 1000.0, 3))
    rules["metering"] = dict(metering(telemetry_hz, service), regime=ANY)
    if found_envelope is not None:
        rules["envelope"] = dict(envelope_rule(found_envelope, service), regime="monitoring")
    if activation is not None:
        rules["activation"] = dict(activation, regime="linear_activation")
    rules = {name: rule for name, rule in rules.items() if rule is not None}
    if not {"initiation", "partial_delivery", "full_delivery", "envelope", "activation"} & set(rules):
        entry.update(regimes=regimes, judged_by=judged_by(regimes), note="nothing about this event's delivery could be judged: " + "; ".join(
            not_judged), initiation_s=secs(t_init), full_delivery_s=secs(t_full), delivered_mw=None,
            event_start_s=_r(t_event / 1000.0, 3), event_end_s=_r(t_end / 1000.0, 3))
        return entry, None
    entry.update(
        eligible=all(r["passed"] for r in rules.values()),
        failed=[name for name in RULES if name in rules and not rules[name]["passed"]],
        regimes=regimes,
        judged_by=judged_by(regimes),
        event_start_s=_r(t_event / 1000.0, 3),
        event_end_s=_r(t_end / 1000.0, 3),
        initiation_s=secs(t_init),
        full_delivery_s=secs(t_full),
        required_mw=_r(required_kw / 1000.0, 6),
        delivered_mw=None if delivered_kw is None else _r(delivered_kw / 1000.0, 6),
        peak_response_mw=_r(float(response[window].max()) / 1000.0, 6) if window.any() else None,
        available_mw=_r(available_mw, 6),
        envelope=found_envelope,
        rules=rules,
    )
    entry["not_judged"] = not_judged
    for name, rule in rules.items():
        rule["parameters"] = parameters.describe(service, name)

    def rejudge(rule: str, parameter: str, value: float) -> bool | None:
        """Would ``rule`` pass with ``parameter`` at ``value``? (the assumptions a verdict may rest on)"""
        if parameter in ("envelope.tolerance_pu", "activation.tolerance_pu") and rules[rule]["value"] is not None:
            return bool(rules[rule]["value"] <= value + 1e-9)
        if parameter == "min_volume_mw" and rule == "volume":
            return bool(volume(available_mw, dict(service, min_volume_mw=value))["passed"])
        if parameter == "initiation_threshold_pu" and rule == "initiation":
            started = secs(_first(t, window & (response >= value * required_kw - 1e-12) & (response > 0)))
            return started is not None and started <= rules[rule]["limit"] + 1e-9
        return None

    withdrew = False  # the fleet itself withdrew (its response fell from what it had reached), not lagged a rise
    if dip_ms is not None:
        since = (t >= reached) & (t <= dip_ms)
        withdrew = bool(response[t == dip_ms][0] < response[since].max() - 1e-6
                        and required_series[t == dip_ms][0] <= required_series[t == reached][0] * (1 + 1e-9))
    return entry, Working(trace=trace, dip_ms=dip_ms, dip_withdrew=withdrew, rejudge=rejudge)


def assessment_note(service: dict, entry: dict, freq) -> str | None:
    """Where the market assesses a service on an event of its own shape (``assessed_on``: AU very fast FCAS on a
    frequency ramp), say when the judged event crossed the trigger at a very different rate of change, and which
    test profile runs the market's shape."""
    spec = service.get("assessed_on")
    if not spec or entry.get("event_start_s") is None:
        return None
    t0 = round(entry["event_start_s"] * 1000)
    before = freq.at(np.array([t0 - 50, t0]))
    rocof = abs(float(before[1] - before[0])) / 0.05
    if 0.5 * spec["rocof_hz_per_s"] <= rocof <= 2.0 * spec["rocof_hz_per_s"]:
        return None
    return (f"{service['id']}: judged on an event that crossed the trigger at about {rocof:.2g} Hz/s; the market "
            f"assesses it on a {spec['rocof_hz_per_s']:g} Hz/s frequency ramp ({', '.join(service['sources'])}, "
            f"unverified): frequency.events: [{{type: standard, name: {spec['profile']}}}] runs that shape")


def vehicles_needed(service: dict, entry: dict, receipts: dict | None, vehicles: dict, t_event: int) -> dict:
    """Smallest fleet of the same mix that meets the contracted power by the full-delivery deadline.

    Each vehicle that heard of the event in this run is asked, at the moment it actually received its
    setpoint (measurement, dispatch and network delays included), for its whole headroom in the
    service's direction; the onboard-charger model says what power it reaches by the deadline. The
    fleet scales linearly: needed = ceil(N x contracted / that power). None when the initiation rule
    failed (more vehicles of the same kind start no sooner) or nobody reaches any power in time.
    Assumes the network and the feeder behave for the larger fleet as for this one."""
    n = len(vehicles["plugged"])
    if not {"step_test", "trigger"} & {k for k, r in entry.get("regimes", {}).items() if r["applies"]}:
        return {"vehicles": None, "power_at_deadline_mw": None,
                "why": "no step test or trigger applied to this event: there is no deadline to size the fleet for"}
    if not entry["rules"].get("initiation", {"passed": True})["passed"] or receipts is None or receipts["vehicle"].size == 0:
        return {"vehicles": None, "power_at_deadline_mw": None}
    deadline = t_event + round(service["full_delivery_max_s"] * 1000)
    fleet = ChargerFleet(**{k: vehicles[k] for k in (*PARAMETERS, *OPTIONAL_PARAMETERS) if k in vehicles})
    idx = receipts["vehicle"]
    limit = fleet.p_min if direction_sign(service) < 0 else fleet.p_max
    for t in np.unique(receipts["recv_ms"]):
        here = idx[receipts["recv_ms"] == t]
        if t > deadline:
            break
        fleet.command(int(t), here, limit[here])
    fleet.advance(max(deadline, fleet.t_ms))
    base = np.asarray(vehicles["baseline_kw"], float)
    reached_kw = float(np.sum(direction_sign(service) * (fleet.power_kw()[idx] - np.where(
        fleet.plugged[idx], base[idx], 0.0))))
    if reached_kw <= 0:
        return {"vehicles": None, "power_at_deadline_mw": 0.0}
    return {"vehicles": int(math.ceil(n * service["contracted_kw"] / reached_kw - 1e-9)),
            "power_at_deadline_mw": _r(reached_kw / 1000, 6)}


VOLTAGE_SERIES = (("voltage", ""), *((f"voltage_{p}", f" phase {p}") for p in PHASES))  # balanced, or per phase


def grid_rule(rec: RunRecord, t_event: int, t_end: int, limits: dict | None) -> dict | None:
    """During the event the feeder must stay within limits: every bus voltage inside its band (the
    scenario's limit set, by the bus's nominal voltage: EN 50160 0.90-1.10 pu; GB ESQCR LV 0.94-1.10,
    HV 0.94-1.06; with an unbalanced power flow, every phase of every bus, and the voltage unbalance at
    or below unbalance_pct, 2 %) and every line and transformer loading at or below loading_pct (100 %;
    the most loaded phase), and every power flow must converge (no voltage collapse). Value: the worst
    violation (or the tightest margin) with the element, the time and the limit it broke."""
    if limits is None or not rec.has("converged"):
        return None
    resolved = Limits.of(limits)
    kv = rec.series("bus_kv")
    if kv is not None and kv.value.size:
        v_min, v_max = resolved.band(kv.value[0])
    else:  # a record from before bus voltages were recorded: the band of the lowest level
        v_min, v_max = resolved.band([0.0])
    conv = rec.series("converged")
    window = (conv.time_ms >= t_event) & (conv.time_ms < t_end)
    if not window.any():  # no power flow inside the event: judge the last one before its end
        window = conv.time_ms == conv.time_ms[conv.time_ms < t_end].max() if (conv.time_ms < t_end).any() else window
    times = conv.time_ms[window]
    if (conv.value[window] == 0).any():
        t_fail = int(times[np.flatnonzero(conv.value[window] == 0)[0]])
        return dict(_rule(False, None, None, None, "pu"), worst="power flow did not converge (voltage collapse)",
                    at_s=_r((t_fail - t_event) / 1000, 3))
    buses = rec.labels("bus_names")
    # (values [time x element], element names, description of element {}, limit, upper limit?, unit, excess -> pu)
    quantities = []
    for name, phase in VOLTAGE_SERIES:
        if rec.has(name):
            vm = rec.series(name).value[window]
            quantities += [(vm, buses, "bus {}%s voltage" % phase, v_max, True, "pu", 1.0),
                           (vm, buses, "bus {}%s voltage" % phase, v_min, False, "pu", 1.0)]
    if rec.has("unbalance"):
        quantities.append((rec.series("unbalance").value[window], buses, "bus {} voltage unbalance",
                           resolved.unbalance_pct, True, "%", 0.01))
    for name, names, label in (("line_loading", "line_names", "line"), ("trafo_loading", "trafo_names", "transformer")):
        loading = rec.series(name)
        if loading is not None and loading.value.shape[1]:
            quantities.append((loading.value[window], rec.labels(names), label + " {} loading", resolved.loading_pct,
                               True, "%", 0.01))
    checks = []  # (excess in pu, comparable across quantities; description, value, limit, unit, time, margin)
    for values, names, element, limit, upper, unit, to_pu in quantities:
        excess = values - limit if upper else limit - values  # in the quantity's unit
        # the earliest time, then the first element, at which the worst value is reached (to 1e-9: a
        # plateau must not be decided by solver round-off)
        k, j = np.argwhere(excess >= excess.max() - 1e-9)[0]
        at = float(np.broadcast_to(limit, values.shape[1:])[j])  # a band per bus, or one limit for all
        checks.append((float(excess[k, j] * to_pu), element.format(names[j] or j), float(values[k, j]), at, unit,
                       int(times[k]), -float(excess[k, j])))
    worst = max(checks, key=lambda c: c[0])
    return dict(_rule(worst[0] <= 1e-9, _r(worst[2], 6), worst[3], _r(worst[6], 6), worst[4]),
                worst=worst[1], at_s=_r((worst[5] - t_event) / 1000, 3))


def grid_summary(rec: RunRecord) -> dict:
    def extreme(name, fn):
        s = rec.series(name)
        if s is None or not np.isfinite(s.value).any():
            return None
        return _r(float(fn(s.value[np.isfinite(s.value)])), 6)

    conv = rec.series("converged")
    return {
        "v_min_pu": extreme("v_min", np.min),
        "v_max_pu": extreme("v_max", np.max),
        "max_line_loading_pct": extreme("max_line_loading", np.max),
        "max_trafo_loading_pct": extreme("max_trafo_loading", np.max),
        **({"max_unbalance_pct": extreme("max_unbalance", np.max)} if rec.has("max_unbalance") else {}),
        "power_flows": None if conv is None else int(conv.value.size),
        "non_converged": None if conv is None else int((conv.value == 0).sum()),
        **({"solver": rec.labels("grid_solver")[0]} if rec.labels("grid_solver") else {}),
    }


def out_of_order(delivered: dict | None) -> int:
    """Setpoints that reached their vehicle after a newer one (higher sequence number) had already arrived."""
    if not delivered or "seq" not in delivered or delivered["seq"].size == 0:
        return 0
    order = np.lexsort((np.arange(delivered["seq"].size), delivered["time_ms"], delivered["vehicle"]))
    vehicle, seq = delivered["vehicle"][order], delivered["seq"][order].astype(float)
    late = 0
    for v in np.unique(vehicle):
        s = seq[vehicle == v]
        late += int(np.sum(s[1:] < np.maximum.accumulate(s)[:-1]))
    return late


def network_summary(rec: RunRecord) -> dict | None:
    delivered = rec.table("delivered")
    lost = rec.table("lost")
    if delivered is None and lost is None:
        return None
    latency = (delivered["time_ms"] - delivered["sent_ms"]) / 1000.0 if delivered else np.zeros(0)

    def q(p):
        return _r(float(np.percentile(latency, p)), 3) if latency.size else None

    causes = {}
    if lost:
        names, counts = np.unique(lost["cause"].astype(str), return_counts=True)
        causes = {str(k): int(c) for k, c in zip(names, counts)}
    up = rec.table("telemetry_delivered")
    up_lost = rec.table("telemetry_lost")
    telemetry = None
    if up is not None or up_lost is not None:
        up_lat = (up["time_ms"] - up["metered_ms"]) / 1000.0 if up else np.zeros(0)
        telemetry = {"reports_delivered": int(up_lat.size), "reports_lost": int(up_lost["vehicle"].size) if up_lost else 0,
                     "latency_s": {"median": _r(float(np.median(up_lat)), 3) if up_lat.size else None,
                                   "p95": _r(float(np.percentile(up_lat, 95)), 3) if up_lat.size else None,
                                   "max": _r(float(up_lat.max()), 3) if up_lat.size else None}}
    return {
        "telemetry": telemetry,
        "messages_delivered": int(latency.size),
        "out_of_order": out_of_order(delivered),
        "messages_lost": int(lost["vehicle"].size) if lost else 0,
        "lost_by_cause": causes,
        "vehicles_not_reached": int(np.setdiff1d(lost["vehicle"], delivered["vehicle"] if delivered else []).size)
        if lost else 0,
        "retries": int(delivered["retries"].sum()) if delivered else 0,
        "latency_s": {"median": q(50), "p95": q(95), "p99": q(99),
                      "max": _r(float(latency.max()), 3) if latency.size else None},
    }


def evaluate(h5_path, services: list[dict], nominal_hz: float, threshold_pu: float, telemetry_hz: float,
             grid_limits: dict | None = None, step_rise_fraction: float = 0.1, held_pu: float = 0.99) -> RunVerdicts:
    """All verdicts of one run, as the JSON-ready dict written to ``verdicts.json``, from its record alone
    (the vehicles as the fleet simulator was given them are in it too)."""
    with RunRecord.open(h5_path) as rec:
        # the state of charge is read one moment at a time, from the file (it can be fleet x steps large)
        freq, power, soc = rec.series("frequency"), rec.series("fleet_power"), rec.series("vehicle_soc", lazy=True)
        vehicles = rec.vehicles()
        limits = LimitEvents(rec.table("limit_events"), len(vehicles["plugged"]))  # the model's own events
        judged = [judge_service(s, services, freq, power, soc, vehicles, nominal_hz, threshold_pu, telemetry_hz,
                                step_rise_fraction, held_pu, limits) for s in services]
        results = [entry for entry, _ in judged]
        for (entry, work), service in zip(judged, services):
            if entry["eligible"] is not None:
                t_event = round(entry["event_start_s"] * 1000)
                rule = grid_rule(rec, t_event, round(entry["event_end_s"] * 1000), grid_limits)
                if rule is not None:
                    entry["rules"]["grid"] = dict(rule, regime=ANY)
                    entry["failed"] = [n for n in RULES if n in entry["rules"] and not entry["rules"][n]["passed"]]
                    entry["eligible"] = not entry["failed"]
                receipts = first_receipts(rec, t_event)
                entry["vehicles_needed"] = vehicles_needed(service, entry, receipts, vehicles, t_event)
                explain_failures(entry, service, chain(service, receipts, vehicles, t_event), limits, vehicles,
                                 work.dip_ms, work.dip_withdrew)
                entry["decided_by"] = parameters.decided_by(entry["rules"], service, work.rejudge)
        network = network_summary(rec)
        for index, (entry, service) in enumerate(zip(results, services)):
            entry["notes"] = explain(entry, network) + [parameters.sentence(entry["service"], found, index)
                                                        for found in entry.get("decided_by", [])]
            shape = assessment_note(service, entry, freq)
            if shape:
                entry["notes"].append(shape)
        return {"services": results, "grid": grid_summary(rec), "network": network}


def explain(entry: dict, network: dict | None) -> list[str]:
    """Plain-language reasons for the failed rules that the numbers alone do not show."""
    notes = [rule["because"] for rule in entry.get("rules", {}).values() if not rule["passed"] and "because" in rule]
    if network and network.get("out_of_order"):
        notes.append(f"{network['out_of_order']} setpoint(s) arrived after a newer one for the same vehicle; the "
                     "chargers kept the newer one (sequence numbers)")
    timing = {"initiation", "full_delivery", "duration"} & set(entry.get("failed", []))
    if network and network["messages_lost"] and timing:
        causes = ", ".join(f"{n} by {c}" for c, n in sorted(network["lost_by_cause"].items()))
        notes.append(f"{network['messages_lost']} setpoint(s) never arrived ({causes}); "
                     f"{network['vehicles_not_reached']} vehicle(s) got no setpoint at all and kept their power")
    return notes
