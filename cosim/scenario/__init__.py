"""Scenario files: schema (pydantic), loading, ``--set`` overrides and one-line errors.

A scenario is the only thing a user writes: it names the grid, the fleet, the network, the frequency events and
the services, and nothing about mosaik. Paths inside a scenario are relative to the scenario file. Every problem
is reported as ``ScenarioError("<file>: <field.path>: <what>")``.

    schema.py       the pydantic models of a scenario file, and ScenarioError
    messages.py     pydantic's errors as one line each (file, field, problem)
    load.py         reading a file, --set overrides, validation
    loaded.py       a loaded scenario: catalogs, services, network profile, the grid checked, the resolved scenario
    json_schema.py  the JSON Schema for editors (`v2g schema`)
"""

from v2g_testbed.cosim.scenario.json_schema import json_schema
from v2g_testbed.cosim.scenario.load import apply_override, load
from v2g_testbed.cosim.scenario.loaded import LoadedScenario, machine_memory_gb
from v2g_testbed.cosim.scenario.schema import (INPUTS_DIR, MAX_TIME_S, NAME_PATTERN, Execution, Fleet, FleetGroup,
                                               Frequency, Grid, NetworkProfile, Scenario, ScenarioError, ServiceRef)

__all__ = ["INPUTS_DIR", "MAX_TIME_S", "NAME_PATTERN", "Execution", "Fleet", "FleetGroup", "Frequency", "Grid",
           "LoadedScenario", "NetworkProfile", "Scenario", "ScenarioError", "ServiceRef", "apply_override",
           "json_schema", "load", "machine_memory_gb"]
