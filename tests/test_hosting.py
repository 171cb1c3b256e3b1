"""Hosting capacity against feeders whose answer is known by hand."""

import json
import math

import pandapower as pp
import yaml

from conftest import BASE, v2g_cli


def one_line_feeder(path, r_ohm, max_i_ka):
    """0.4 kV slack bus -> one 100 m line -> the charging bus. No other load."""
    net = pp.create_empty_network()
    b0 = pp.create_bus(net, vn_kv=0.4, name="busbar")
    b1 = pp.create_bus(net, vn_kv=0.4, name="end")
    pp.create_ext_grid(net, b0, vm_pu=1.0)
    pp.create_line_from_parameters(net, b0, b1, length_km=0.1, r_ohm_per_km=r_ohm / 0.1, x_ohm_per_km=1e-6,
                                   c_nf_per_km=0.0, max_i_ka=max_i_ka, name="the line")
    pp.to_json(net, str(path))


def hosting(tmp_path, limits=None):
    data = dict(BASE, name="hc", grid={"network": "feeder.json", "limits": limits or {}},
                fleet={"assume_v2g": True, "groups": [{"model": "VW ID.3 Pro", "count": 1, "charger_kw": 10, "bus": "end",
                                   "bidirectional": False}]})
    (tmp_path / "hc.yaml").write_text(yaml.safe_dump(data))
    result = v2g_cli("hosting-capacity", str(tmp_path / "hc.yaml"), "--placements", "3", "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    return json.loads((tmp_path / "out" / "hosting_capacity.json").read_text())


def test_thermal_limit_by_hand(tmp_path):
    """100 A at 0.4 kV carries sqrt(3) x 0.4 x 0.1 = 69.3 kVA: six 10 kW chargers, not seven."""
    one_line_feeder(tmp_path / "feeder.json", r_ohm=0.001, max_i_ka=0.1)
    result = hosting(tmp_path)
    (fd,) = result["feeders"]
    assert math.floor(math.sqrt(3) * 0.4 * 0.1 * 1000 / 10) == 6
    assert fd["chargers_p5"] == fd["chargers_p95"] == 6
    assert fd["binding_limit"] == "line loading" and fd["binding_element"] == "line the line"
    # doubling then bisection: per placement at most 2 + 2 * ceil(log2(N + 1)) flows (+1 for the voltage profile)
    assert result["power_flows"] <= 3 * (2 + 2 * math.ceil(math.log2(7))) + 1
    for name in ("hosting_capacity.csv", "hosting_capacity.png", "voltage_profile.png"):
        assert (tmp_path / "out" / name).stat().st_size > 200


def test_voltage_limit_by_hand(tmp_path):
    """A resistive line of 0.15 ohm: at the 0.9 pu floor it carries V2 (V1 - V2) / R = 0.9 x 0.1 x 0.16 / 0.15
    = 96 kW, so nine 10 kW chargers fit and the tenth breaks the voltage limit."""
    one_line_feeder(tmp_path / "feeder.json", r_ohm=0.15, max_i_ka=10.0)
    (fd,) = hosting(tmp_path)["feeders"]
    p_max_kw = 0.9 * 0.1 * 0.4 ** 2 / 0.15 * 1000
    assert fd["chargers_p50"] == math.floor(p_max_kw / 10) == 9
    assert fd["binding_limit"] == "voltage below"


def test_export_direction_for_bidirectional_chargers(tmp_path):
    one_line_feeder(tmp_path / "feeder.json", r_ohm=0.001, max_i_ka=0.1)
    data = dict(BASE, name="hc2", grid={"network": "feeder.json"},
                fleet={"assume_v2g": True, "groups": [{"model": "VW ID.3 Pro", "count": 1, "charger_kw": 10, "bus": "end"}]})
    (tmp_path / "hc2.yaml").write_text(yaml.safe_dump(data))
    result = v2g_cli("hosting-capacity", str(tmp_path / "hc2.yaml"), "--placements", "2", "--out", str(tmp_path / "o2"))
    assert result.returncode == 0, result.stderr
    rows = {f["direction"]: f for f in json.loads((tmp_path / "o2" / "hosting_capacity.json").read_text())["feeders"]}
    assert set(rows) == {"import", "export"} and rows["export"]["chargers_p50"] == 6
