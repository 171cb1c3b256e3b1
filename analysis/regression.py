"""Regression checks of verdicts against a committed baseline, and JUnit XML for CI systems.

A baseline file (YAML) holds the tolerances it is judged with and, per scenario and service, the fields
below. Booleans and rule lists must match exactly; numbers within the stated tolerance; a number that
appears or disappears (null) is a change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from v2g_testbed.analysis.verdict import RunVerdicts, ServiceVerdict

import math
from xml.sax.saxutils import escape, quoteattr

EXACT = ("eligible", "failed", "judged_by")
NUMERIC = {  # field -> tolerance key
    "initiation_s": "time_s",
    "full_delivery_s": "time_s",
    "delivered_mw": "power_mw",
    "available_mw": "power_mw",
    "required_mw": "power_mw",
}
DEFAULT_TOLERANCES = {"time_s": 0.02, "power_mw": 0.005}


class BaselineError(ValueError):
    """The baseline file is unreadable or malformed."""


def _baseline_model():
    """The baseline file's schema (pydantic), built on first use: every field checked before any scenario runs."""
    from typing import Literal, Optional

    from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

    strict = ConfigDict(extra="forbid", allow_inf_nan=False)
    Number = Optional[float]  # noqa: UP007

    class Service(BaseModel):
        model_config = strict
        eligible: Optional[StrictBool]  # noqa: UP007  (None: not tested)
        failed: list[str]
        judged_by: list[str] = Field(default_factory=list)
        initiation_s: Number = None
        full_delivery_s: Number = None
        delivered_mw: Number = None
        available_mw: Number = None
        required_mw: Number = None

    class Scenario(BaseModel):
        model_config = strict
        seed: StrictInt = Field(ge=0)
        services: dict[str, Service]

    class Baseline(BaseModel):
        model_config = strict
        tolerances: dict[Literal["time_s", "power_mw"], float] = Field(default_factory=lambda: dict(DEFAULT_TOLERANCES))
        scenarios: dict[str, Scenario]

    return Baseline


def load_baseline(path) -> dict:
    """Read and check a baseline file whole: a regular UTF-8 file of YAML with ``scenarios`` (and optionally
    ``tolerances``), every entry of the right type. BaselineError names the first problem in one line."""
    from pydantic import ValidationError

    from v2g_testbed.sims.files import InputFileError, load_yaml, read_text

    try:
        data = load_yaml(read_text(path, "baseline"))
    except OSError as exc:
        raise BaselineError(f"cannot read: {exc.strerror}") from None
    except InputFileError as exc:
        raise BaselineError(str(exc)) from None
    if not isinstance(data, dict) or "scenarios" not in data:
        raise BaselineError("it has no `scenarios` mapping (refusing to overwrite a file v2g did not write)")
    try:
        baseline = _baseline_model().model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise BaselineError(f"{where}: {first['msg']}{more}") from None
    if any(v < 0 for v in baseline.tolerances.values()):
        raise BaselineError("tolerances: must be numbers >= 0")
    out = baseline.model_dump()
    out["tolerances"] = {**DEFAULT_TOLERANCES, **out["tolerances"]}
    for entry in out["scenarios"].values():  # what snapshot() writes: services as plain dicts
        entry["services"] = dict(entry["services"])
    return out


def snapshot(verdicts: "RunVerdicts") -> dict:
    """The part of one run's verdicts that a baseline keeps (``judged_by``: the regimes that applied)."""
    return {"seed": verdicts["seed"],
            "services": {v["service"]: {**{k: v.get(k) for k in (*EXACT, *NUMERIC) if k != "judged_by"},
                                        "judged_by": judged_by(v)} for v in verdicts["services"]}}


def judged_by(entry: "ServiceVerdict") -> list[str]:
    """The regimes that judged a verdict, as it says (verdicts.json written before it said so: from its regimes)."""
    if "judged_by" in entry:
        return list(entry["judged_by"])
    from v2g_testbed.analysis.verdict import judged_by as from_regimes

    return from_regimes(entry.get("regimes"))


def compare(name: str, old: dict | None, new: dict, tolerances: dict) -> list[dict]:
    """Differences between a scenario's baseline entry and a new snapshot, as dicts with
    scenario, service, field, old, new."""
    if old is None:
        return [{"scenario": name, "service": "-", "field": "(scenario)", "old": "not in baseline", "new": "run"}]
    out = []
    if old.get("seed") != new["seed"]:
        out.append({"scenario": name, "service": "-", "field": "seed", "old": old.get("seed"), "new": new["seed"]})
    services = list(dict.fromkeys([*old.get("services", {}), *new["services"]]))
    for service in services:
        a, b = old.get("services", {}).get(service), new["services"].get(service)
        if a is None or b is None:
            out.append({"scenario": name, "service": service, "field": "(service)",
                        "old": "absent" if a is None else "present", "new": "absent" if b is None else "present"})
            continue
        for field in EXACT:
            if a.get(field) != b.get(field):
                out.append({"scenario": name, "service": service, "field": field, "old": a.get(field), "new": b.get(field)})
        for field, key in NUMERIC.items():
            x, y = a.get(field), b.get(field)
            if (x is None) != (y is None) or (x is not None and not math.isclose(x, y, rel_tol=0, abs_tol=tolerances[key])):
                out.append({"scenario": name, "service": service, "field": field, "old": x, "new": y,
                            "tolerance": tolerances[key]})
    return out


def format_difference(d: dict) -> str:
    tol = f" (tolerance {d['tolerance']})" if "tolerance" in d else ""
    return f"{d['scenario']} / {d['service']} / {d['field']}: {d['old']} -> {d['new']}{tol}"


def junit_xml(results: dict[str, dict], differences: list[dict], errors: dict[str, str]) -> str:
    """One test case per scenario x service (or per scenario, when it could not run)."""
    cases = []
    for name in sorted(set(results) | set(errors)):
        if name in errors:
            cases.append(f'<testcase classname={quoteattr(name)} name="run"><error message={quoteattr(errors[name])}/>'
                         "</testcase>")
            continue
        for service in results[name]["services"]:
            diffs = [format_difference(d) for d in differences if d["scenario"] == name and d["service"] in (service, "-")]
            body = (f"<failure message={quoteattr(diffs[0])}>{escape(chr(10).join(diffs))}</failure>" if diffs else "")
            cases.append(f"<testcase classname={quoteattr(name)} name={quoteattr(service)}>{body}</testcase>")
    failures = sum("<failure" in c for c in cases)
    return ('<?xml version="1.0" encoding="utf-8"?>\n<!-- written by v2g-testbed (v2g check) -->\n'
            f'<testsuite name="v2g check" tests="{len(cases)}" failures="{failures}" errors="{len(errors)}">\n'
            + "\n".join(cases) + "\n</testsuite>\n")
