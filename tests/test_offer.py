"""What can this fleet sell (issue 29): the MW of a service offered per market window, from plug-in behaviour,
judged by the co-simulation's own verdicts at sampled moments of the window."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import make_scenario, v2g_cli
from v2g_testbed.cosim import offer
from v2g_testbed.cosim.world import sample_fleet

NIGHT = {"plug_in": "19:00", "plug_out": "07:00"}


def night_fleet(tmp_path, count=100, bidirectional=False, **group):
    return make_scenario(tmp_path, name="night", duration_s=8, fleet={"assume_v2g": True, "telemetry_hz": 20, "groups": [
        dict({"model": "Nissan Ariya", "count": count, "charger_kw": 10, "bus": "Bus 5", "soc": 0.5,
              "bidirectional": bidirectional, "sessions": NIGHT}, **group)]},
        frequency={"events": [{"type": "step", "at_s": 1, "to_hz": 49.8}]},
        services=[{"id": "DR-L", "contracted_mw": 1.0}])


def test_sessions_decide_who_is_plugged_in_and_with_what_charge(tmp_path):
    from v2g_testbed.cosim import scenario

    path = night_fleet(tmp_path)
    at = {}
    for t in ("13:00", "20:00", "06:30"):
        loaded = scenario.load(path, [f"fleet.time_of_day='{t}'"])
        loaded.check_grid()
        at[t] = sample_fleet(loaded)
    assert sum(at["13:00"]["plugged"]) == 0
    assert sum(at["20:00"]["plugged"]) == sum(at["06:30"]["plugged"]) == 100
    # one hour at 10 kW into 87 kWh at 95 %: +0.109; after 11.5 h: full (soc_max) and no longer charging
    assert np.mean(at["20:00"]["soc"]) == pytest.approx(0.5 + 10 * 0.95 / 87, abs=0.01)
    assert set(at["20:00"]["baseline_kw"]) == {10.0} and set(at["06:30"]["baseline_kw"]) == {0.0}
    assert {d / 3.6e6 for d in at["20:00"]["departure_ms"]} == {11.0}  # leaves at 07:00


def test_a_night_fleet_offers_nothing_at_midday_and_its_headroom_at_night(tmp_path, monkeypatch):
    """The issue's case: 100 vehicles plugged in 19:00-07:00, charging at 10 kW as V1G: nothing in 11-15
    (binding: availability), at most their headroom (1 MW of charging they can stop) at night. All the offer's runs
    share one reading of the code's git state."""
    from v2g_testbed.cosim import run as runner

    readings = []
    real_git_commit = runner.git_commit
    monkeypatch.setattr(runner, "git_commit", lambda: readings.append(1) or real_git_commit())
    rows = offer.offer(night_fleet(tmp_path), "11-15,19-23", 0.9, samples=1, replicates=2, steps=3)
    assert len(readings) == 1
    day, night = rows
    assert (day["window"], day["offered_mw"], day["binds"]) == ("11-15", 0.0, "availability")
    assert day["headroom_mw"]["p50"] == 0.0 and day["vehicles_present"] == {"p5": 0, "p50": 0, "p95": 0}
    assert night["vehicles_present"]["p50"] == 100
    assert night["window"] == "19-23" and 0 < night["offered_mw"] <= night["headroom_mw"]["p95"] + 1e-9 <= 1.0 + 1e-9
    assert night["p_eligible"] >= 0.9
    # beside the runs, the planner's static answer at the window's moments: the grid's service hosting capacity
    assert day["grid"]["service_mw"] == 0.0 and day["grid"]["binding_limit"] == "fleet headroom"
    assert night["grid"]["service_mw"] >= night["offered_mw"] - 1e-9 and night["grid"]["at"] in night["moments"]


def test_a_tighter_confidence_never_offers_more(tmp_path):
    """300 home chargers at 15-19 h: how many are back home varies with the draw (the home profile's arrivals),
    so P(eligible) falls with the MW asked: 0.95 offers less than 0.5 (1.28 against 1.56 MW), each at its P."""
    path = night_fleet(tmp_path, count=300, bidirectional=True, sessions={"profile": "home"})
    loose = offer.offer(path, "15-19", 0.5, samples=1, replicates=5, steps=3)[0]
    tight = offer.offer(path, "15-19", 0.95, samples=1, replicates=5, steps=3)[0]
    assert 0 < tight["offered_mw"] < loose["offered_mw"] <= loose["headroom_mw"]["p95"]
    assert tight["p_eligible"] >= 0.95 and loose["p_eligible"] >= 0.5


def test_replicates_at_the_offered_mw_reach_the_confidence(tmp_path):
    """Fresh seeds (not those the offer was found with) at the offered MW: P(eligible) >= the confidence, within
    the Wilson interval of those runs."""
    from v2g_testbed.cosim import api

    path = night_fleet(tmp_path, count=120, bidirectional=True)
    row = offer.offer(path, "19-23", 0.8, samples=1, replicates=3, steps=3)[0]
    assert row["offered_mw"] > 0
    moment = row["moments"][0]
    fresh = api.run_replicates(path, 8, overrides=[f"fleet.time_of_day='{moment}'",
                                                   f"services.0.contracted_mw={row['offered_mw']}"], seed=100)
    summary = fresh.summary["services"][0]
    assert summary["ci95"][1] >= 0.8, summary


def test_offer_command_writes_table_json_and_plot(tmp_path):
    done = v2g_cli("offer", night_fleet(tmp_path), "--windows", "11-15,19-23", "--samples", "1", "--replicates", "2",
                   "--steps", "2", "--confidence", "0.9", "--out", tmp_path / "offer", "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "availability" in done.stdout and "11-15" in done.stdout
    data = json.loads((tmp_path / "offer" / "offer.json").read_text())
    assert data["service"] == "DR-L" and [w["window"] for w in data["windows"]] == ["11-15", "19-23"]
    assert (tmp_path / "offer" / "offer.png").stat().st_size > 5_000
    assert (tmp_path / "offer" / "offer.csv").read_text().count("\n") == 3
    report = v2g_cli("report", tmp_path / "offer", cwd=tmp_path)  # the HTML report's offer page
    assert report.returncode == 0, report.stderr
    page = (tmp_path / "offer" / "report.html").read_text()
    assert '<table id="offer">' in page and "availability" in page and "data:image/png;base64" in page


def test_windows_and_moments():
    assert offer.windows("efa")[0] == (23, 3) and len(offer.windows("hourly")) == 24
    assert offer.moments((23, 3), 2) == ["00:00", "02:00"] and offer.moments((11, 15), 1) == ["13:00"]
    with pytest.raises(Exception, match="not a window"):
        offer.windows("5-5")


def test_a_sessions_file_of_ones_own_fleet(tmp_path):
    """Recorded sessions (arrival, departure, state of charge on arrival): each vehicle draws one; a bad row is
    exit 2 naming the field and the row; the resolved scenario carries a copy."""
    from v2g_testbed.cosim import scenario
    from v2g_testbed.cosim.scenario import ScenarioError

    (tmp_path / "sessions.csv").write_text("arrival,departure,soc_arrival\n18:00,07:30,0.4\n20:30,06:00,0.6\n"
                                           "08:00,17:00,0.5\n")
    path = night_fleet(tmp_path, count=300, sessions={"file": "sessions.csv"})
    loaded = scenario.load(path, ["fleet.time_of_day='22:00'"])
    loaded.check_grid()
    drawn = sample_fleet(loaded)
    present = sum(drawn["plugged"])
    assert 150 < present < 250  # two of the three recorded sessions cover 22:00
    assert set(round(d / 3.6e6, 2) for d in drawn["departure_ms"] if d is not None) == {9.5, 8.0}
    assert "fleet.groups[0].sessions.file" in loaded.input_files()
    (tmp_path / "sessions.csv").write_text("arrival,departure,soc_arrival\n25:00,07:30,0.4\n")
    with pytest.raises(ScenarioError, match=r"fleet.groups\[0\].sessions.file: sessions.csv: row 2"):
        scenario.load(path)


def test_worker_processes_and_a_dask_cluster_give_the_same_offer(tmp_path):
    from dask.distributed import LocalCluster

    path = night_fleet(tmp_path, count=120, bidirectional=True)
    args = dict(spec="19-23", confidence=0.8, samples=1, replicates=2, steps=2)
    one = offer.offer(path, **args)
    assert offer.offer(path, **args, workers=2) == one
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        assert offer.offer(path, **args, scheduler=cluster.scheduler_address) == one


def test_a_feeder_that_cannot_carry_the_fleet_binds_on_grid():
    """The 55 homes of the IEEE European LV feeder, plugged in 19:00-07:00 and charging on arrival: at 21:00 the
    evening charging alone takes the feeder past its limits, so no FCR-D is offered and the grid binds, though the
    fleet has 0.8 MW of headroom."""
    from conftest import ROOT

    rows = offer.offer(ROOT / "scenarios" / "lv-homes-fcrd.yaml", "19-23", 0.9, samples=1, replicates=1, steps=2,
                       overrides=['fleet.groups.0.sessions={plug_in: "19:00", plug_out: "07:00"}'])
    assert rows[0]["offered_mw"] == 0.0 and rows[0]["binds"] == "grid"
    assert rows[0]["headroom_mw"]["p50"] > 0.5  # the fleet could: the feeder cannot
    assert rows[0]["grid"] is None  # the static study solves balanced flows; this feeder is solved unbalanced


def test_an_offer_table_held_against_a_baseline(tmp_path):
    """`v2g offer --baseline FILE [--update]`: a changed offer (a model number moved) is exit 1, listed."""
    import yaml

    path = night_fleet(tmp_path)
    common = ["offer", path, "--windows", "11-15,19-23", "--samples", "1", "--replicates", "1", "--steps", "2",
              "--confidence", "0.9", "--quiet", "--baseline", tmp_path / "offers.yaml"]
    assert v2g_cli(*common, "--out", tmp_path / "o1", "--update", cwd=tmp_path).returncode == 0
    saved = yaml.safe_load((tmp_path / "offers.yaml").read_text())
    assert saved["offers"]["night"]["windows"]["11-15"] == {"offered_mw": 0.0, "binds": "availability"}
    same = v2g_cli(*common, "--out", tmp_path / "o2", cwd=tmp_path)
    assert same.returncode == 0 and "no change" in same.stdout
    fewer = v2g_cli(*common, "--out", tmp_path / "o3", "--set", "fleet.groups.0.count=30", cwd=tmp_path)
    assert fewer.returncode == 1 and "night / 19-23 / offered_mw: 1.0 -> 0.0" in fewer.stdout


def test_departure_floor_by_hand():
    """60 kWh at SoC 0.5 wanting 0.9 (24 kWh), a 10 kW charger, lossless, a 15 min service: leaving in 3 h it can
    spare 3.5 kWh (export down to the charger's -10 kW); in 2.5 h it must keep charging 6 kW (4 of its 10 kW to
    give); in 2 h it has nothing to give (it needs all 10 kW); a vehicle that never leaves has no floor."""
    from v2g_testbed.sims.fleet import departure_floor_kw

    floor = departure_floor_kw(np.full(4, 0.5), 0.9, 60.0, np.array([3.0, 2.5, 2.0, np.inf]), 0.25, 10.0, 1.0, 1.0)
    assert floor[0] == pytest.approx(-14.0) and floor[1] == pytest.approx(6.0) and floor[2] == pytest.approx(10.0)
    assert floor[3] == -np.inf


@given(soc=st.floats(0.05, 1.0), target=st.floats(0.1, 1.0), hours=st.floats(0.01, 24), honour=st.floats(0.01, 2),
       p_max=st.floats(1, 50), eta_c=st.floats(0.8, 1.0), eta_d=st.floats(0.8, 1.0))
@settings(max_examples=200, deadline=None, derandomize=True)
def test_the_departure_floor_is_the_least_power_that_still_reaches_the_target(soc, target, hours, honour, p_max,
                                                                              eta_c, eta_d):
    """Held at its floor for the service (or until it leaves) and charging at its rating after, a vehicle reaches
    its departure target whenever it can at all; a little less power than the floor and it would not."""
    from v2g_testbed.sims.fleet import departure_floor_kw

    cap = 60.0
    floor = float(departure_floor_kw(np.array([soc]), target, cap, np.array([hours]), honour, p_max, eta_c, eta_d)[0])
    held, after = min(honour, hours), max(hours - honour, 0.0)

    def arrives_with(p):
        return soc * cap + (p * eta_c if p > 0 else p / eta_d) * held + p_max * eta_c * after

    if floor < p_max - 1e-9:  # it can reach the target: at the floor exactly, and not below it
        assert arrives_with(floor) >= target * cap - 1e-6
        assert arrives_with(floor - 0.01 * p_max) < target * cap + 1e-9
    else:  # it needs all its charger (or more): nothing to give
        assert floor == pytest.approx(p_max)


def test_a_vehicle_gives_the_service_only_what_its_departure_energy_spares(tmp_path):
    """A night fleet plugged in 04:00-08:00 from SoC 0.2, wanting 0.6, at 06:00: drawn as for a run, each vehicle's
    lowest power is raised to what its departure needs over DR's 60 min, so the plugged-in headroom the verdict
    counts is what that spares (4.1 kW of each 10 kW charger, not the 20 kW of stopping and exporting)."""
    from v2g_testbed.cosim import scenario
    from v2g_testbed.sims.obc import headroom_kw

    path = night_fleet(tmp_path, bidirectional=True, soc=0.2, soc_max=0.6, sessions={"plug_in": "04:00",
                                                                                     "plug_out": "08:00"})
    loaded = scenario.load(path, ["fleet.time_of_day='06:00'"])
    loaded.check_grid()
    vehicles = sample_fleet(loaded)
    # 2 h at 10 kW into 87 kWh at the group's 97 %: SoC 0.423; (0.6 - 0.423) x 87 = 15.4 kWh wanted; the hour after
    # DR's hour brings 9.7: 5.7 kWh to find during it, 5.88 kW of charging kept
    eta = vehicles["eta_charge"][0]
    soc = 0.2 + 2 * 10 * eta / 87
    floor = ((0.6 - soc) * 87 - 10 * eta) / eta
    assert floor == pytest.approx(5.876, abs=0.01)
    assert np.array(vehicles["p_min_kw"]) == pytest.approx(np.full(100, floor))
    head, _, _ = headroom_kw(-1, vehicles, np.array(vehicles["soc"]), 0.0)
    assert head.sum() == pytest.approx(100 * (10 - floor))


def test_sessions_by_weekday_and_energy_wanted(tmp_path):
    """A sessions file with the day of arrival and the energy wanted: Monday's overnight sessions are still there
    early on Tuesday, nobody arrives on Tuesday, Saturday's daytime sessions are there at noon on Saturday only; a
    session that wants 5 kWh stops charging once it has them (its baseline is then 0) and leaves with them."""
    from v2g_testbed.cosim import scenario
    from v2g_testbed.cosim.scenario import ScenarioError

    (tmp_path / "sessions.csv").write_text("weekday,arrival,departure,soc_arrival,energy_kwh\n"
                                           "Mon,18:00,07:00,0.5,5\nSat,10:00,16:00,0.4,\n")
    path = night_fleet(tmp_path, count=50, sessions={"file": "sessions.csv"})

    def drawn(day, t):
        loaded = scenario.load(path, [f"fleet.weekday={day}", f"fleet.time_of_day='{t}'"])
        loaded.check_grid()
        return sample_fleet(loaded)

    assert sum(drawn("Tue", "06:00")["plugged"]) == 50 and sum(drawn("Tue", "20:00")["plugged"]) == 0
    assert sum(drawn("Sat", "12:00")["plugged"]) == 50 and sum(drawn("Sun", "12:00")["plugged"]) == 0
    monday = drawn("Mon", "20:00")  # 2 h at 10 kW is more than the 5 kWh wanted: charged to them, then idle
    assert np.array(monday["soc"]) == pytest.approx(np.full(50, 0.5 + 5 / 87))
    assert set(monday["baseline_kw"]) == {0.0}
    assert set(drawn("Sat", "12:00")["baseline_kw"]) == {10.0}  # no energy given: charges towards soc_max
    (tmp_path / "sessions.csv").write_text("weekday,arrival,departure,soc_arrival\nMonday,18:00,07:00,0.5\n"
                                           "Funday,18:00,07:00,0.5\n")
    with pytest.raises(ScenarioError, match=r"sessions.file: sessions.csv: row 3: weekday 'Funday'"):
        scenario.load(path)


def test_an_offer_over_days_follows_the_sessions_of_each_day(tmp_path):
    """Two days from a Friday, with cars at work on weekdays only: Friday's 11-15 offers their charging, Saturday's
    nothing (availability); without anything that changes with the day, --days is refused (exit 2)."""
    from v2g_testbed.cosim.scenario import ScenarioError

    (tmp_path / "sessions.csv").write_text("weekday,arrival,departure,soc_arrival\n"
                                           + "".join(f"{d},08:00,17:00,0.3\n" for d in ("Mon", "Tue", "Wed", "Thu", "Fri")))
    path = night_fleet(tmp_path, count=120, sessions={"file": "sessions.csv"})
    rows = offer.offer(path, "11-15", 0.8, samples=1, replicates=1, steps=1, overrides=["fleet.weekday=Fri"], days=2)
    friday, saturday = rows
    assert (friday["day"], saturday["day"]) == ("Fri", "Sat")
    assert friday["offered_mw"] >= 1.0 and friday["vehicles_present"]["p50"] == 120
    assert (saturday["offered_mw"], saturday["binds"]) == (0.0, "availability")
    assert offer.snapshot(rows, "DR-L", 0.8)["windows"].keys() == {"Fri 11-15", "Sat 11-15"}
    from v2g_testbed.analysis.report import render_offer

    (tmp_path / "days").mkdir()
    offer.write(rows, tmp_path / "days", "DR-L", 0.8)  # the table, the csv's day column and the report name the day
    assert "Fri 11-15" in render_offer(tmp_path / "days") and "Sat 11-15" in render_offer(tmp_path / "days")
    assert (tmp_path / "days" / "offer.csv").read_text().splitlines()[1].startswith("Fri,11-15,")
    with pytest.raises(ScenarioError, match="--days 2: nothing in this scenario changes with the day"):
        offer.offer(night_fleet(tmp_path), "11-15", 0.8, samples=1, replicates=1, steps=1, days=2)
    from conftest import one_error_line

    done = v2g_cli("offer", night_fleet(tmp_path), "--days", "2", "--out", tmp_path / "o", "--quiet")
    assert done.returncode == 2 and not (tmp_path / "o").exists()
    one_error_line(done.stderr, "--days 2")


def test_the_shipped_offer_scenario_is_valid():
    """scenarios/offers/ holds the README's walk-through (run by `v2g offer`, not by the suite's one run per scenario)."""
    from conftest import ROOT
    from v2g_testbed.cosim import scenario

    for path in sorted((ROOT / "scenarios" / "offers").glob("*.yaml")):
        loaded = scenario.load(path)
        assert any(g.get("sessions") for g in loaded.groups), path


def test_an_offer_whose_grid_study_cannot_be_made_still_answers(tmp_path, monkeypatch):
    """Where the static study cannot represent the network, the row says so (no MW) and the runs still judge."""
    from v2g_testbed.cosim import api
    from v2g_testbed.cosim.scenario import ScenarioError

    def refused(*_, **__):
        raise ScenarioError("x.yaml: grid: the subnetwork method cannot represent this network")

    monkeypatch.setattr(api, "hosting_capacity", refused)
    (row,) = offer.offer(night_fleet(tmp_path), "11-15", 0.9, samples=1, replicates=1, steps=1)
    assert row["grid"]["service_mw"] is None and "cannot represent" in row["grid"]["note"]
    assert row["binds"] == "availability"
    offer.write([row], tmp_path, "DR-L", 0.9)  # the table, csv and plot take it
