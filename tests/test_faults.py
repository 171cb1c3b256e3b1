"""Network faults in the co-simulation: outages, burst loss, silent chargers."""

from v2g_testbed.analysis.timeseries import RunRecord
import numpy as np
import pytest

from conftest import run_file, vehicle_power
from v2g_testbed.cosim.scenario import ScenarioError, load

FLEET = [{"model": "Nissan Ariya", "count": 20, "charger_kw": 10, "bus": "Bus 5"}]


def test_cell_outage_during_the_event(scenario_file, tmp_path):
    """Cell 1 (chargers 10-19) is down from before the event to the end of the run: those vehicles
    never respond, their setpoints are recorded as lost to the outage, the verdict says why."""
    path = scenario_file(
        duration_s=12, fleet__groups=FLEET, fleet__telemetry_hz=20,
        network={"profile": "4g", "chargers_per_cell": 10,
                 "faults": [{"kind": "outage", "hop": "lte_downlink", "cell": 1, "from_s": 0.5}]},
        services=[{"id": "DR-L", "contracted_mw": 0.2}])
    out = tmp_path / "out"
    verdicts = run_file(path, out)
    _, p = vehicle_power(out)
    assert np.all(p[:, 10:] == 0.0)
    assert np.all(p[-1, :10] < 0)
    net = verdicts["network"]
    assert net["lost_by_cause"] == {"outage": 10} and net["vehicles_not_reached"] == 10
    service = verdicts["services"][0]
    assert "full_delivery" in service["failed"]
    assert any("10 by outage" in note for note in service["notes"])
    assert service["rules"]["full_delivery"]["cause"] == "loss/outage"
    with RunRecord.open(out / "timeseries.h5") as rec:
        lost = rec.table("lost")
    assert set(lost["vehicle"]) == set(range(10, 20))
    assert set(lost["cause"].astype(str)) == {"outage"}
    assert set(lost["retries"]) == {3}  # the profile's max_retries, each timed out


def test_backend_outage_that_ends_delays_instead_of_losing(scenario_file, tmp_path):
    path = scenario_file(
        duration_s=12, fleet__groups=FLEET,
        network={"profile": "5g", "faults": [{"kind": "outage", "hop": "ocpp_backend", "from_s": 0, "to_s": 2.5}]})
    out = tmp_path / "out"
    verdicts = run_file(path, out)
    assert verdicts["network"]["messages_lost"] == 0
    with RunRecord.open(out / "timeseries.h5") as rec:
        delivered = rec.table("delivered")
    arrived, retries = delivered["time_ms"], delivered["retries"]
    assert arrived.min() > 2500 and retries.min() >= 1  # first attempts fell in the outage


def test_silent_chargers_are_drawn_with_the_seed(scenario_file, tmp_path):
    path = scenario_file(fleet__groups=FLEET, network={"profile": "fibre", "faults": [
        {"kind": "silent_chargers", "count": 4, "from_s": 0}]})
    a = run_file(path, tmp_path / "a")["network"]
    b = run_file(path, tmp_path / "b")["network"]
    assert a == b and a["lost_by_cause"] == {"silent": 4} and a["messages_delivered"] == 16


def test_burst_loss_raises_retries(scenario_file, tmp_path):
    calm = run_file(scenario_file(fleet__groups=FLEET, network={"profile": "fibre"}), tmp_path / "calm")
    burst = run_file(scenario_file(fleet__groups=FLEET, network={"profile": "fibre", "faults": [
        {"kind": "burst_loss", "hop": "internet", "loss_probability": 0.5, "from_s": 0}]}), tmp_path / "burst")
    assert calm["network"]["retries"] == 0
    assert burst["network"]["retries"] >= 5


@pytest.mark.parametrize("network, field, words", [
    ({"profile": "local", "faults": [{"kind": "outage", "hop": "x", "from_s": 0}]}, "network.faults[0]",
     "local profile has no network"),
    ({"profile": "4g", "faults": [{"kind": "outage", "hop": "wifi", "from_s": 0}]}, "network.faults[0].hop",
     "no hop 'wifi'"),
    ({"profile": "4g", "faults": [{"kind": "outage", "hop": "lte_downlink", "cell": 3, "from_s": 0}]},
     "network.faults[0].cell", "no cell 3"),
    ({"profile": "4g", "faults": [{"kind": "burst_loss", "hop": "lte_downlink", "from_s": 0}]},
     "network.faults[0]", "needs loss_probability"),
    ({"profile": {"measurement_delay_ms": 50, "hops": [{"name": "r", "radio": True,
                                                        "latency_ms": {"median": 5, "p95": 9}}]}},
     "network.profile", "radio hop needs promotion_ms"),
])
def test_bad_network_settings_are_one_line_errors(scenario_file, network, field, words):
    with pytest.raises(ScenarioError) as err:
        load(scenario_file(fleet__groups=FLEET, network=network))
    assert field in str(err.value) and words in str(err.value) and "\n" not in str(err.value)


def test_inline_profile_runs(scenario_file, tmp_path):
    profile = {"measurement_delay_ms": 20, "hops": [{"name": "lan", "latency_ms": {"median": 30, "p95": 30.001}}]}
    verdicts = run_file(scenario_file(fleet__groups=FLEET[:1], network={"profile": profile}), tmp_path / "out")
    assert verdicts["network"]["latency_s"]["median"] == pytest.approx(0.03, abs=0.001)


def test_telemetry_uplink_carries_reports_and_keeps_modems_awake(scenario_file, tmp_path):
    """Reports every second from each charger travel up the same network; a modem kept busy by its
    reports is connected when the setpoint comes, so the setpoint skips the promotion delay."""
    base = dict(duration_s=6, fleet__groups=FLEET, fleet__telemetry_hz=20)
    quiet = run_file(scenario_file(**base, network={"profile": "4g"}), tmp_path / "quiet")["network"]
    busy_out = tmp_path / "busy"
    busy = run_file(scenario_file(**base, network={"profile": "4g", "report_interval_s": 1.0}), busy_out)["network"]
    assert quiet["telemetry"] is None
    assert 20 * 5 <= busy["telemetry"]["reports_delivered"] <= 20 * 6  # 20 chargers, every second, 6 s
    assert busy["telemetry"]["latency_s"]["median"] > 0
    assert busy["latency_s"]["median"] < quiet["latency_s"]["median"] - 0.2
    with RunRecord.open(busy_out / "timeseries.h5") as rec:
        reports = rec.table("telemetry_delivered")
    reported, metered = reports["vehicle"], reports["metered_ms"]
    assert set(reported) == set(range(20))
    assert len(set(metered[reported == 0])) >= 5  # one report a second from charger 0


def test_outage_also_stops_reports(scenario_file, tmp_path):
    verdicts = run_file(scenario_file(duration_s=6, fleet__groups=FLEET, network={
        "profile": "4g", "chargers_per_cell": 10, "report_interval_s": 1.0,
        "faults": [{"kind": "outage", "hop": "lte_downlink", "cell": 1, "from_s": 0}]}), tmp_path / "o")
    telemetry = verdicts["network"]["telemetry"]
    assert telemetry["reports_lost"] > 0 and telemetry["reports_delivered"] > 0
