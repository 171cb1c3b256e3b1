"""What each rule judged with, what those numbers rest on, and whether an assumption decided the verdict.

Each rule reads a few of its service's parameters (``RULE_PARAMETERS``); ``sims/data/judging_parameters.yaml``
says of each whether a document we read gives it (``source``), it is attributed to one nobody here could open
(``unverified``), or it is the testbed's own choice (``assumption``, with a plausible range). A verdict is
*decided by* an assumption when moving that assumption within its range would flip it: the rules it feeds
are judged again at both ends of the range (``decided_by``).
"""

from __future__ import annotations

from typing import Callable

from v2g_testbed.sims import catalog

RULE_PARAMETERS: dict[str, tuple[str, ...]] = {
    "initiation": ("initiation_max_s", "initiation_threshold_pu", "curve"),
    "partial_delivery": ("partial_delivery", "curve"),
    "full_delivery": ("full_delivery_max_s", "curve"),
    "envelope": ("envelope.window_s", "envelope.upper_ramp_pu_per_s", "envelope.lower_ramp_pu_per_s",
                 "envelope.too_fast_counts", "envelope.tolerance_pu", "curve"),
    "activation": ("activation.steps", "activation.tolerance_pu", "curve"),
    "volume": ("min_volume_mw",),
    "duration": ("delivery_duration_min", "support"),
    "reactivation": ("support",),
    "metering": ("metering_hz",),
}


def value_of(service: dict, name: str):
    """A parameter's value for this service (dotted names reach into a section: ``envelope.tolerance_pu``)."""
    if name == "initiation_threshold_pu":
        return service.get(name, catalog.initiation_threshold_pu())
    node = service
    for part in name.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def status_of(service: dict, name: str) -> dict:
    """``{"status", "source"|"why", "where", "range"}`` of one parameter of this service."""
    data = catalog.judging_parameters()
    found = data["conventions"].get(name) or (data["families"].get(service.get("family"), {}) or {}).get(name)
    if found is None:
        found = {"status": "unverified" if service.get("verify") else "source",
                 "source": ",".join(service.get("sources", []))}
    return {k: v for k, v in found.items() if v is not None}


def assumptions(service: dict) -> dict[str, dict]:
    """The parameters of this service that are the testbed's own, with a range: what ``assume`` may set."""
    names = {n for names in RULE_PARAMETERS.values() for n in names}
    return {n: s for n in sorted(names) if (s := status_of(service, n))["status"] == "assumption" and "range" in s
            and value_of(service, n) is not None}


def describe(service: dict, rule: str) -> dict[str, dict]:
    """The parameters ``rule`` used, each with its value and what it rests on (for verdicts.json)."""
    out = {}
    for name in RULE_PARAMETERS.get(rule, ()):
        value = value_of(service, name)
        if value is not None:
            out[name] = {"value": value, **status_of(service, name)}
    return out


def decided_by(rules: dict, service: dict, rejudge: Callable[[str, str, float], bool | None]) -> list[dict]:
    """Assumptions that decide the verdict: judged at either end of its range, the verdict differs.
    ``rejudge(rule, parameter, value)`` says whether ``rule`` passes with ``parameter`` at ``value`` (None: the
    rule does not depend on it)."""
    out = []
    for name, spec in assumptions(service).items():
        users = [r for r in rules if name in RULE_PARAMETERS.get(r, ())]
        if not users:
            continue
        ends = {}
        for end in spec["range"]:
            passes = {r: rules[r]["passed"] for r in rules}
            for r in users:
                again = rejudge(r, name, float(end))
                if again is not None:
                    passes[r] = again
            ends[end] = all(passes.values())
        if len(set(ends.values())) > 1:
            low, high = spec["range"]
            out.append({"parameter": name, "value": value_of(service, name), "range": [low, high],
                        "eligible_at": {str(low): ends[low], str(high): ends[high]}, "why": spec.get("why")})
    return out


def sentence(service_id: str, found: dict, index: int | None = None) -> str:
    """One line for the notes: which assumption decided the verdict, and how to set it."""
    low, high = found["range"]
    at = found["eligible_at"]
    where = f"services[{index}]" if index is not None else "services[i]"
    return (f"decided by an assumption: {found['parameter']} = {found['value']:g} (the testbed's own; plausible "
            f"{low:g}-{high:g}): {'eligible' if at[str(low)] else 'not eligible'} at {low:g}, "
            f"{'eligible' if at[str(high)] else 'not eligible'} at {high:g}; set it with "
            f"--set {where}.assume.{found['parameter']}=VALUE")
