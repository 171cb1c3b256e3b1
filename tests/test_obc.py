"""The onboard-charger model on its own: exact timing against the measured catalog."""

import numpy as np
import pytest

from v2g_testbed.sims import catalog
from v2g_testbed.sims.obc import ChargerFleet

MODELS = list(catalog.builtin_vehicles().values())


def one_vehicle(v, p_max_kw, baseline_kw=0.0, soc=0.5, **over):
    params = dict(start_delay_ms=[round(v.t_a_s * 1000)], stop_delay_ms=[round(v.t_c_s * 1000)],
                  ramp_up_kw_per_s=[v.ramp_up_kw_per_s], ramp_down_kw_per_s=[v.ramp_down_kw_per_s],
                  p_min_kw=[-p_max_kw], p_max_kw=[p_max_kw], baseline_kw=[baseline_kw], capacity_kwh=[v.battery_kwh],
                  soc=[soc], soc_min=[0.0], soc_max=[1.0], eta_charge=[1.0], eta_discharge=[1.0], plugged=[True])
    params.update(over)
    return ChargerFleet(**params)


def trace(fleet, until_ms, step_ms=1):
    times = np.arange(fleet.t_ms, until_ms + 1, step_ms)
    power = []
    for t in times:
        fleet.advance(int(t))
        power.append(fleet.power_kw()[0])
    return times, np.array(power)


@pytest.mark.parametrize("v", MODELS, ids=[m.model for m in MODELS])
def test_step_up_matches_t_a_and_t_b(v):
    """At the measured rated power, power starts t_a after the command and is full t_b later."""
    rated = v.measured_rated_kw
    fleet = one_vehicle(v, rated)
    fleet.command(1000, [0], [rated])
    times, p = trace(fleet, 1000 + round((v.t_a_s + v.t_b_s) * 1000) + 500)
    start = times[np.flatnonzero(p > 1e-9)[0]] - 1000
    full = times[np.flatnonzero(p >= rated - 1e-9)[0]] - 1000
    assert abs(start - v.t_a_s * 1000) <= 1
    assert abs(full - (v.t_a_s + v.t_b_s) * 1000) <= 1


@pytest.mark.parametrize("v", MODELS, ids=[m.model for m in MODELS])
def test_step_down_uses_t_c_and_ramp_down(v):
    """From full power to zero: power starts falling t_c after the command, at the measured ramp-down rate."""
    rated = v.measured_rated_kw
    fleet = one_vehicle(v, rated, baseline_kw=rated)
    fleet.command(1000, [0], [0.0])
    fall_ms = rated / v.ramp_down_kw_per_s * 1000
    times, p = trace(fleet, 1000 + round(v.t_c_s * 1000 + fall_ms) + 200)
    start = times[np.flatnonzero(p < rated - 1e-9)[0]] - 1000
    zero = times[np.flatnonzero(p <= 1e-9)[0]] - 1000
    assert abs(start - v.t_c_s * 1000) <= 1
    assert abs(zero - (v.t_c_s * 1000 + fall_ms)) <= 1
    if abs(v.ramp_down_kw_per_s * v.t_d_s - rated) / rated < 0.02:  # where the measurement is self-consistent
        assert abs(zero - (v.t_c_s + v.t_d_s) * 1000) <= 1


def test_reversal_is_continuous_and_waits_start_delay_at_zero():
    v = catalog.builtin_vehicles()["Nissan Ariya"]
    fleet = one_vehicle(v, 10.0, baseline_kw=10.0)
    fleet.command(0, [0], [-10.0])
    times, p = trace(fleet, 6000)
    assert np.max(np.abs(np.diff(p))) <= v.ramp_down_kw_per_s / 1000 + 1e-9  # no jump beyond ramp x 1 ms
    reach_zero = 20 + 10.0 / v.ramp_down_kw_per_s * 1000
    leaves_zero = times[np.flatnonzero(p < -1e-9)[0]]
    assert abs(leaves_zero - (reach_zero + 500)) <= 2  # t_a = 0.5 s of standstill before discharging
    assert p[-1] == pytest.approx(-10.0)


def test_setpoint_change_mid_ramp_is_continuous():
    v = catalog.builtin_vehicles()["Tesla Model 3 LR dual motor"]  # slow ramp: 0.73 kW/s
    fleet = one_vehicle(v, 11.0)
    fleet.command(0, [0], [11.0])
    trace(fleet, 5000)
    fleet.command(5000, [0], [-11.0])  # reversal while still ramping up
    times, p = trace(fleet, 12000)
    assert np.max(np.abs(np.diff(p))) <= 552 / 1000 + 1e-9
    assert p[-1] < 0


def test_newer_command_replaces_one_not_yet_effective():
    v = catalog.builtin_vehicles()["Renault Zoe 40"]  # t_a 3.8 s, t_c 0.1 s
    fleet = one_vehicle(v, 10.0)
    fleet.command(0, [0], [10.0])
    fleet.command(1000, [0], [0.0])  # cancel before the first took effect
    times, p = trace(fleet, 8000)
    assert np.all(p == 0.0)


def test_setpoints_updated_faster_than_the_start_delay_are_followed_with_exactly_that_delay():
    """A new value every 20 ms: the charger neither starves (a delay restarted by every update) nor applies a
    value sooner than its own start delay after it arrived: each takes effect t_a after it was received."""
    v = catalog.builtin_vehicles()["Renault Zoe 40"]  # t_a 3.8 s, ramp 6.13 kW/s
    fleet = one_vehicle(v, 10.0)
    for k, t in enumerate(range(0, 3790, 20)):
        fleet.advance(t)
        fleet.command(t, [0], [min(10.0, 0.1 * (k + 1))])
    fleet.advance(3799)
    assert fleet.power_kw()[0] == 0.0 and np.isnan(fleet.last_effect_ms[0])
    fleet.advance(3800)
    assert fleet.last_effect_ms[0] == 3800 and fleet.goal[0] == pytest.approx(0.1)  # the first value, on time
    for t in range(3820, 5000, 20):  # each value 3.8 s after it arrived; 5 kW/s is within the 6.13 kW/s ramp
        fleet.advance(t)
        assert fleet.last_effect_ms[0] == t and fleet.goal[0] == pytest.approx(min(10.0, 0.1 * ((t - 3800) // 20 + 1)))
    fleet.advance(5000)  # the value sent at 1.18 s reached; the one sent at 1.2 s takes effect now
    assert fleet.power_kw()[0] == pytest.approx(6.0) and fleet.goal[0] == pytest.approx(6.1)


def test_a_quick_stop_cancels_a_slow_start_queued_before_it():
    v = catalog.builtin_vehicles()["Renault Zoe 40"]  # t_a 3.8 s, t_c 0.1 s
    fleet = one_vehicle(v, 10.0, baseline_kw=5.0)
    fleet.command(0, [0], [10.0])  # up: due at 3.8 s
    fleet.command(1000, [0], [2.0])  # down: due at 1.1 s, sooner; the older 10 kW must never follow it
    times, p = trace(fleet, 8000)
    assert p[times == 1100][0] == 5.0 and p[-1] == pytest.approx(2.0) and p.max() == 5.0


def test_energy_is_integrated_exactly_with_efficiency():
    v = catalog.builtin_vehicles()["VW ID.3 Pro"]
    fleet = one_vehicle(v, 10.0, baseline_kw=10.0, eta_charge=[0.9])
    e0 = fleet.energy_kwh[0]
    fleet.advance(3_600_000)  # one hour at 10 kW
    assert fleet.energy_kwh[0] - e0 == pytest.approx(9.0, rel=1e-12)


def test_vehicle_at_minimum_soc_stops_discharging():
    v = catalog.builtin_vehicles()["VW ID.3 Pro"]
    fleet = one_vehicle(v, 10.0, baseline_kw=-10.0, soc=0.2, soc_min=[0.2 - 10 / 3600 / 58])  # ~10 s of energy
    times, p = trace(fleet, 20000, step_ms=100)
    assert p[0] == -10.0
    assert p[-1] == 0.0
    assert fleet.soc[0] >= fleet.soc_min[0] - 2e-5


def test_unplugged_vehicle_ignores_setpoints():
    v = catalog.builtin_vehicles()["VW ID.3 Pro"]
    fleet = one_vehicle(v, 10.0, plugged=[False])
    fleet.command(0, [0], [10.0])
    _, p = trace(fleet, 5000, step_ms=100)
    assert np.all(p == 0.0)
