"""Reasons you can defend (issue 24): a failed rule's cause comes from what the model knows, not from how often
rows were recorded, and names the link that matters most.

Properties (hypothesis) on the real co-simulation (small fleets, short events: each example is a few runs):
1. the same run recorded at any ``outputs.vehicle_sample_ms`` gives the same causes;
2. a fleet that runs out of energy fails on energy;
3. added network latency never moves the blame from the network to something else;
4. a fleet that responds late never gets "too fast";
and on the blame itself (any links): the named link is the one whose removal helps most.
"""

import json
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import make_scenario, run_file
from v2g_testbed.analysis.causes import LimitEvents, blame, ran_out

PROPERTY = settings(max_examples=int(os.environ.get("V2G_PROPERTY_EXAMPLES", 6)), deadline=None, derandomize=True)


def causes(out) -> dict:
    verdicts = json.loads((out / "verdicts.json").read_text())
    return {(v["service"], name): (rule.get("cause"), rule.get("because")) for v in verdicts["services"]
            for name, rule in v.get("rules", {}).items() if not rule["passed"]}


def ideal(t_a=0.2, ramp=30.0, battery=60.0, t_c=0.05, **extra):
    return {"model": {"model": "Ideal", "battery_kwh": battery, "t_a_s": t_a, "t_b_s": 10 / ramp, "t_c_s": t_c,
                      "t_d_s": 10 / ramp, "ramp_up_kw_per_s": ramp, "ramp_down_kw_per_s": ramp},
            "count": 120, "charger_kw": 10, "bus": "Bus 5", **extra}


# 1 and 2: the case of the issue (1 kWh batteries at SoC 0.25, reserve 0.2, DC-L on a 30 s step): energy runs
# out, and the cause says so at every recording interval
@given(battery=st.sampled_from([1.0, 1.5]), soc=st.floats(0.22, 0.3), sample=st.sampled_from([10, 100, 500]))
@PROPERTY
def test_a_fleet_that_runs_out_of_energy_fails_on_energy_at_any_recording_interval(tmp_path_factory, battery, soc,
                                                                                  sample):
    tmp = tmp_path_factory.mktemp("energy")
    path = make_scenario(tmp, duration_s=31, fleet={"assume_v2g": True, "groups": [
        ideal(battery=battery, soc=soc, soc_min=0.2)]}, services=[{"id": "DC-L", "contracted_mw": 1.0}],
        outputs={"sample_ms": 10, "vehicle_sample_ms": sample, "plots": False})
    run_file(path, tmp / "a")
    run_file(path, tmp / "b", overrides=["outputs.vehicle_sample_ms=10"])
    found = causes(tmp / "a")
    assert found == causes(tmp / "b")  # the same causes, recorded every 10 ms or every `sample` ms
    assert found, "a fleet of near-empty 1 kWh batteries must fail something on a 30 s DC step"
    energy_rules = {rule for (_, rule), (cause, _) in found.items() if cause == "energy/SoC"}
    assert "duration" in energy_rules, found
    assert not any(cause == "tracking" for cause, _ in found.values()), found


# 3: latency added to the network never moves the blame away from the network
@given(extra_ms=st.integers(100, 2000), seed=st.integers(0, 50))
@PROPERTY
def test_added_network_latency_never_moves_the_blame_from_the_network(tmp_path_factory, extra_ms, seed):
    tmp = tmp_path_factory.mktemp("latency")
    profile = {"description": "slow link", "measurement_delay_ms": 100, "dispatch_interval_ms": 100, "hops": [
        {"name": "wan", "latency_ms": {"median": 300, "p95": 400}}]}
    path = make_scenario(tmp, seed=seed, fleet={"assume_v2g": True, "groups": [ideal(t_a=0.1, ramp=100.0)]},
                         network={"profile": profile}, services=[{"id": "DC-L", "contracted_mw": 1.0}])
    run_file(path, tmp / "a")
    slower = {**profile, "hops": [{**profile["hops"][0], "latency_ms": {
        k: v + extra_ms for k, v in profile["hops"][0]["latency_ms"].items()}}]}  # every message later
    run_file(path, tmp / "b", overrides=[f"network.profile={json.dumps(slower)}"])
    before, after = causes(tmp / "a"), causes(tmp / "b")
    for key, (cause, _) in before.items():
        if cause == "network latency" and key in after:
            assert after[key][0] == "network latency", (key, before[key], after[key])


# 4: a late fleet is never "too fast" (the issue's LEAF-like fleet with 1.5 s delays)
@given(t_a=st.floats(0.7, 2.5), ramp=st.floats(5.0, 40.0), hold=st.sampled_from([0.5, 1.0, 2.0, 4.0]))
@PROPERTY
def test_a_fleet_that_responds_late_never_gets_too_fast(tmp_path_factory, t_a, ramp, hold):
    tmp = tmp_path_factory.mktemp("late")
    path = make_scenario(tmp, fleet={"assume_v2g": True, "groups": [ideal(t_a=t_a, ramp=ramp)]},
                         frequency={"events": [{"type": "step", "at_s": 1, "to_hz": 49.5, "hold_s": hold}]},
                         services=[{"id": "DC-L", "contracted_mw": 1.0}])
    run_file(path, tmp / "a")
    found = causes(tmp / "a")
    assert found, "a fleet 0.7 s or more late fails DC"
    assert not any(cause == "too fast" for cause, _ in found.values()), found


def test_the_late_withdrawal_of_the_issue_is_named_so(tmp_path):
    """Chargers that start in time but stop 1.5 s after they are told to: still delivering after the frequency
    recovered, above the envelope's upper bound, is a late withdrawal, not "too fast"."""
    path = make_scenario(tmp_path, fleet={"assume_v2g": True, "groups": [ideal(t_a=0.3, ramp=40.0, t_c=1.5)]},
                         frequency={"events": [{"type": "step", "at_s": 1, "to_hz": 49.5, "hold_s": 2.0}]},
                         services=[{"id": "DC-L", "contracted_mw": 1.0}])
    run_file(path, tmp_path / "a")
    verdicts = json.loads((tmp_path / "a" / "verdicts.json").read_text())
    envelope = verdicts["services"][0]["rules"]["envelope"]
    found = verdicts["services"][0]["envelope"]
    assert found["too_fast"] and found["requirement_falling"], found
    assert envelope["cause"] == "late withdrawal" and "withdrew late" in envelope["because"], envelope


# the blame over any links: the link named is the one whose removal helps most; every link alone past the
# allowance is listed; more of one link never moves the blame away from it
@given(data=st.data(), which=st.sampled_from(["first", "last"]), n=st.integers(1, 30))
@settings(max_examples=200, deadline=None, derandomize=True)
def test_the_named_link_is_the_one_whose_removal_helps_most(data, which, n):
    names = ("measurement", "network latency", "start delay", "ramp")
    links = {name: np.array(data.draw(st.lists(st.floats(0, 20, allow_nan=False), min_size=n, max_size=n)))
             for name in names}
    allowance = data.draw(st.floats(0.1, 10))
    pick = np.min if which == "first" else np.max
    b = blame(links, which, names, allowance)
    total = sum(links.values())
    assert b["time_s"] == pytest.approx(float(pick(total)))
    gains = {name: float(pick(total)) - float(pick(total - links[name])) for name in names}
    assert gains[b["largest"]] == pytest.approx(max(gains.values()))
    assert set(b["alone"]) == {name for name in names if float(pick(links[name])) > allowance + 1e-9}
    more = dict(links, **{b["largest"]: links[b["largest"]] + data.draw(st.floats(0, 5))})
    again = blame(more, which, names, allowance)
    assert gains_of(more, which)[again["largest"]] >= gains_of(more, which)[b["largest"]] - 1e-9
    assert again["largest"] == b["largest"] or gains_of(more, which)[again["largest"]] == pytest.approx(
        gains_of(more, which)[b["largest"]])


def gains_of(links, which):
    pick = np.min if which == "first" else np.max
    total = sum(links.values())
    return {name: float(pick(total)) - float(pick(total - part)) for name, part in links.items()}


def test_limit_events_give_the_state_at_any_moment():
    events = LimitEvents({"time_ms": [500, 100, 900], "vehicle": [1, 0, 1], "limit": [-1, 1, 0]}, 3)
    assert events.state(50).tolist() == [0, 0, 0]
    assert events.state(100).tolist() == [1, 0, 0]
    assert events.state(600).tolist() == [1, -1, 0]
    assert events.state(900).tolist() == [1, 0, 0]  # vehicle 1 left its reserve at 900 ms
    low = {"direction": "low"}
    vehicles = {"arrival_ms": [0, 0, 0], "departure_ms": [np.inf, np.inf, 700.0], "plugged": [1, 1, 1]}
    assert ran_out(low, 600, events, vehicles) == (1, 0)
    assert ran_out(low, 800, events, vehicles) == (1, 1)


# every number a rule judges with says what it rests on; an assumption that decides the verdict says so
QUICK = ("fleet.groups=[{model: {model: Quick, battery_kwh: 60, t_a_s: 0.05, t_b_s: 0.0001, t_c_s: 0.05, "
         "t_d_s: 0.0001, ramp_up_kw_per_s: 100000, ramp_down_kw_per_s: 100000}, count: 200, charger_kw: 10, "
         "bus: Bus 5, soc: 0.8}]")


def test_a_verdict_decided_by_an_assumption_says_so_and_the_assumption_is_one_set_away(tmp_path):
    from conftest import ROOT
    from v2g_testbed.analysis.table import verdict_table

    scenario = ROOT / "scenarios" / "gb-2019-08-09-dc.yaml"
    overrides = [QUICK, "duration_s=40", "outputs.plots=false"]
    dc = run_file(scenario, tmp_path / "a", overrides)["services"][0]
    envelope = dc["rules"]["envelope"]
    assert 0.02 < envelope["value"] <= 0.05 and not dc["eligible"]  # too fast by an error the tolerance decides
    tolerance = envelope["parameters"]["envelope.tolerance_pu"]
    assert tolerance["status"] == "assumption" and tolerance["range"] == [0.02, 0.05]
    assert envelope["parameters"]["envelope.window_s"]["status"] == "unverified"
    assert [d["parameter"] for d in dc["decided_by"]] == ["envelope.tolerance_pu"]
    assert dc["decided_by"][0]["eligible_at"] == {"0.02": False, "0.05": True}
    assert any("decided by an assumption: envelope.tolerance_pu" in n for n in dc["notes"])
    assert "NOT ELIGIBLE*" in verdict_table({"services": [dc]})
    again = run_file(scenario, tmp_path / "b", [*overrides, "services.0.assume.envelope.tolerance_pu=0.05"])
    assert again["services"][0]["eligible"] is True


def test_every_judging_parameter_of_every_service_has_a_status():
    from v2g_testbed.analysis.parameters import RULE_PARAMETERS, status_of, value_of
    from v2g_testbed.sims import catalog

    sources = catalog.sources()
    for sid, service in catalog.services().items():
        for name in {n for names in RULE_PARAMETERS.values() for n in names}:
            if value_of(service, name) is None:
                continue
            status = status_of(service, name)
            assert status["status"] in ("source", "unverified", "assumption"), (sid, name)
            if status["status"] == "assumption":
                assert status.get("why"), (sid, name)
            else:
                assert all(k in sources for k in status["source"].split(",")), (sid, name, status)
    fcr = catalog.services()["FCR-L"]
    assert status_of(fcr, "partial_delivery")["source"] == "fcr_prequal"  # not SO GL Annex V
    assert "50 %" not in sources["sogl_annex5"].split("(")[0]


def test_nordic_ffr_support_is_held_30_s_whatever_the_frequency_does(tmp_path):
    """Fingrid: the minimum duration of activation is 30 s (5 s only with withdrawal at <= 20 %/s): the aggregator
    holds the full response 30 s from activation though the frequency recovers after 3 s, and the verdict asks
    for it that long."""
    from conftest import vehicle_power

    path = make_scenario(tmp_path, duration_s=40, fleet={"assume_v2g": True, "telemetry_hz": 10,
                                                         "groups": [ideal(t_a=0.2, ramp=100.0)]},
                         frequency={"events": [{"type": "step", "at_s": 1, "to_hz": 49.6, "hold_s": 3}]},
                         services=[{"id": "FFR497-L", "contracted_mw": 1.0}])
    entry = run_file(path, tmp_path / "a")["services"][0]
    assert entry["eligible"], entry["failed"]
    assert entry["event_end_s"] >= 1 + 30 - 0.02  # the event lasts as long as the support must be held (from 1 s)
    t, p = vehicle_power(tmp_path / "a")
    total = p.sum(axis=1)
    held = (t >= 2_000) & (t <= 1_000 + 100 + 30_000 - 100)  # measured 0.1 s late, held 30 s from then
    assert np.all(total[held] <= -990), "the fleet withdrew before the support duration"
    assert np.all(total[t >= 1_000 + 100 + 30_000 + 300] > -10)  # then it withdrew
    assert entry["rules"]["duration"]["parameters"]["support"]["status"] == "source"


def test_nordic_ffr_short_option_withdraws_slowly_and_reactivation_needs_vehicles_still_there(tmp_path):
    """Fingrid: 5 s of support suffice when the power is then withdrawn at no more than 20 % of the capacity a
    second, and a unit must be able to activate again within 15 min. The aggregator following the short option
    holds 5 s and withdraws at 0.2 pu/s (eligible on timing and duration); the same record judged against the
    long option (30 s) fails its duration as an early withdrawal; vehicles that leave 10 min after the event
    cannot reactivate at 15 min."""
    from conftest import vehicle_power
    from v2g_testbed.analysis import verdict
    from v2g_testbed.cosim import scenario
    from v2g_testbed.sims import catalog

    path = make_scenario(tmp_path, duration_s=16, fleet={"assume_v2g": True, "telemetry_hz": 10, "groups": [
        ideal(t_a=0.2, ramp=100.0, departure_s=600)]},
        frequency={"events": [{"type": "step", "at_s": 1, "to_hz": 49.6, "hold_s": 3}]},
        services=[{"id": "FFR497-L", "contracted_mw": 1.0, "support": "short"}])
    entry = run_file(path, tmp_path / "a")["services"][0]
    rules = entry["rules"]
    assert rules["full_delivery"]["passed"] and rules["duration"]["passed"], rules
    assert rules["duration"]["limit"] == pytest.approx(5 / 60)
    t, p = vehicle_power(tmp_path / "a")
    total = -p.sum(axis=1) / 1000.0  # MW of response (the fleet was idle before)
    held = (t >= 2_000) & (t <= 6_000)
    assert np.all(total[held] >= 0.99), "the short option still holds 5 s"
    # the aggregator lowers it in 0.02 pu steps every 0.1 s: over any second it falls by at most 0.2 pu (+ a step)
    later = np.interp(t + 1_000, t, total)
    assert np.max((total - later)[t <= t[-1] - 1_000]) <= 0.2 + 0.02 + 1e-6, "withdrawn faster than 20 %/s"
    assert total[t >= 12_500].max() < 0.01, "and withdrawn in the end"
    # reactivation: 15 min after the support ended every vehicle has left (at 600 s)
    assert "reactivation" in entry["failed"] and rules["reactivation"]["cause"] == "vehicles leaving"
    assert rules["reactivation"]["value"] == 0.0 and rules["reactivation"]["parameters"]["support"]["status"] == "source"
    # the same record, judged against the long option: the support was withdrawn before its 30 s
    loaded = scenario.load(path, ["services[0].support=long"])
    long = loaded.services
    assert long[0]["support"]["option"] == "long"
    judged = verdict.evaluate(tmp_path / "a" / "timeseries.h5", long, catalog.nominal_hz(),
                              catalog.initiation_threshold_pu(), 10.0)["services"][0]
    assert not judged["rules"]["duration"]["passed"]
    assert judged["rules"]["duration"]["cause"] == "early withdrawal", judged["rules"]["duration"]


def test_a_support_option_the_service_lacks_is_refused_naming_the_field(tmp_path):
    from v2g_testbed.cosim import scenario

    for service, words in ((("FFR497-L", "sometimes"), "not an option of FFR497-L"),
                           (("DC-L", "short"), "has no support to hold")):
        path = make_scenario(tmp_path, services=[{"id": service[0], "contracted_mw": 1.0, "support": service[1]}])
        with pytest.raises(scenario.ScenarioError, match=r"services\[0\]\.support") as err:
            scenario.load(path)
        assert words in str(err.value)
