"""v2g-testbed's scenario layer: schema, world builder, runner, command line and the Python API.

    from cosim import run_scenario
    r = run_scenario("scenarios/hub-dc-local.yaml")

The API (``cosim.api``) is imported on first use, so ``import cosim`` stays cheap.
"""

__all__ = ["load_scenario", "run_scenario", "run_replicates", "run_sweep", "hosting_capacity", "RunResult",
           "ReplicatesResult", "HostingResult", "ScenarioError"]


def __getattr__(name):
    if name in __all__:
        from cosim import api

        return getattr(api, name)
    raise AttributeError(f"module 'cosim' has no attribute {name!r}")
