"""v2g-testbed's scenario layer: schema, world builder, runner, command line and the Python API.

    from v2g_testbed.cosim import run_scenario
    r = run_scenario("scenarios/hub-dc-local.yaml")

The API (``v2g_testbed.cosim.api``) is imported on first use, so ``import v2g_testbed.cosim`` stays cheap.
"""

__all__ = ["load_scenario", "run_scenario", "run_replicates", "run_sweep", "hosting_capacity", "RunResult",
           "ReplicatesResult", "HostingResult", "ScenarioError"]


def __getattr__(name):
    if name in __all__:
        from v2g_testbed.cosim import api

        return getattr(api, name)
    raise AttributeError(f"module 'v2g_testbed.cosim' has no attribute {name!r}")
