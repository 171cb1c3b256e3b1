"""Frequency profiles: each type on its defining property."""

import csv

import mosaik
import mosaik_api_v3
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from conftest import ROOT, make_scenario, run_file
from v2g_testbed.cosim.scenario import ScenarioError, load
from v2g_testbed.sims import catalog
from v2g_testbed.sims.frequency import build_profile


def at(profile, t_ms):
    times = np.array([t for t, _ in profile])
    values = np.array([f for _, f in profile])
    return values[np.searchsorted(times, t_ms, side="right") - 1]


def test_step_size_and_timing():
    p = build_profile([{"type": "step", "at_s": 2.5, "to_hz": 49.3, "hold_s": 4}], 50.0)
    assert p == [(0, 50.0), (2500, 49.3), (6500, 50.0)]


def test_ramp_has_the_configured_rocof():
    p = build_profile([{"type": "ramp", "at_s": 1, "to_hz": 49.5, "rocof_hz_per_s": 0.25}], 50.0, sample_ms=20)
    t = np.array([x for x, _ in p]) / 1000
    f = np.array([y for _, y in p])
    moving = (t > 1) & (t <= 3)
    assert np.allclose(np.diff(f[moving]) / np.diff(t[moving]), -0.25)
    assert f[-1] == pytest.approx(49.5) and t[-1] == pytest.approx(3.0)


def test_trace_replays_exactly_at_its_sample_points(tmp_path):
    rows = list(csv.DictReader(ln for ln in (ROOT / "scenarios/traces/gb_synthetic_trace.csv").read_text().splitlines()
                               if not ln.startswith("#")))
    time_s = np.array([float(r["time_s"]) for r in rows])
    hz = np.array([float(r["hz"]) for r in rows])
    p = build_profile([{"type": "trace", "at_s": 0, "time_s": time_s.tolist(), "hz": hz.tolist()}], 50.0, 20)
    replay = at(p, np.round(time_s * 1000).astype(int))
    assert np.max(np.abs(replay - hz)) < 1e-9
    half = at(p, [500])[0]  # between the first two samples: linear
    assert half == pytest.approx(hz[0] + (hz[1] - hz[0]) * 0.5, abs=(abs(hz[1] - hz[0]) * 20 / 1000) + 1e-9)


def test_ou_process_has_the_configured_mean_and_variance():
    spec = catalog.frequency_profiles()["ou_gb"]
    p = build_profile([dict(type="ou", at_s=0, duration_s=20_000, seed=3, **{k: spec[k] for k in (
        "mean_hz", "theta_per_s", "sigma_hz_per_sqrt_s")})], 50.0, sample_ms=1000)
    f = np.array([y for _, y in p][1:])
    std = spec["sigma_hz_per_sqrt_s"] / np.sqrt(2 * spec["theta_per_s"])
    # 20,000 s at a 30 s correlation time: ~330 independent stretches -> mean within ~4 standard errors
    assert abs(f.mean() - spec["mean_hz"]) < 4 * std / np.sqrt(20_000 / 60)
    assert f.std() == pytest.approx(std, rel=0.1)


def test_events_add_up():
    p = build_profile([{"type": "step", "at_s": 1, "to_hz": 49.9},
                       {"type": "piecewise", "at_s": 2, "points": [[0, 50.0], [1, 49.8], [2, 50.0]]}], 50.0, 100)
    assert at(p, [1500])[0] == pytest.approx(49.9)
    assert at(p, [3000])[0] == pytest.approx(49.7)  # -0.1 + -0.2
    assert at(p, [5000])[0] == pytest.approx(49.9)


def test_standard_profile_from_data(scenario_file):
    loaded = load(scenario_file(duration_s=2000, frequency={"events": [{"type": "standard", "name":
                                                                            "ce_fcr_prequalification", "at_s": 5}]}))
    p = build_profile(loaded.frequency_events, 50.0)
    assert p == [(0, 50.0), (5000, 49.8), (905000, 50.0), (965000, 50.2), (1865000, 50.0)]
    with pytest.raises(ScenarioError, match=r"frequency.events\[0\].name: unknown standard profile"):
        load(scenario_file(frequency={"events": [{"type": "standard", "name": "nope"}]}))


def test_bad_trace_file_is_a_one_line_error(scenario_file, tmp_path):
    (tmp_path / "t.csv").write_text("time,freq\n0,50\n1,49.9\n")
    with pytest.raises(ScenarioError, match=r"frequency.events\[0\].file: cannot read columns 'time_s' and 'hz'"):
        load(scenario_file(frequency={"events": [{"type": "trace", "file": "t.csv"}]}))


def _nadirs(out):
    from v2g_testbed.analysis.timeseries import RunRecord

    with RunRecord.open(out / "timeseries.h5") as rec:
        freq = rec.series("frequency")
    t, f = freq.time_ms / 1000, freq.value
    first_trip_s = 1.0 + 57.5  # the strike at 1 s, the first gas turbine 57.5 s later
    return f[t < first_trip_s].min(), f[t >= first_trip_s].min()


def test_gb_2019_preset_open_loop_reaches_the_recorded_nadirs(tmp_path):
    """Recorded that day: a first fall to ~49.1 Hz, then 48.8 Hz after the first gas turbine trip (LFDD)."""
    first, second = _nadirs_run(tmp_path, 0)
    assert 49.0 <= first <= 49.2
    assert 48.7 <= second <= 48.85


def _nadirs_run(tmp_path, replication):
    """The fleet of scenarios/gb-2019-08-09-dc.yaml on the preset, as a scenario of its own (each shipped
    scenario runs once per suite, in test_run.py)."""
    out = tmp_path / f"r{replication}"
    path = make_scenario(tmp_path, name=f"gb2019-{replication}", duration_s=100,
                         grid={"network": "cigre_mv", "step_s": 5.0, "base_load_scale": 0.6},
                         fleet={"assume_v2g": True, "telemetry_hz": 20, "groups": [
                             {"model": "Nissan Ariya", "count": 120, "charger_kw": 10, "bus": "Bus 5", "soc": 0.8}]},
                         frequency={"events": [{"type": "system", "preset": "gb_2019_08_09",
                                                "replication_factor": replication}]},
                         services=[{"id": "DC-L", "contracted_mw": 1.0}],
                         outputs={"sample_ms": 10, "vehicle_sample_ms": 500, "plots": False})
    run_file(path, out)
    return _nadirs(out)


def test_closed_loop_fleet_raises_the_nadir(tmp_path):
    open_first, open_second = _nadirs_run(tmp_path, 0)
    closed_first, closed_second = _nadirs_run(tmp_path, 400)
    assert closed_first > open_first + 0.1  # 400 fleets of 1.2 MW hold the first fall 0.3 Hz higher
    assert closed_second > open_second + 0.1


def test_system_event_must_stand_alone(scenario_file):
    with pytest.raises(ScenarioError, match=r"a system model must be the only frequency event"):
        load(scenario_file(frequency={"events": [{"type": "system", "preset": "gb_2019_08_09"},
                                                 {"type": "step", "at_s": 1, "to_hz": 49.5}]}))


def test_hdf5_trace_at_any_sample_rate(scenario_file, tmp_path):
    import h5py

    with h5py.File(tmp_path / "trace.h5", "w") as h5:
        g = h5.create_group("gb")
        g["time_s"] = np.arange(0, 4.01, 0.25)  # 4 Hz
        g["hz"] = 50 - 0.1 * np.arange(17) / 16
    loaded = load(scenario_file(frequency={"events": [{"type": "trace", "file": "trace.h5", "dataset": "gb"}]}))
    p = build_profile(loaded.frequency_events, 50.0, sample_ms=20)
    assert at(p, [0, 250, 4000]).tolist() == pytest.approx([50.0, 50 - 0.1 / 16, 49.9])


class _Dispatches(mosaik_api_v3.Simulator):
    """Keeps every row of the aggregator's recorded setpoints and required changes, in the order given."""

    rows: dict[str, list] = {}

    def __init__(self):
        super().__init__({"api_version": "3.0", "type": "event-based",
                          "models": {"Keep": {"public": True, "params": [], "attrs": [], "any_inputs": True}}})

    def create(self, num, model):
        return [{"eid": "keep", "type": model}]

    def step(self, time, inputs, max_advance):
        for attr, sources in inputs.get("keep", {}).items():
            for block in sources.values():
                self.rows.setdefault(attr, []).extend(zip(*block.values()))
        return None


def _dispatches(events, sample_ms, delay_ms, interval_ms, ahead_ms, until_ms, run_ahead=False):
    """What the aggregator dispatched in a world of frequency -> aggregator -> keeper, the frequency given one change
    at a time (ahead_ms 0, ``f_hz``) or a window at a time (``f_samples``), the aggregator stepping at each of its
    wake times or running ahead to the next window (``run_ahead``)."""
    _Dispatches.rows = {}
    world = mosaik.World({"Frequency": {"python": "v2g_testbed.sims.frequency:FrequencySim"},
                          "Aggregator": {"python": "v2g_testbed.sims.controller:ControllerSim"},
                          "Keep": {"python": "test_frequency:_Dispatches"}},
                         time_resolution=0.001, skip_greetings=True, configure_logging=False)
    vehicles = {"baseline_kw": [3.0, -2.0, 0.0, 5.0], "p_min_kw": [-7.0, -7.0, -11.0, -3.0],
                "p_max_kw": [7.0, 7.0, 11.0, 7.0], "plugged": [True] * 4}
    services = [dict(catalog.services()[sid], contracted_kw=10.0) for sid in ("FFR497-L", "DC-L")]
    services[0]["support"] = services[0]["support"]["options"]["short"]  # held 5 s, then withdrawn at 0.2 pu/s
    frequency = world.start("Frequency", events=events, sample_ms=sample_ms, until_ms=until_ms,
                            ahead_ms=ahead_ms).Frequency()
    aggregator = world.start("Aggregator", measurement_delay_ms=delay_ms, dispatch_interval_ms=interval_ms,
                             until_ms=until_ms, run_ahead=run_ahead).Aggregator(
        services=services, vehicles=vehicles, nominal_hz=50.0)
    keep = world.start("Keep").Keep()
    world.connect(frequency, aggregator, "f_samples" if ahead_ms else "f_hz")
    world.connect(aggregator, keep, "record_setpoints", "record_required_kw")
    world.set_initial_event(frequency.sid)
    world.run(until=until_ms, print_progress=False)
    return _Dispatches.rows


@settings(max_examples=12, deadline=None, derandomize=True)
@example([("ou", 0, 49.9)], 30, 100, 0, 1000)  # samples arriving between measurements during FFR's withdrawal
@given(st.lists(st.tuples(st.sampled_from(["step", "ramp", "ou"]), st.integers(0, 9), st.floats(49.5, 49.9)),
                min_size=1, max_size=3),
       st.sampled_from([10, 20, 30, 50]), st.sampled_from([0, 30, 100, 130]), st.sampled_from([0, 250, 1000]),
       st.sampled_from([100, 1000, 7000]))
def test_the_aggregator_dispatches_the_same_whether_the_frequency_comes_a_change_or_a_window_at_a_time(
        shapes, sample_ms, delay_ms, interval_ms, ahead_ms):
    """A known profile given a window ahead (``f_samples``) must change nothing the aggregator does: each sample is
    acted on at its own time plus the measurement delay, supports are held and withdrawn (FFR's 5 s option) on the
    aggregator's own clock, never at the moments input happens to arrive; nor must running ahead to the next window
    (what it does with no network leg: every dispatch at its own time)."""
    events = [{"type": "step", "at_s": 2, "to_hz": 49.6, "hold_s": 2}]  # FFR: held 5 s from ~2.1 s, then withdrawn
    for kind, at_s, hz in shapes:
        if kind == "step":
            events.append({"type": "step", "at_s": at_s, "to_hz": hz, "hold_s": 2})
        elif kind == "ramp":
            events.append({"type": "ramp", "at_s": at_s, "to_hz": hz, "rocof_hz_per_s": 0.5, "hold_s": 1})
        else:
            events.append({"type": "ou", "at_s": at_s, "duration_s": 4, "mean_hz": hz, "theta_per_s": 0.5,
                           "sigma_hz_per_sqrt_s": 0.05, "seed": at_s})
    one_at_a_time = _dispatches(events, sample_ms, delay_ms, interval_ms, 0, 16_000)
    assert one_at_a_time.get("record_required_kw"), "nothing was dispatched: the comparison shows nothing"
    assert _dispatches(events, sample_ms, delay_ms, interval_ms, ahead_ms, 16_000) == one_at_a_time
    assert _dispatches(events, sample_ms, delay_ms, interval_ms, ahead_ms, 16_000, run_ahead=True) == one_at_a_time
