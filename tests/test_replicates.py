"""Probabilistic verdicts over seeds, and fleet sizing."""

import json

import pytest

from conftest import run_file
from v2g_testbed.cosim import run as runner
from v2g_testbed.cosim import scenario


def test_wilson_interval_known_values():
    assert runner.wilson_interval(0, 5) == pytest.approx((0.0, 0.4345), abs=1e-4)
    assert runner.wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert runner.wilson_interval(10, 10)[1] == pytest.approx(1.0)


def test_replicates_interval_narrows_as_n_grows(scenario_file, tmp_path, monkeypatch):
    """A DR-L fleet over 4G whose initiation sits near the 2 s deadline: some seeds pass, some fail. The runs of
    one command read the code's git state once, and every run's provenance gives it."""
    readings = []
    real_git_commit = runner.git_commit
    monkeypatch.setattr(runner, "git_commit", lambda: readings.append(1) or real_git_commit())
    path = scenario_file(duration_s=6, fleet__spread_pct=30, fleet__telemetry_hz=20,
                         fleet__groups=[{"model": "Skoda Enyaq iV 60", "count": 3, "charger_kw": 10, "bus": "Bus 5"}],
                         network={"profile": "4g"}, services=[{"id": "DR-L", "contracted_mw": 0.03}])

    def load(seed):
        return scenario.load(path, [], seed)

    small = runner.run_replicates(load, 4, tmp_path / "small")["services"][0]
    large = runner.run_replicates(load, 16, tmp_path / "large")["services"][0]
    assert large["runs_judged"] == 16 and len(list((tmp_path / "large").glob("seed-*"))) == 16
    width = lambda s: s["ci95"][1] - s["ci95"][0]  # noqa: E731
    assert width(large) < width(small)
    assert 0 < large["eligible_runs"] + large["failed_rule_counts"].get("initiation", 0)
    assert large["initiation_s"]["p5"] <= large["initiation_s"]["median"] <= large["initiation_s"]["p95"]
    saved = json.loads((tmp_path / "large" / "replicates.json").read_text())
    assert saved["seeds"] == list(range(1, 17))
    assert len(readings) == 2  # once a command, not once a run
    import yaml

    git = real_git_commit()
    for seed in (1, 16):
        resolved = yaml.safe_load((tmp_path / "large" / f"seed-{seed}" / runner.RESOLVED).read_text())
        assert resolved["provenance"]["git"] == git


def test_vehicles_needed_scales_the_mix(scenario_file, tmp_path):
    """10 Ariya each reach 10 kW long before DR's 10 s deadline: 1 MW needs 100 of them."""
    path = scenario_file(duration_s=12, fleet__telemetry_hz=20,
                         fleet__groups=[{"model": "Nissan Ariya", "count": 10, "charger_kw": 10, "bus": "Bus 5"}],
                         frequency={"events": [{"type": "step", "at_s": 1, "to_hz": 49.8}]},
                         services=[{"id": "DR-L", "contracted_mw": 1.0}])
    v = run_file(path, tmp_path / "out")["services"][0]
    assert v["failed"] == ["full_delivery", "envelope", "volume", "duration"]  # 100 kW cannot deliver or hold 1 MW
    assert v["vehicles_needed"] == {"vehicles": 100, "power_at_deadline_mw": 0.1}
    dc = run_file(path, tmp_path / "dc", overrides=["services.0.id=DC-L",
                                                     "frequency.events.0.to_hz=49.5"])["services"][0]
    assert "initiation" in dc["failed"] and dc["vehicles_needed"]["vehicles"] is None


def test_replicates_on_a_dask_cluster_equal_those_in_one_process(scenario_file, tmp_path):
    """`v2g run --replicates N --scheduler ADDRESS`: the seeds run on the cluster's workers, the summary and
    every seed's verdicts are the same as in one process, byte for byte."""
    from dask.distributed import LocalCluster

    from v2g_testbed.cosim import api

    path = scenario_file(duration_s=4, fleet__groups=[{"model": "Nissan Ariya", "count": 5, "charger_kw": 10,
                                                       "bus": "Bus 5"}], network={"profile": "4g"})
    local = api.run_replicates(path, 3, out=tmp_path / "local")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        remote = api.run_replicates(path, 3, out=tmp_path / "dask", scheduler=cluster.scheduler_address)
    assert remote.summary == local.summary
    for seed in local.summary["seeds"]:
        assert ((tmp_path / "dask" / f"seed-{seed}" / "verdicts.json").read_bytes()
                == (tmp_path / "local" / f"seed-{seed}" / "verdicts.json").read_bytes())
