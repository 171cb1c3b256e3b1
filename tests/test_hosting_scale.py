"""Hosting capacity at network scale: each feeder solved behind its supply point, and over time."""

import json

import pandas as pd
import pytest
import yaml

from conftest import BASE, ROOT, v2g_cli as cli

RURAL = "simbench:1-LV-rural1--0-sw"


def scenario(tmp_path, network, bus, name="hc", **grid):
    data = dict(BASE, name=name, grid={"network": network, **grid},
                fleet={"assume_v2g": True, "groups": [{"model": "Nissan Ariya", "count": 5, "charger_kw": 11, "bus": bus}]})
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def study(path, out, *extra):
    done = cli("hosting-capacity", path, "--out", out, "--quiet", *extra)
    assert done.returncode == 0, done.stderr
    return done


@pytest.mark.parametrize("network, bus, grid", [
    ("cigre_mv", "Bus 11", {"base_load_scale": 0.6}),                      # the MV scenarios' grid and loading
    ("ieee_eu_lv", "1", {"power_flow": "balanced"}),                       # 906 buses, single-phase houses
    (RURAL, "LV1.101 Bus 5", {}),                                          # a SimBench grid (profiles: below)
])
def test_subnetwork_answers_equal_whole_network_answers(tmp_path, network, bus, grid):
    """Same placements, same searches, same answers: chargers, binding limit and element, value, voltage profile."""
    path = scenario(tmp_path, network, bus, **grid)
    results = {}
    for method in ("subnetwork", "whole-network"):
        study(path, tmp_path / method, "--method", method, "--placements", "3")
        results[method] = json.loads((tmp_path / method / "hosting_capacity.json").read_text())
    fast, slow = results["subnetwork"], results["whole-network"]
    assert any(r["chargers"] > 0 for f in fast["feeders"] for r in f["runs"])  # the study found something to compare
    assert fast["method"] == "subnetwork" and slow["method"] == "whole-network"
    for a, b in zip(fast["feeders"], slow["feeders"], strict=True):
        for x, y in zip(a.pop("runs"), b.pop("runs"), strict=True):  # values to the solvers' precision
            if x["binding"] and x["binding"]["value"] is not None:
                assert x["binding"].pop("value") == pytest.approx(y["binding"].pop("value"), abs=2e-4)
            assert x == y
        pa, pb = a.pop("voltage_profile_at_limit"), b.pop("voltage_profile_at_limit")
        assert (pa is None) == (pb is None)
        if pa:
            assert pa["vm_pu"] == pytest.approx(pb["vm_pu"], abs=2e-6) and pa["chargers_at_bus"] == pb["chargers_at_bus"]
        assert a == b


def test_a_feeders_capacity_is_not_zeroed_by_an_overload_it_cannot_touch(tmp_path):
    """CIGRE MV at full load: transformer 0-1 is overloaded before any charger. The whole-network search says 0 for
    feeder 2 as well, behind the other transformer; behind its own supply point feeder 2 has room."""
    path = scenario(tmp_path, "cigre_mv", "Bus 11")
    study(path, tmp_path / "o", "--placements", "2")
    rows = {(f["feeder"], f["direction"]): f for f in json.loads((tmp_path / "o" / "hosting_capacity.json").read_text())["feeders"]}
    assert rows["Line 1-2", "import"]["chargers_p50"] == 0
    assert rows["Line 1-2", "import"]["binding_element"] == "transformer Trafo 0-1"
    assert rows["Line 12-13", "import"]["chargers_p50"] > 100


def test_time_series_step_equals_the_snapshot_at_that_profile_time(tmp_path):
    path = scenario(tmp_path, RURAL, "LV1.101 Bus 5", power_flow="balanced")
    study(path, tmp_path / "ts", "--times", "2016-01-14..2016-01-15", "--every", "4")
    frame = pd.read_parquet(tmp_path / "ts" / "hosting_capacity_timeseries.parquet")
    feeders = frame.feeder.unique()
    assert len(frame) == len(feeders) * 2 * 24  # feeders x directions x hourly steps of one day
    assert frame.chargers.nunique() > 2  # the answer moves with the profiles
    for name in ("duration_curve.png", "hosting_capacity_map.png", "worst_moments.csv"):
        assert (tmp_path / "ts" / name).stat().st_size > 200
    assert len(list((tmp_path / "ts" / "heatmaps").glob("*.png"))) == len(feeders) * 2
    evening = frame[frame.time == pd.Timestamp("2016-01-14T18:00")]
    snap = scenario(tmp_path, RURAL, "LV1.101 Bus 5", name="snap", power_flow="balanced", profile_time="2016-01-14T18:00")
    study(snap, tmp_path / "snap", "--placements", "1")
    for f in json.loads((tmp_path / "snap" / "hosting_capacity.json").read_text())["feeders"]:
        row = evening[(evening.feeder == f["feeder"]) & (evening.direction == f["direction"])].iloc[0]
        (run,) = f["runs"]
        assert row.chargers == run["chargers"]
        assert (row.binding_limit, row.binding_element) == (run["binding"]["limit"], run["binding"]["element"])
    worst = pd.read_csv(tmp_path / "ts" / "worst_moments.csv")
    for (_, _), part in frame.groupby(["feeder", "direction"]):  # the worst moments listed are the lowest
        assert part.chargers.min() in set(worst.chargers)


@pytest.mark.parametrize("args, message", [
    (["--times", "year"], "--times needs a SimBench grid"),
    (["--times", "2016-02-01"], "START..END"),
    (["--times", "2016-03-01..2016-02-01", "--method", "subnetwork"], "must run forwards"),
    (["--feeders", "No such line"], "no feeder 'No such line'"),
])
def test_bad_hosting_requests_are_one_line_errors(tmp_path, args, message):
    network = "cigre_mv" if args[:2] == ["--times", "year"] or args[0] == "--feeders" else RURAL
    path = scenario(tmp_path, network, "Bus 11" if network == "cigre_mv" else "LV1.101 Bus 5")
    done = cli("hosting-capacity", path, "--out", tmp_path / "o", *args)
    assert done.returncode == 2 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_a_time_series_of_a_combined_mv_lv_grid_is_refused_before_any_group_is_built(tmp_path, monkeypatch):
    """Its LV feeders hang below substations inside the modelled MV network (a whole-network power flow per step
    would be needed): refused from the topology, in one line, with nothing solved and nothing written."""
    from v2g_testbed.analysis.hosting import studies

    def built(*_):
        raise AssertionError("supply groups were built before the refusal")

    monkeypatch.setattr(studies, "group_checks", built)
    path = scenario(tmp_path, "simbench:1-MVLV-rural-1.108-0-sw", "LV1.108 Bus 3", power_flow="balanced")
    done = cli("hosting-capacity", path, "--out", tmp_path / "o", "--times", "2016-01-14..2016-01-15")
    assert done.returncode == 2 and "substation sits inside the modelled network" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "o").exists()


def test_service_hosting_capacity_agrees_with_the_co_simulation(tmp_path, shipped):
    """The MV feeder-end fleet cannot sell its 8 MW of DR-L (the co-simulation's grid rule fails on Line 10-11). The
    service hosting capacity names that line and a smaller power; sold at 97 % of it, the co-simulation passes the
    grid rule, and the shipped 8 MW fails it: the static study and the dynamic run judge the grid alike."""
    from conftest import run_file

    scenario = ROOT / "scenarios" / "mv-feeder-end-dr.yaml"
    done = study(scenario, tmp_path / "svc", "--service", "DR-L")
    result = json.loads((tmp_path / "svc" / "service_hosting.json").read_text())
    assert result["binding_element"] == "line Line 10-11" and 1.0 < result["service_mw"] < 8.0
    assert f"up to {result['service_mw']:.3f} MW" in done.stdout
    _, shipped_verdicts = shipped("mv-feeder-end-dr")
    assert "grid" in shipped_verdicts["services"][0]["failed"]
    below = run_file(scenario, tmp_path / "below", [f"services[0].contracted_mw={0.97 * result['service_mw']:.4f}",
                                                    "duration_s=12"])
    assert "grid" not in below["services"][0]["failed"]
    assert below["services"][0]["rules"]["grid"]["margin"] >= 0
    spread = study(ROOT / "scenarios" / "mv-feeder-spread-dr.yaml", tmp_path / "spread", "--service", "DR-L")
    assert "binds: fleet headroom" in spread.stdout  # spread over the feeders, the fleet runs out before the grid


def test_service_time_series_step_equals_its_snapshot(tmp_path):
    fleet = {"assume_v2g": True, "groups": [{"model": "Nissan Ariya", "count": 12, "charger_kw": 11, "bus": "LV1.101 Bus 5",
                                             "baseline_kw": 2}]}
    data = dict(BASE, name="svc", grid={"network": RURAL, "power_flow": "balanced"}, fleet=fleet)
    (tmp_path / "svc.yaml").write_text(yaml.safe_dump(data))
    study(tmp_path / "svc.yaml", tmp_path / "ts", "--service", "DC-L", "--times", "2016-06-01..2016-06-02", "--every", "8")
    frame = pd.read_parquet(tmp_path / "ts" / "service_hosting.parquet")
    assert len(frame) == 12 and frame.service_mw.nunique() > 1
    assert (tmp_path / "ts" / "service_hosting.png").stat().st_size > 200
    noon = frame[frame.time == pd.Timestamp("2016-06-01T12:00")].iloc[0]
    data["grid"]["profile_time"] = "2016-06-01T12:00"
    (tmp_path / "snap.yaml").write_text(yaml.safe_dump(data))
    study(tmp_path / "snap.yaml", tmp_path / "snap", "--service", "DC-L")
    snap = json.loads((tmp_path / "snap" / "service_hosting.json").read_text())
    assert snap["service_mw"] == noon.service_mw and snap["binding_limit"] == noon.binding_limit


def test_worker_processes_and_a_dask_cluster_give_the_one_process_answer(tmp_path):
    """CIGRE MV's two substations are two supply groups: split over two worker processes, and over a Dask cluster,
    the study gives the one process's answer, feeder for feeder, power flows included; a time series too."""
    from dask.distributed import LocalCluster

    from v2g_testbed.cosim import api

    path = scenario(tmp_path, "cigre_mv", "Bus 11", base_load_scale=0.6)
    one = api.hosting_capacity(path, placements=2).results
    assert len({f["feeder"] for f in one["feeders"]}) > 1
    assert api.hosting_capacity(path, placements=2, workers=2).results == one
    # service hosting capacity of a fleet in both supply groups: each group searched on its own, the least taken
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(yaml.safe_dump(dict(BASE, name="fleet", grid={"network": "cigre_mv", "base_load_scale": 0.6},
                                         fleet={"assume_v2g": True, "groups": [
                                             {"model": "Nissan Ariya", "count": 1000, "charger_kw": 10, "bus": bus}
                                             for bus in ("Bus 5", "Bus 13")]})))
    service = api.hosting_capacity(fleet, service="DR-L")
    assert service.results["binding_limit"] not in ("fleet headroom", "none")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        assert api.hosting_capacity(path, placements=2, scheduler=cluster.scheduler_address).results == one
        on_dask = api.hosting_capacity(fleet, service="DR-L", scheduler=cluster.scheduler_address)
    for split in (api.hosting_capacity(fleet, service="DR-L", workers=2), on_dask):
        assert split.results == service.results
        pd.testing.assert_frame_equal(split.service, service.service)
    rural = scenario(tmp_path, RURAL, "LV1.101 Bus 5", name="rural", power_flow="balanced")
    times = dict(times="2016-01-14..2016-01-15", every=24)
    pd.testing.assert_frame_equal(api.hosting_capacity(rural, workers=2, **times).timeseries,
                                  api.hosting_capacity(rural, **times).timeseries)
