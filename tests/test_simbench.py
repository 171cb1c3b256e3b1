"""SimBench grids with their own load and generation profiles, indexed in milliseconds."""

import numpy as np
import pytest

from conftest import run_file, v2g_cli
from v2g_testbed.cosim.scenario import ScenarioError, load

GRID = "simbench:1-LV-rural1--0-sw"
FLEET = [{"model": "Nissan Ariya", "count": 5, "charger_kw": 10, "bus": "LV1.101 Bus 5"}]


def test_profiles_change_at_the_quarter_hour_boundary(scenario_file, tmp_path):
    """Starting 2 s before 18:15, the grid's loads change exactly at t = 2 s."""
    path = scenario_file(duration_s=5, grid={"network": GRID, "step_s": 0.5, "profile_time": "2016-07-01T18:14:58"},
                         fleet__groups=FLEET, frequency={"events": [{"type": "step", "at_s": 4, "to_hz": 49.5}]},
                         outputs={"sample_ms": 10, "vehicle_sample_ms": 500, "plots": False})
    run_file(path, tmp_path / "out")
    from v2g_testbed.analysis.timeseries import RunRecord

    with RunRecord.open(tmp_path / "out" / "timeseries.h5") as rec:
        voltage = rec.series("voltage")
    t, vm = voltage.time_ms, voltage.value
    before, after = vm[t < 2000], vm[(t >= 2000) & (t < 4000)]
    assert np.allclose(before, before[0]) and np.allclose(after, after[0])  # constant within an interval
    assert np.abs(before[0] - after[0]).max() > 1e-5  # and different across the boundary


def test_profile_time_needs_a_simbench_grid_and_a_2016_time(scenario_file):
    with pytest.raises(ScenarioError, match=r"grid.*profiles exist only for simbench"):
        load(scenario_file(grid={"network": "cigre_mv", "profile_time": "2016-07-01T18:00"}))
    with pytest.raises(ScenarioError, match=r"outside the SimBench year"):
        load(scenario_file(grid={"network": GRID, "profile_time": "2019-08-09T16:52"}, fleet__groups=FLEET))


def test_hosting_capacity_uses_the_profiles_at_profile_time(scenario_file, tmp_path):
    """On a winter evening the transformer has less room for chargers than at 3 a.m."""
    import json

    def median(at):
        path = scenario_file(grid={"network": GRID, "profile_time": at},
                             fleet__groups=[dict(FLEET[0], charger_kw=11, bidirectional=False)])
        out = tmp_path / at.replace(":", "")
        done = v2g_cli("hosting-capacity", str(path), "--placements", "1", "--out", str(out))
        assert done.returncode == 0, done.stderr
        assert f"the grid's profiles at {at}" in done.stdout
        feeders = json.loads((out / "hosting_capacity.json").read_text())["feeders"]
        return {f["feeder"]: f["chargers_p50"] for f in feeders}

    evening, night = median("2016-01-14T18:00"), median("2016-01-14T03:00")
    assert evening.keys() == night.keys() and all(evening[f] < night[f] for f in evening)
