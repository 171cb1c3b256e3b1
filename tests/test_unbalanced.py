"""Single-phase chargers and the unbalanced (three-phase) power flow, against answers known by hand.

The hand network: an (almost) ideal 0.4 kV source and one resistive line of R1 = 0.07 ohm (positive
and negative sequence) and R0 = 0.25 ohm (zero sequence, the return through the neutral). A load of
current I on phase a alone drives I/3 through each sequence network, so phase a drops by
I (R0 + 2 R1) / 3, five and a half times what the same power drawn evenly from all three phases
(I/3 per phase through R1) would cost; the negative-sequence voltage is R1 I / 3.
"""

import json
import math

import numpy as np
import pandapower as pp
import pytest
import yaml

from conftest import BASE, ROOT, run_file, v2g_cli
from v2g_testbed.cosim import scenario
from v2g_testbed.cosim.scenario import ScenarioError
from v2g_testbed.sims.fleet import FleetSim, sample_vehicles

R1, R0 = 0.07, 0.25
E = 400 / math.sqrt(3)  # phase voltage of the source, V
R_SINGLE = (R0 + 2 * R1) / 3  # ohm seen by a phase-a current


def four_wire_feeder(path):
    net = pp.create_empty_network()
    b0 = pp.create_bus(net, vn_kv=0.4, name="busbar")
    b1 = pp.create_bus(net, vn_kv=0.4, name="end")
    pp.create_ext_grid(net, b0, vm_pu=1.0, s_sc_max_mva=1e5, rx_max=0.1, x0x_max=1.0, r0x0_max=0.1)
    pp.create_line_from_parameters(net, b0, b1, length_km=0.1, r_ohm_per_km=R1 / 0.1, x_ohm_per_km=1e-6,
                                   c_nf_per_km=0.0, max_i_ka=10.0, name="the line", r0_ohm_per_km=R0 / 0.1,
                                   x0_ohm_per_km=1e-6, c0_nf_per_km=0.0)
    pp.to_json(net, str(path))


def home_group(**changes):
    return dict({"model": "Nissan Ariya", "count": 1, "charger_kw": 3.0, "bus": "end", "connection": "ac",
                 "phases": 1, "phase": "a", "bidirectional": False}, **changes)


def hosting(tmp_path, group, limits=None, grid=None):
    four_wire_feeder(tmp_path / "feeder.json")
    data = dict(BASE, name="hc", grid=dict({"network": "feeder.json", "limits": limits or {}}, **(grid or {})),
                fleet={"assume_v2g": True, "groups": [group]})
    (tmp_path / "hc.yaml").write_text(yaml.safe_dump(data))
    result = v2g_cli("hosting-capacity", str(tmp_path / "hc.yaml"), "--placements", "2", "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    (fd,) = json.loads((tmp_path / "out" / "hosting_capacity.json").read_text())["feeders"]
    return fd, result.stdout


def test_single_phase_voltage_limit_by_hand(tmp_path):
    """Phase a at 0.9 pu carries V (E - V) / R_SINGLE = 0.09 E^2 / 0.13 = 36.9 kW: twelve 3 kW chargers."""
    fd, stdout = hosting(tmp_path, home_group(), limits={"unbalance_pct": 100})
    assert math.floor(0.09 * E * E / R_SINGLE / 3000) == 12
    assert fd["chargers_p5"] == fd["chargers_p95"] == 12
    assert fd["binding_limit"] == "voltage below" and fd["binding_element"] == "bus end phase a"
    assert "single-phase (a) chargers" in stdout and "unbalanced power flow" in stdout


def test_three_phase_chargers_take_five_and_a_half_times_more(tmp_path):
    """Spread evenly, each phase carries a third through R1 only: 3 x 0.09 E^2 / R1 = 205.7 kW, 68 chargers
    (in the same three-phase power flow; with nothing unbalanced, auto would choose a balanced one)."""
    fd, _ = hosting(tmp_path, home_group(phases=3), limits={"unbalance_pct": 100}, grid={"power_flow": "unbalanced"})
    assert math.floor(3 * 0.09 * E * E / R1 / 3000) == fd["chargers_p50"] == 68
    assert fd["binding_element"].startswith("bus end phase")


def test_voltage_unbalance_limit_by_hand(tmp_path):
    """Unbalance R1 I/3 / (E - R1 I/3) reaches 2 % at I = 0.06 E / (1.02 R1) = 194 A, which phase a
    carries with 13.3 chargers: thirteen fit (the voltage floor is lowered out of the way)."""
    current = 0.06 * E / (1.02 * R1)
    assert math.floor(current * (E - R_SINGLE * current) / 3000) == 13
    fd, _ = hosting(tmp_path, home_group(), limits={"v_min_pu": 0.8})
    assert fd["chargers_p50"] == 13 and fd["binding_limit"] == "voltage unbalance"


def test_a_balanced_power_flow_spreads_single_phase_chargers(tmp_path):
    """The same single-phase chargers in a balanced power flow count as three-phase ones: 68, not 12."""
    fd, stdout = hosting(tmp_path, home_group(), grid={"power_flow": "balanced"})
    assert fd["chargers_p50"] == 68
    assert "note: single-phase chargers spread evenly over the three phases" in stdout


def test_co_simulation_phase_voltages_by_hand(tmp_path):
    """Ten chargers drawing 3 kW each on phase a, solved inside the mosaik world: phase a, phase b and
    the unbalance at the end bus match the closed-form solution of the sequence networks."""
    four_wire_feeder(tmp_path / "feeder.json")
    data = dict(BASE, grid={"network": "feeder.json", "step_s": 1.0},
                fleet={"assume_v2g": True, "groups": [home_group(count=10, baseline_kw=3.0)]})
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(data))
    verdicts = run_file(tmp_path / "s.yaml", tmp_path / "out")
    assert verdicts["grid"]["power_flow"] == "unbalanced"
    v_a = (E + math.sqrt(E * E - 4 * 10 * 3000 * R_SINGLE)) / 2
    current = 30000 / v_a
    shift = current * (R0 - R1) / 3  # the neutral shift seen by phases b and c
    v_b = math.sqrt(E * E + E * shift + shift * shift)
    unbalance = (R1 * current / 3) / (E - R1 * current / 3) * 100
    from v2g_testbed.analysis.timeseries import RunRecord

    with RunRecord.open(tmp_path / "out" / "timeseries.h5") as rec:
        end = rec.labels("bus_names").index("end")
        assert rec.series("voltage_a").value[0, end] == pytest.approx(v_a / E, abs=2e-4)
        assert rec.series("voltage_b").value[0, end] == pytest.approx(v_b / E, abs=2e-4)
        assert rec.series("unbalance").value[0, end] == pytest.approx(unbalance, abs=0.01)
        assert not rec.has("voltage")


def test_phases_of_single_phase_chargers():
    from v2g_testbed.sims.catalog import builtin_vehicles

    ariya = builtin_vehicles()["Nissan Ariya"]
    defaults = yaml.safe_load((ROOT / "sims" / "data" / "fleet_defaults.yaml").read_text())

    def phases(**changes):
        group = dict(defaults, vehicle=ariya, count=6, charger_kw=7.4, bus=["h1", "h2"], **changes)
        return sample_vehicles([group], 0.0, np.random.default_rng(1),
                               load_phases={"h1": "c", "h2": "b"})["phase"]

    assert phases(connection="ac", phases=1, phase="round_robin") == ["a", "b", "c"] * 2
    assert phases(connection="ac", phases=1, phase="b") == ["b"] * 6
    assert phases(connection="ac", phases=1, phase="same_as_load") == ["c", "b"] * 3
    assert set(phases(connection="ac", phases=1, phase="random")) <= {"a", "b", "c"}
    assert phases(connection="ac", phases=3, phase="a") == ["abc"] * 6  # three-phase: the phase is moot
    assert phases(connection="dc", phase="a") == ["abc"] * 6


def test_fleet_splits_each_bus_over_the_phases():
    sim = FleetSim()
    sim.init("fleet", step_ms=100, sample_ms=10)
    n = 4
    vehicles = {"bus": ["x", "x", "x", "y"], "phase": ["a", "a", "abc", "c"], "start_delay_ms": [0] * n,
                "stop_delay_ms": [0] * n, "ramp_up_kw_per_s": [10.0] * n, "ramp_down_kw_per_s": [10.0] * n,
                "p_min_kw": [-6.0] * n, "p_max_kw": [6.0] * n, "baseline_kw": [3.0, 1.0, 6.0, -3.0],
                "capacity_kwh": [50.0] * n, "soc": [0.5] * n, "soc_min": [0.0] * n, "soc_max": [1.0] * n,
                "eta_charge": [1.0] * n, "eta_discharge": [1.0] * n, "plugged": [True] * n}
    sim.create(1, "Fleet", vehicles=vehicles)
    sim.step(0, {}, 100)
    attrs = ["p_kw", "p_a_kw", "p_b_kw", "p_c_kw"]
    data = sim.get_data({"x": attrs, "y": attrs})
    assert data["x"] == pytest.approx({"p_kw": 10.0, "p_a_kw": 6.0, "p_b_kw": 2.0, "p_c_kw": 2.0})
    assert data["y"] == pytest.approx({"p_kw": -3.0, "p_a_kw": 0.0, "p_b_kw": 0.0, "p_c_kw": -3.0})


def test_power_flow_choice_and_its_errors(tmp_path):
    def loaded(grid, group):
        (tmp_path / "s.yaml").write_text(yaml.safe_dump(dict(BASE, grid=grid, fleet={"assume_v2g": True, "groups": [group]})))
        one = scenario.load(tmp_path / "s.yaml")
        one.check_grid()
        return one

    # CIGRE LV has no zero-sequence data: auto falls back to balanced and says so
    cigre = loaded({"network": "cigre_lv"}, home_group(bus="Bus R11"))
    assert cigre.power_flow == "balanced" and "cigre_lv has no zero-sequence data" in cigre.power_flow_note
    with pytest.raises(ScenarioError, match=r"s\.yaml: grid\.power_flow: unbalanced needs zero-sequence data that "
                                            r"cigre_lv lacks \(line\.r0_ohm_per_km"):
        loaded({"network": "cigre_lv", "power_flow": "unbalanced"}, home_group(bus="Bus R11"))
    # the IEEE European LV feeder has it; auto picks unbalanced even for three-phase chargers, as its houses are not
    ieee = loaded({"network": "ieee_eu_lv"}, home_group(bus=34, phases=3))
    assert ieee.power_flow == "unbalanced" and ieee.power_flow_note is None
    with pytest.raises(ScenarioError, match=r"fleet\.groups\[0\]\.phase: same_as_load, but bus 1 has no "
                                            r"single-phase load \(buses with one: 34, 47"):
        loaded({"network": "ieee_eu_lv"}, home_group(bus=[34, 1], phase="same_as_load"))
    assert loaded({"network": "ieee_eu_lv"}, home_group(bus=[34, 47], phase="same_as_load")).load_phases == \
        {"34": "a", "47": "b"}


def test_phase_placement_alone_changes_the_verdict(shipped):
    """The shipped twins: wallboxes on their houses' phases pass; all on phase a break the feeder."""
    homes = shipped("lv-homes-fcrd")[1]
    one = shipped("lv-homes-fcrd-one-phase")[1]
    assert homes["services"][0]["eligible"] is True and homes["grid"]["power_flow"] == "unbalanced"
    assert one["services"][0]["failed"] == ["grid"]
    rule = one["services"][0]["rules"]["grid"]
    assert rule["worst"].endswith("phase a voltage") and rule["value"] > 1.2 and rule["margin"] < 0
    assert one["grid"]["max_unbalance_pct"] > 2 > homes["grid"]["max_unbalance_pct"]
    assert one["grid"]["max_line_loading_pct"] > 100


def test_a_balanced_study_misses_what_the_unbalanced_one_finds(tmp_path):
    """At 0.2 MW the balanced power flow keeps every bus below 1.10 pu; per phase, phase a goes above."""
    path = ROOT / "scenarios" / "lv-homes-fcrd.yaml"
    more = ["services[0].contracted_mw=0.2"]
    unbalanced = run_file(path, tmp_path / "u", more)["services"][0]
    balanced = run_file(path, tmp_path / "b", [*more, "grid.power_flow=balanced"])["services"][0]
    assert balanced["eligible"] is True and balanced["rules"]["grid"]["passed"] is True
    assert unbalanced["failed"] == ["grid"] and "phase" in unbalanced["rules"]["grid"]["worst"]


def test_every_load_bus_or_lv_bus(tmp_path):
    def group_buses(grid, bus):
        (tmp_path / "s.yaml").write_text(yaml.safe_dump(dict(BASE, grid=grid, fleet={"assume_v2g": True, "groups": [home_group(bus=bus)]})))
        one = scenario.load(tmp_path / "s.yaml")
        one.check_grid()
        return one.groups[0]["bus"], one.resolved()[0]["fleet"]["groups"][0]["bus"]

    houses, resolved = group_buses({"network": "ieee_eu_lv"}, {"every": "load"})
    assert len(houses) == 55 and houses[:3] == [34, 47, 70] and resolved == houses
    lv, _ = group_buses({"network": "cigre_lv"}, {"every": "lv_bus"})
    assert len(lv) > 30 and 0 not in lv  # bus 0 is the 20 kV side of the transformer
    with pytest.raises(ScenarioError, match=r"fleet\.groups\[0\]\.bus: \{every: lv_bus\}: the grid has no such bus"):
        group_buses({"network": "cigre_mv"}, {"every": "lv_bus"})
    from v2g_testbed.sims.topology import feeders
    from v2g_testbed.sims.grid import load_network

    one_feeder, _ = group_buses({"network": "cigre_mv"}, {"every": "load", "feeder": "Line 12-13"})
    assert one_feeder and set(one_feeder) <= set(feeders(load_network("cigre_mv"))["Line 12-13"])
    everywhere, _ = group_buses({"network": "cigre_mv"}, {"every": "load"})
    assert set(one_feeder) < set(everywhere)
    with pytest.raises(ScenarioError, match=r"fleet\.groups\[0\]\.bus\.feeder: no feeder 'Line 9' \(feeders, named by "
                                            r"their first line: Line 1-2, Line 12-13\)"):
        group_buses({"network": "cigre_mv"}, {"every": "load", "feeder": "Line 9"})


def test_checking_a_scenario_reads_the_process_s_network_and_never_changes_it(tmp_path):
    """check_grid reads the network without copying it (sims.grid.network_view): after checking buses, feeders,
    phases and reactive settings, every table of the shared network is as built."""
    import copy

    from pandapower.toolbox import nets_equal

    from v2g_testbed.sims.grid import network_view

    for network, bus in (("cigre_mv", {"every": "load", "feeder": "Line 12-13"}), ("cigre_lv", {"every": "lv_bus"})):
        before = copy.deepcopy(network_view(network))
        (tmp_path / "s.yaml").write_text(yaml.safe_dump(dict(BASE, grid={"network": network}, fleet={
            "assume_v2g": True, "groups": [home_group(bus=bus, reactive={"mode": "power_factor", "power_factor": 0.95})]})))
        scenario.load(tmp_path / "s.yaml").check_grid()
        assert nets_equal(network_view(network), before)
