"""Charger reactive power: a fixed power factor or Q(U), in the co-simulation and in hosting capacity."""

import json

import numpy as np
import pandapower as pp
import pytest
import yaml

from conftest import BASE, run_file
from test_hosting_scale import cli
from v2g_testbed.sims.reactive import curves, reactive_kvar, resolve


def test_power_factor_and_q_u_by_hand():
    pf = {"mode": "power_factor", "power_factor": 0.9, "absorb": True}
    assert reactive_kvar([10.0, -10.0], None, pf, 10) == pytest.approx([4.843, 4.843], abs=1e-3)  # tan(acos .9)
    assert reactive_kvar([10.0], None, dict(pf, absorb=False), 10)[0] == pytest.approx(-4.843, abs=1e-3)
    qu = resolve({"mode": "q_u", "curve": "en50549"})
    assert qu["points"] == curves()["en50549"]["points"]
    # dead band, halfway up the slope, beyond the end, and a charger that is not running
    assert reactive_kvar([-10, -10, -10, 0], [1.0, 1.05, 1.2, 1.2], qu, 10) == pytest.approx([0, 2.18, 4.36, 0])
    assert resolve({"mode": "unity"}) is None


def test_a_misnamed_curve_is_a_one_line_error(tmp_path):
    data = dict(BASE, fleet={"assume_v2g": True, "groups": [{"model": "Nissan Ariya", "count": 1, "charger_kw": 10,
                                                             "bus": "Bus 5", "reactive": {"mode": "q_u", "curve": "vde"}}]})
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(data))
    done = cli("validate", tmp_path / "s.yaml")
    assert done.returncode == 2 and "unknown Q(U) curve 'vde'" in done.stderr


def feeder(path):
    """0.4 kV slack -> 300 m cable (0.2 + j0.08 ohm/km) -> the charging bus; voltage binds on export."""
    net = pp.create_empty_network()
    b0, b1 = pp.create_bus(net, 0.4, name="busbar"), pp.create_bus(net, 0.4, name="end")
    pp.create_ext_grid(net, b0, vm_pu=1.0)
    pp.create_line_from_parameters(net, b0, b1, length_km=0.3, r_ohm_per_km=0.2, x_ohm_per_km=0.08, c_nf_per_km=0.0,
                                   max_i_ka=10.0, name="cable")
    pp.to_json(net, str(path))


@pytest.mark.parametrize("method", ["subnetwork", "whole-network"])
def test_absorbing_reactive_power_raises_the_export_hosting_capacity(tmp_path, method):
    feeder(tmp_path / "feeder.json")
    found = {}
    for name, reactive in (("unity", {"mode": "unity"}), ("pf", {"mode": "power_factor", "power_factor": 0.9}),
                           ("qu", {"mode": "q_u", "curve": "en50549"})):
        data = dict(BASE, name=name, grid={"network": "feeder.json"},
                    fleet={"assume_v2g": True, "groups": [{"model": "Nissan Ariya", "count": 1, "charger_kw": 10,
                                                           "bus": "end", "reactive": reactive}]})
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(data))
        done = cli("hosting-capacity", tmp_path / f"{name}.yaml", "--placements", "1", "--method", method, "--quiet",
                   "--out", tmp_path / name)
        assert done.returncode == 0, done.stderr
        rows = {f["direction"]: f for f in json.loads((tmp_path / name / "hosting_capacity.json").read_text())["feeders"]}
        assert rows["export"]["binding_limit"] == "voltage above"
        found[name] = rows["export"]["chargers_p50"]
    assert found["unity"] < found["qu"] < found["pf"]  # Q(U) absorbs only near the limit; pf 0.9 absorbs 0.48 P always
    # by hand, unity: at the limit V = 1.1 the export P over the cable's R raises V by about R P / V
    r = 0.3 * 0.2 / 0.16  # ohm -> pu on 1 MVA, 0.4 kV
    p_unity = 0.1 * 1.1 / r  # (V - 1) V / R, MW
    assert found["unity"] == int(p_unity * 100)


def test_q_u_in_the_co_simulation_holds_the_voltage_down(scenario_file, tmp_path):
    """200 chargers exporting at the end of CIGRE MV feeder 1 (above 1.0 pu): with a Q(U) curve that absorbs above
    1.0 pu, the bus voltage during the event is lower than at unity power factor."""
    from v2g_testbed.analysis.timeseries import RunRecord

    peaks = {}
    for name, reactive in (("unity", {"mode": "unity"}), ("qu", {"mode": "q_u", "curve": [[0.97, -0.3], [0.99, 0.0],
                                                                                         [1.0, 0.0], [1.02, 0.3]]})):
        path = scenario_file(name=name, duration_s=6, grid={"network": "cigre_mv", "step_s": 0.5, "base_load_scale": 0.3},
                             fleet__groups=[{"model": "Nissan Ariya", "count": 200, "charger_kw": 10, "bus": "Bus 11",
                                             "reactive": reactive}],
                             frequency={"events": [{"type": "step", "at_s": 1, "to_hz": 49.5}]},
                             outputs={"plots": False, "vehicle_sample_ms": 500})
        run_file(path, tmp_path / name)
        with RunRecord.open(tmp_path / name / "timeseries.h5") as rec:
            v = rec.series("voltage")
            bus = rec.labels("bus_names").index("Bus 11")
            peaks[name] = float(np.mean(v.value[v.time_ms >= 3000, bus]))  # during the event, after the ramp
    assert peaks["unity"] > 1.003 and peaks["qu"] < peaks["unity"] - 0.001
