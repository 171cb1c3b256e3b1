"""Fleet behaviour through the co-simulation: energy, V1G headroom, spread."""

import numpy as np
import pytest

from conftest import run_file, vehicle_power
from v2g_testbed.sims import catalog
from v2g_testbed.sims.fleet import sample_vehicles


def group(**over):
    g = dict(catalog.fleet_defaults(), vehicle=catalog.builtin_vehicles()["VW ID.3 Pro"], count=10_000,
             charger_kw=10.0, bus="b")
    g.update(over)
    return g


def test_spread_has_configured_mean_and_cv_and_is_reproducible():
    v = catalog.builtin_vehicles()["VW ID.3 Pro"]
    a = sample_vehicles([group()], 20.0, np.random.default_rng(1))
    b = sample_vehicles([group()], 20.0, np.random.default_rng(1))
    assert a == b
    ramp = np.array(a["ramp_up_kw_per_s"])
    t_a = np.array(a["start_delay_ms"]) / 1000
    # n = 10,000, cv 0.2: standard error of the mean 0.2 %, of the cv ~1.5 % relative
    assert ramp.mean() == pytest.approx(v.ramp_up_kw_per_s, rel=0.01)
    assert ramp.std() / ramp.mean() == pytest.approx(0.20, rel=0.05)
    assert t_a.mean() == pytest.approx(v.t_a_s, rel=0.01)
    zero = sample_vehicles([group(count=5)], 0.0, np.random.default_rng(1))
    assert zero["ramp_up_kw_per_s"] == [v.ramp_up_kw_per_s] * 5


@pytest.mark.parametrize("distribution", ["lognormal", "normal", "uniform"])
def test_each_spread_distribution_keeps_mean_and_cv(distribution):
    v = catalog.builtin_vehicles()["Tesla Model 3 LR dual motor"]
    out = sample_vehicles([group(vehicle=v)], 15.0, np.random.default_rng(4), distribution)
    ramp = np.array(out["ramp_up_kw_per_s"])
    assert ramp.mean() == pytest.approx(v.ramp_up_kw_per_s, rel=0.01)
    assert ramp.std() / ramp.mean() == pytest.approx(0.15, rel=0.05)
    assert ramp.min() > 0
    if distribution == "uniform":
        assert ramp.max() <= v.ramp_up_kw_per_s * (1 + 0.15 * np.sqrt(3))


def test_plugged_in_fraction_is_exact_per_group():
    out = sample_vehicles([group(count=1000, plugged_in_fraction=0.7)], 0.0, np.random.default_rng(2))
    assert sum(out["plugged"]) == 700


@pytest.mark.parametrize("soc, passes", [(0.25, False), (0.9, True)])
def test_low_soc_fleet_fails_duration_of_a_30_minute_service(scenario_file, tmp_path, soc, passes):
    """10 ID.3 (58 kWh) exporting 10 kW each for DM-L (30 min): from 25 % SoC with 20 % reserved
    there are 2.7 kWh each at the grid side, 16 minutes; from 90 %, hours. The fleet holds a little
    longer than that from t_event: it uses no energy until it starts (0.1 s measurement + t_a 2.54 s)
    and half the power while it ramps (10 kW at 10.03 kW/s)."""
    path = scenario_file(
        fleet__groups=[{"model": "VW ID.3 Pro", "count": 10, "charger_kw": 10, "bus": "Bus 5", "soc": soc}],
        services=[{"id": "DM-L", "contracted_mw": 0.1}])
    verdict = run_file(path, tmp_path / "out")["services"][0]
    rule = verdict["rules"]["duration"]
    assert rule["passed"] is passes
    assert ("duration" in verdict["failed"]) is not passes
    if not passes:
        idle_s = 0.1 + 2.54 + 0.5 * 10 / 10.03
        expected_min = (soc - 0.2) * 58 * 0.93 / 10 * 60 + idle_s / 60
        assert rule["value"] == pytest.approx(expected_min, abs=0.002)


def test_v1g_fleet_charging_at_half_power_offers_only_its_headroom(scenario_file, tmp_path):
    """Unidirectional chargers at 5 of 10 kW: DC-L can only stop charging (5 kW each)."""
    path = scenario_file(
        fleet__groups=[{"model": "Skoda Enyaq iV 60", "count": 4, "charger_kw": 10, "bus": "Bus 5",
                        "bidirectional": False, "baseline_kw": 5}],
        services=[{"id": "DC-L", "contracted_mw": 0.04}])
    out = tmp_path / "out"
    verdict = run_file(path, out)["services"][0]
    _, p = vehicle_power(out)
    assert verdict["available_mw"] == pytest.approx(0.02)
    assert "volume" in verdict["failed"]
    assert p.min() == pytest.approx(0.0)  # never exports
    assert p[-1] == pytest.approx([0.0] * 4)


def test_ac_limits_come_from_phases_current_and_the_onboard_charger():
    zoe = catalog.builtin_vehicles()["Renault Zoe 40"]  # measured 22.1 kW OBC
    leaf = catalog.builtin_vehicles()["Nissan LEAF e+"]  # measured 7.4 kW OBC
    out = sample_vehicles([group(vehicle=zoe, count=1, charger_kw=22, connection="ac", phases=3, max_current_a=16),
                           group(vehicle=leaf, count=1, charger_kw=22, connection="ac", phases=3),
                           group(vehicle=leaf, count=1, charger_kw=22, connection="dc")], 0.0, np.random.default_rng(0))
    assert out["p_max_kw"][0] == pytest.approx(3 * 230 * 16 / 1000)  # the 16 A circuit binds
    assert out["p_max_kw"][1] == pytest.approx(leaf.measured_rated_kw)  # the onboard charger binds
    assert out["p_max_kw"][2] == 22  # DC bypasses the onboard charger
    assert out["min_power_kw"][:2] == [pytest.approx(3 * 230 * 6 / 1000)] * 2 and out["min_power_kw"][2] == 0


def test_setpoints_below_the_6_a_minimum_round_to_zero_or_the_minimum():
    from v2g_testbed.sims.obc import ChargerFleet

    v = catalog.builtin_vehicles()["Skoda Enyaq iV 60"]
    params = sample_vehicles([group(vehicle=v, count=4, connection="ac", phases=1, baseline_kw=0)], 0.0,
                             np.random.default_rng(0))
    fleet = ChargerFleet(**params)
    fleet.command(0, [0, 1, 2, 3], [0.5, 1.0, 2.3, 3.0])  # 1-phase: 1.38 kW minimum, 0.23 kW steps
    fleet.advance(10_000)
    assert fleet.power_kw() == pytest.approx([0.0, 1.38, 2.3, 2.99])


def test_departure_mid_event_is_exact_and_fails_duration(scenario_file, tmp_path):
    """Half of a fast fleet leaves 4 s into a DR event: power falls from that moment and the verdict's
    duration rule says the response was not held."""
    path = scenario_file(
        duration_s=10,
        fleet__groups=[{"model": "Nissan Ariya", "count": 5, "charger_kw": 10, "bus": "Bus 5"},
                       {"model": "Nissan Ariya", "count": 5, "charger_kw": 10, "bus": "Bus 5", "departure_s": 5}],
        fleet__telemetry_hz=20, services=[{"id": "DR-L", "contracted_mw": 0.1}])
    out = tmp_path / "out"
    verdict = run_file(path, out)["services"][0]
    t, p = vehicle_power(out)
    leaving = p[:, 5:]
    full = (t >= 1000 + 100 + 500 + 10 / 6.59 * 1000 + 10) & (t <= 5000)  # at full power until they leave
    assert np.allclose(leaving[full], -10.0)
    assert np.all(leaving[t >= 5000 + 10 / 12.55 * 1000 + 100] == 0.0)  # ramped out at 12.55 kW/s
    assert verdict["rules"]["full_delivery"]["passed"]
    # (0.1 MW is below DR's 1 MW minimum volume; the envelope sees the response fall when they leave)
    assert verdict["failed"] == ["envelope", "volume", "duration"]
    assert [verdict["rules"][r]["cause"] for r in verdict["failed"]] == ["vehicles leaving", "contract", "vehicles leaving"]
    assert verdict["rules"]["duration"]["value"] == pytest.approx(4.0 / 60, abs=0.011 / 60)


@pytest.mark.parametrize("hz, passes", [(0.1, False), (1, False), (20, True)])
def test_metering_rule_against_the_service_rate(scenario_file, tmp_path, hz, passes):
    out = tmp_path / "out"
    verdict = run_file(scenario_file(fleet__telemetry_hz=hz, duration_s=21), out)["services"][0]
    assert verdict["rules"]["metering"]["passed"] is passes
    from v2g_testbed.analysis.timeseries import RunRecord

    with RunRecord.open(out / "timeseries.h5") as rec:
        steps = np.diff(rec.series("metered_power").time_ms)
    assert set(steps) == {round(1000 / hz)}


def test_late_arrival_is_idle_and_left_out_of_the_first_dispatch(scenario_file, tmp_path):
    path = scenario_file(
        fleet__groups=[{"model": "Nissan Ariya", "count": 2, "charger_kw": 10, "bus": "Bus 5"},
                       {"model": "Nissan Ariya", "count": 1, "charger_kw": 10, "bus": "Bus 5", "arrival_s": 3,
                        "baseline_kw": 7}],
        services=[{"id": "DC-L", "contracted_mw": 0.015}])
    out = tmp_path / "out"
    run_file(path, out)
    _, p = vehicle_power(out)
    assert np.all(p[:, 2] == 0.0)
    assert p[-1, :2] == pytest.approx([-7.5, -7.5])  # the two present share the whole 15 kW


def test_inline_vehicle_model_in_a_scenario(scenario_file, tmp_path):
    car = {"model": "Prototype", "battery_kwh": 50, "t_a_s": 0.2, "t_b_s": 1.0, "t_c_s": 0.05, "t_d_s": 0.1,
           "ramp_up_kw_per_s": 10, "ramp_down_kw_per_s": 100}
    path = scenario_file(fleet__groups=[{"model": car, "count": 1, "charger_kw": 10, "bus": "Bus 5"}],
                         fleet__telemetry_hz=20)
    out = tmp_path / "out"
    verdict = run_file(path, out)["services"][0]
    t, p = vehicle_power(out)
    assert t[np.flatnonzero(p[:, 0] < 0)[0]] == 1000 + 100 + 200 + 10
    assert verdict["initiation_s"] == pytest.approx(0.31, abs=0.011)
    bad = scenario_file(fleet__groups=[{"model": dict(car, ramp_up_kw_per_s=0), "count": 1, "charger_kw": 10,
                                        "bus": "Bus 5"}])
    from v2g_testbed.cosim.scenario import ScenarioError, load

    with pytest.raises(ScenarioError, match=r"fleet.groups.*ramp_up_kw_per_s must lie in \[0.001, 1e\+06\], got 0"):
        load(bad)
    typo = scenario_file(fleet__groups=[{"model": dict(car, ramp_up_kw_per_sec=5), "count": 1, "charger_kw": 10,
                                         "bus": "Bus 5"}])
    with pytest.raises(ScenarioError, match=r"ramp_up_kw_per_sec"):  # a misspelt field is refused, not ignored
        load(typo)


def test_dispatch_skips_vehicles_at_their_reserved_soc(scenario_file, tmp_path):
    """Two cars at their 20 % reserve and two at 80 %: DC-L is shared among the two that may export."""
    path = scenario_file(
        fleet__groups=[{"model": "Nissan Ariya", "count": 2, "charger_kw": 10, "bus": "Bus 5", "soc": 0.2},
                       {"model": "Nissan Ariya", "count": 2, "charger_kw": 10, "bus": "Bus 5", "soc": 0.8}],
        services=[{"id": "DC-L", "contracted_mw": 0.016}])
    out = tmp_path / "out"
    verdict = run_file(path, out)["services"][0]
    _, p = vehicle_power(out)
    assert p[-1] == pytest.approx([0.0, 0.0, -8.0, -8.0])
    assert verdict["available_mw"] == pytest.approx(0.02)



def test_meter_reports_are_read_when_sent_at_the_fleets_steps():
    """A charger reads its meter when it sends: each report goes at the fleet's first step at or after its slot,
    stamped with that step, with the charger's power then, from the chargers plugged in then, so its latency up
    is the network's alone. (Reports used to be stamped with their slot though they left at the step, up to a step
    later: the uplink latency counted the fleet's wait for its step.)"""
    from v2g_testbed.sims.fleet import FleetSim, fleet_parameters
    from v2g_testbed.sims.obc import OPTIONAL_PARAMETERS, PARAMETERS, ChargerFleet

    params = fleet_parameters([{"model": "Nissan Ariya", "count": 4, "charger_kw": 10, "bus": "b"}], assume_v2g=True)
    params["departure_ms"] = [None, None, None, 1450.0]  # charger 3's report due at 1437 ms would go at 1500: gone
    sim = FleetSim()
    sim.init("F", step_ms=100, sample_ms=10, report_ms=250)  # due at 0, 62, 125, 187 ms past each 250 ms
    sim.create(1, "Fleet", vehicles=params)
    order = {"vehicle": [0, 1, 2, 3], "kw": [-10.0] * 4, "time_ms": [0] * 4}
    reports = []
    for t in range(0, 3000, 100):
        sim.step(t, {"fleet": {"setpoints": {"agg": order}}} if t == 0 else {}, 10**9)
        got = sim.get_data({"fleet": ["reports"]})["fleet"].get("reports")
        if got:
            reports += list(zip(got["time_ms"], got["vehicle"], got["kw"]))
    sent = sorted((-(-s // 100) * 100, v) for v, offset in enumerate((0, 62, 125, 187))
                  for s in range(offset, 2901, 250) if -(-s // 100) * 100 <= 2900)
    assert [(t, v) for t, v, _ in reports] == [(t, v) for t, v in sent if not (v == 3 and t >= 1450)]
    reference = ChargerFleet(**{k: v for k, v in params.items() if k in PARAMETERS or k in OPTIONAL_PARAMETERS})
    reference.command(0, [0, 1, 2, 3], [-10.0] * 4)
    ramping = 0
    for t, vehicle, kw in reports:
        reference.advance(t)
        assert kw == pytest.approx(reference.power_kw()[vehicle], abs=1e-9), (t, vehicle)
        ramping += -10.0 < kw < 0.0
    assert ramping >= 4  # reports went during the ramp (500 ms start delay, then ~1.5 s to -10 kW)


def test_setpoints_received_ahead_are_applied_at_their_own_times():
    """An aggregator with no network leg runs ahead and sends setpoints stamped with later times: the fleet holds
    them until a step reaches them and applies each at its own time, so its samples and rows are those of a fleet
    stepped at every setpoint's time (including one after the last row, before the run's end)."""
    from v2g_testbed.sims.fleet import FleetSim, fleet_parameters

    params = fleet_parameters([{"model": "Nissan Ariya", "count": 5, "charger_kw": 10, "bus": "b"}], assume_v2g=True)
    orders = [(0, [-4.0] * 5), (250, [-9.0] * 5), (730, [3.0, -3.0, 0.0, 6.0, -6.0]), (1310, [-10.0] * 5),
              (2470, [2.0] * 5), (2950, [-5.0] * 5)]
    outputs = ("p_kw", "metered_p_kw", "vehicle_p_kw", "vehicle_soc")

    def run(ahead: bool) -> dict:
        sim = FleetSim()
        sim.init("F", step_ms=100, sample_ms=10, telemetry_ms=50, stride_ms=1000, until_ms=3000, record_ms=1000)
        sim.create(1, "Fleet", vehicles=params)
        got, t, seq = {name: {} for name in outputs}, 0, 0
        pending = [] if ahead else list(orders)
        while t is not None and t < 3000:
            if ahead and t == 0:
                sent = [(at, kw) for at, kw in orders]
            else:
                sent = [(at, kw) for at, kw in pending if at == t]
            message = {"vehicle": [], "kw": [], "time_ms": [], "seq": []}
            for at, kw in sent:
                seq += 1
                message["vehicle"] += list(range(5))
                message["kw"] += kw
                message["time_ms"] += [at] * 5
                message["seq"] += [seq] * 5
            nxt = sim.step(t, {"fleet": {"setpoints": {"agg": message}}} if sent else {}, 10**9)
            data = sim.get_data({"fleet": list(outputs)})["fleet"]
            for name in outputs:
                block = data.get(name) or {"time_ms": [], "value": []}
                got[name].update(zip(block["time_ms"], (np.asarray(v).tolist() for v in block["value"])))
            later = [at for at, _ in pending if at > t]
            t = min([nxt, *later]) if not ahead else nxt
        return got

    stepped, ahead = run(False), run(True)
    assert max(stepped["p_kw"]) == 2950  # the last setpoint's step took the samples up to it
    assert ahead == stepped
