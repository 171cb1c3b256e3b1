"""pydantic's validation errors as one line each: the file, the field as a user writes it, the problem
(a misspelt key: "did you mean"; a union's branches that do not match what was written left out)."""

from __future__ import annotations

import typing
from pathlib import Path

from pydantic import BaseModel, ValidationError

from v2g_testbed.cosim.scenario.schema import FrequencyEvent, Scenario, ScenarioError



# -- loading ---------------------------------------------------------------------------------

# pydantic puts the union member it tried into an error's location: an event's `type` tag, or a type's
# name for plain unions (str | VehicleModel, int | str | list[...]). Those are not field names.
_EVENT_TAGS = {typing.get_args(cls.model_fields["type"].annotation)[0]
               for cls in typing.get_args(typing.get_args(FrequencyEvent)[0])}
_TYPE_NAMES = {"str", "int", "float", "bool", "none", "VehicleModel", "NetworkProfile"}


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in _EVENT_TAGS or part in _TYPE_NAMES or part in _model_names() or "[" in str(part):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out


def _field_names() -> set[str]:
    """Every field name of the scenario schema (for "did you mean")."""
    names, todo = set(), [Scenario]
    while todo:
        cls = todo.pop()
        for name, field in cls.model_fields.items():
            names.add(name)
            todo += [t for t in _model_types(field.annotation) if t not in todo]
    return names


def _model_names() -> set[str]:
    """The class names of the schema's models: pydantic puts a union member's name in an error's location."""
    global _MODEL_NAMES
    if _MODEL_NAMES is None:
        names, todo = set(), [Scenario]
        while todo:
            cls = todo.pop()
            names.add(cls.__name__)
            todo += [t for f in cls.model_fields.values() for t in _model_types(f.annotation) if t.__name__ not in names]
        _MODEL_NAMES = names
    return _MODEL_NAMES


_MODEL_NAMES: set[str] | None = None


def _model_types(annotation) -> list[type]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [t for arg in typing.get_args(annotation) for t in _model_types(arg)]


def _validation_problems(path: Path, exc: ValidationError) -> list[str]:
    """Every problem pydantic found, one line each (file, field, problem), the likeliest cause first."""
    import difflib

    errors = exc.errors()
    # A typo in a key shows as an unknown field *and* a missing one: the unknown field is the cause. For a
    # union field (`str | inline model`), the branches that do not match the kind of value the user wrote
    # ("not a valid string" for a mapping, "not a dictionary" for a string) are noise: left out where the
    # branch that matches has errors of its own.
    errors.sort(key=lambda e: e["type"] != "extra_forbidden")

    def noise(e) -> bool:
        if isinstance(e.get("input"), dict):
            return e["type"].endswith(("_type", "_parsing")) and e["type"] not in ("dict_type", "model_type")
        return e["type"] in ("model_type", "dict_type", "model_attributes_type", "dataclass_type")

    if not all(noise(e) for e in errors):
        errors = [e for e in errors if not noise(e)]
    # a branch that matched the value's kind got further in (its errors lie deeper): a shallower "not a valid
    # <type>" from another branch is noise too
    places = [_loc(e["loc"]) for e in errors]
    errors = [e for e, here in zip(errors, places)
              if not (e["type"].endswith(("_type", "_parsing"))
                      and any(p.startswith((here + ".", here + "[")) for p in places))]
    found: dict[str, list[str]] = {}  # where -> problems there (a union's branches each say why not)
    missing: dict[str, list[str]] = {}
    for error in errors:
        if error["type"] == "extra_forbidden":
            key = str(error["loc"][-1])
            close = difflib.get_close_matches(key, sorted(_field_names() - {key}), n=1)
            hint = f"; did you mean `{close[0]}`?" if close else ""
            where, msg = _loc(error["loc"][:-1]) or "(top level)", f"unknown field `{key}`{hint}"
        elif error["type"] == "missing":  # the fields a section lacks, on one line
            where = _loc(error["loc"][:-1]) or "(top level)"
            missing.setdefault(where, []).append(str(error["loc"][-1]))
            continue
        else:
            msg = error["msg"].removeprefix("Value error, ")
            where = _loc(error["loc"])
            if msg.startswith("@"):  # a model-level check naming its field
                name, msg = msg[1:].split(": ", 1)
                where = f"{where}.{name}" if where else name
            elif msg.startswith("[") or msg.startswith("profile:"):  # our validators name the sub-field
                sep = "" if msg.startswith("[") else "."
                where, msg = f"{where}{sep}{msg.split(':', 1)[0]}", msg.split(": ", 1)[1]
            where = where or "(top level)"
        if msg not in found.setdefault(where, []):
            found[where].append(msg)
    for where, names in missing.items():
        if len(names) == 1:
            found.setdefault(f"{where}.{names[0]}" if where != "(top level)" else names[0], []).append("Field required")
        else:
            found.setdefault(where, []).append(f"missing fields {', '.join(names)}")
    return [f"{path}: {where}: {'; or: '.join(msgs)}" for where, msgs in found.items()]


def _validation_error(path: Path, exc: ValidationError) -> ScenarioError:
    """The first problem as the one-line message (with how many more, and where to see them)."""
    problems = _validation_problems(path, exc)
    more = f" (+{len(problems) - 1} more: `v2g validate {path}` lists them)" if len(problems) > 1 else ""
    return ScenarioError(problems[0] + more, problems)


