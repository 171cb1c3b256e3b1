"""Reading a scenario file: bounded, UTF-8, strict YAML, ``--set`` overrides, validated, every problem one line
(``ScenarioError``) before any work."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from v2g_testbed.cosim.scenario.loaded import LoadedScenario
from v2g_testbed.cosim.scenario.messages import _validation_error
from v2g_testbed.cosim.scenario.schema import Scenario, ScenarioError
from v2g_testbed.sims.catalog import CatalogError
from v2g_testbed.sims.files import InputFileError, load_yaml, read_yaml



def apply_override(data: dict, assignment: str) -> None:
    """Apply ``dotted.path=VALUE`` (VALUE parsed as YAML) to the raw scenario dict, in place. List
    items by number: ``fleet.groups.0.count`` or, as error messages write them, ``fleet.groups[0].count``."""
    if "=" not in assignment:
        raise ScenarioError(f"--set {assignment}: expected dotted.path=VALUE")
    path, raw = assignment.split("=", 1)
    try:
        value = load_yaml(raw)
    except InputFileError as exc:
        raise ScenarioError(f"--set {path}: the value is not valid: {str(exc).split(': ', 1)[-1]}") from None
    keys = [k for k in re.split(r"\.|\[(\d+)\]", path.strip()) if k]
    if not keys:
        raise ScenarioError(f"--set {assignment}: empty field path")
    node: Any = data
    for i, key in enumerate(keys):
        last = i == len(keys) - 1
        where = ".".join(keys[: i + 1])
        if isinstance(node, list):
            if not key.isdigit() or int(key) >= len(node):
                raise ScenarioError(f"--set {path}: {where}: no list item {key} (list has {len(node)})")
            key = int(key)
        elif not isinstance(node, dict):
            raise ScenarioError(f"--set {path}: {'.'.join(keys[:i])} is not a section")
        if last:
            node[key] = value
        else:
            if isinstance(node, dict) and node.get(key) is None:
                node[key] = {}
            node = node[key]


def load(path: str | Path, overrides: list[str] = (), seed: int | None = None) -> "LoadedScenario":
    """Read, override and validate a scenario file. Raise ScenarioError with a one-line message."""
    path = Path(path)
    data = read_yaml(path, "scenario", ScenarioError)
    if not isinstance(data, dict):
        raise ScenarioError(f"{path}: (top level): expected a mapping of sections, got {type(data).__name__}")
    for assignment in overrides:
        apply_override(data, assignment)
    if seed is not None:
        data["seed"] = seed
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise _validation_error(path, exc) from None
    except RecursionError:
        raise ScenarioError(f"{path}: (top level): nested too deeply to be a scenario") from None
    except CatalogError as exc:  # raised by VehicleModel checks inside an inline model
        raise ScenarioError(f"{path}: fleet.groups: {exc}") from None
    return LoadedScenario(scenario, path)
