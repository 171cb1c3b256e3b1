"""The Python API, as a notebook uses it (README: "Python API"). Run: python docs/examples/python_api.py [SCENARIO]

Runs the hub of scenarios/hub-dc-local.yaml twice, locally and over 4G, and compares them: verdicts as a
table, the fleet's power as a pandas series, the per-vehicle table, and what a network costs.
"""

import sys
from pathlib import Path

from v2g_testbed.cosim import run_scenario

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "hub-dc-local.yaml"


def main(scenario=SCENARIO):
    results = {}
    for profile in ("local", "4g"):
        # out=None: a temporary directory, removed when the `with` block ends
        with run_scenario(scenario, overrides=[f"network.profile={profile}"], seed=0) as r:
            table = r.table()
            power = r.series("fleet/p_kw")["fleet_power"]           # indexed by time in seconds
            vehicles = r.vehicles()
            event_s = table.loc["DC-L", "initiation_s"]
            results[profile] = {"eligible": r.eligible["DC-L"], "failed": table.loc["DC-L", "failed"],
                                "causes": table.loc["DC-L", "causes"], "initiation_s": event_s,
                                "peak_export_kw": float(-power.min()), "vehicles": len(vehicles)}
            print(f"{profile:>5}: {'ELIGIBLE' if r.eligible['DC-L'] else 'NOT ELIGIBLE'}; initiation {event_s} s; "
                  f"peak export {-power.min():.0f} kW from {len(vehicles)} vehicles "
                  f"({vehicles['model'].nunique()} models); failed: {', '.join(table.loc['DC-L', 'failed']) or '-'}"
                  + "".join(f"\n       {rule} caused by {cause}" for rule, cause in table.loc["DC-L", "causes"].items()))
    return results


if __name__ == "__main__":
    main(*sys.argv[1:2])
