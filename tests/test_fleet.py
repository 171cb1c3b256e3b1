"""Fleet behaviour through the co-simulation: energy, V1G headroom, spread."""

import numpy as np
import pytest

from conftest import run_file, vehicle_power
from sims import catalog
from sims.fleet import sample_vehicles


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


def test_plugged_in_fraction_is_exact_per_group():
    out = sample_vehicles([group(count=1000, plugged_in_fraction=0.7)], 0.0, np.random.default_rng(2))
    assert sum(out["plugged"]) == 700


@pytest.mark.parametrize("soc, passes", [(0.25, False), (0.9, True)])
def test_low_soc_fleet_fails_duration_of_a_30_minute_service(scenario_file, tmp_path, soc, passes):
    """10 ID.3 (58 kWh) exporting 10 kW each for DM-L (30 min): from 25 % SoC with 20 % reserved
    there are 2.7 kWh each at the grid side, 16 minutes; from 90 %, hours."""
    path = scenario_file(
        fleet__groups=[{"model": "VW ID.3 Pro", "count": 10, "charger_kw": 10, "bus": "Bus 5", "soc": soc}],
        services=[{"id": "DM-L", "contracted_mw": 0.1}])
    verdict = run_file(path, tmp_path / "out")["services"][0]
    rule = verdict["rules"]["duration"]
    assert rule["passed"] is passes
    assert ("duration" in verdict["failed"]) is not passes
    if not passes:
        expected_min = (soc - 0.2) * 58 * 0.93 / 10 * 60
        assert rule["value"] == pytest.approx(expected_min, rel=1e-3)


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
