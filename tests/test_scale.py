"""What lets a national fleet fit on one machine: the fleet's total kept incrementally, per-vehicle records
streamed to the file (float32 where the record says so), arrays in-process, replicates in parallel."""

import copy
import heapq
import itertools
import json
import os

import h5py
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from conftest import ROOT, make_scenario
from v2g_testbed.cosim import api
from v2g_testbed.sims import Held, WakeBound, record
from v2g_testbed.sims.fleet import FleetSim, fleet_parameters
from v2g_testbed.sims.obc import (DEPARTURE, OPTIONAL_PARAMETERS, PARAMETERS, PENDING, SOC_AT_LIMIT, ZERO,
                                  ChargerFleet, soc_limited_kw)
from v2g_testbed.sims.recorder import ROWS_PER_WRITE, RecorderSim

EXAMPLES = int(os.environ.get("V2G_PROPERTY_EXAMPLES", 12))


def _fleet(n: int, seed: int) -> ChargerFleet:
    params = fleet_parameters([{"model": m, "count": n, "charger_kw": 10, "bus": "b", "soc": 0.5,
                                "departure_s": [1, 30], "baseline_kw": 3.0}
                               for m in ("Nissan Ariya", "Tesla Model 3 LR dual motor", "Nissan LEAF e+")],
                              seed=seed, spread_pct=20, assume_v2g=True)
    return ChargerFleet(**{k: params[k] for k in (*PARAMETERS, *OPTIONAL_PARAMETERS)})


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True)
@given(st.integers(0, 2**16), st.lists(st.tuples(st.integers(1, 3000), st.floats(-10, 10)), min_size=1, max_size=8))
def test_the_incremental_fleet_total_is_the_sum_of_every_vehicle(seed, commands):
    """Whatever the setpoints, reversals, departures and energy limits, the total kept incrementally equals
    the sum over every vehicle at every 10 ms sample, and the state of charge (settled vehicles at a kept
    rate, nothing written back) equals every vehicle's energy integrated piece by piece."""
    fleet = _fleet(20, seed)
    rng = np.random.default_rng(seed)
    t = 0
    for gap, kw in commands:
        for _ in range(gap // 10):
            t += 10
            fleet.advance(t)
            assert abs(fleet.total_power_kw() - float(fleet.power_kw().sum())) < 1e-6
        who = rng.choice(fleet.n, size=rng.integers(1, fleet.n), replace=False)
        fleet.command(t, who, np.full(who.size, kw) + rng.normal(0, 2, who.size))
    for k in range(800):
        t += 10
        fleet.advance(t)
        assert abs(fleet.total_power_kw() - float(fleet.power_kw().sum())) < 1e-6
        if k % 50 == 0:
            reference = copy.deepcopy(fleet)
            reference._integrate(np.arange(fleet.n), float(t))
            np.testing.assert_allclose(fleet.soc, reference.energy_kwh / reference.capacity_kwh, rtol=0, atol=1e-12)


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True)
@given(st.integers(0, 2**16), st.lists(st.tuples(st.integers(1, 3000), st.floats(-10, 10)), min_size=1, max_size=8),
       st.sampled_from([10, 20, 50]))
def test_the_fleet_total_over_many_samples_at_once_is_the_total_sample_by_sample(seed, commands, sample_ms):
    """``total_power_at`` (the samples between two changes of motion evaluated together) gives, whatever the
    setpoints, delays, reversals, departures and energy limits, the total that advancing to each sample gives,
    and leaves the fleet in the same state."""
    one, many = _fleet(20, seed), _fleet(20, seed)
    rng = np.random.default_rng(seed)
    t = 0
    for gap, kw in [*commands, (8000, 0.0)]:
        times = np.arange(t + sample_ms, t + gap + 1, sample_ms)
        if times.size:
            expected = []
            for s in times:
                one.advance(int(s))
                expected.append(one.total_power_kw())
            np.testing.assert_allclose(many.total_power_at(times), expected, rtol=0, atol=1e-9)
            t = int(times[-1])
        assert many.t_ms == one.t_ms == t
        who = rng.choice(one.n, size=rng.integers(1, one.n), replace=False)
        kw = np.full(who.size, kw) + rng.normal(0, 2, who.size)
        one.command(t, who, kw)
        many.command(t, who, kw)
    np.testing.assert_allclose(many.power_kw(), one.power_kw(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(many.soc, one.soc, rtol=0, atol=1e-12)


class _OneTimeAtATime(ChargerFleet):
    """The reference: every event at the earliest due time applied together, then the next time's (the fleet
    applies each vehicle's earliest due events together, each at its own time). ``advance`` is the one before
    that change, kept whole here so that a mistake in the fleet's own cannot hide in both."""

    def _pop_due(self, t):
        if not self._events or self._events[0][0] > t:
            return None
        t0, found = self._events[0][0], {DEPARTURE: [], PENDING: [], ZERO: []}
        while self._events and self._events[0][0] == t0:
            _, kind, i = heapq.heappop(self._events)
            found[kind].append(i)
        return {k: (np.unique(np.asarray(v, dtype=int)),) * 2 for k, v in found.items()}, t0

    def advance(self, t_ms):
        t = float(t_ms)
        while (due := self._pop_due(t)) is not None:
            by_kind, t0 = due
            idx = by_kind[DEPARTURE][0]
            idx = idx[~self.departed[idx] & (self.departure_ms[idx] == t0)]
            if idx.size:
                self._apply_departure(idx)
            idx = by_kind[PENDING][0]
            idx = idx[self.pending_t[idx] == t0]
            if idx.size:
                self._apply_pending(idx)
            idx = by_kind[ZERO][0]
            idx = idx[~np.isnan(self.then_goal[idx])]
            idx = idx[self._reach_time(idx) == t0]
            if idx.size:
                self._apply_zero_reached(idx)
        self.t_ms = int(t_ms)
        if t >= self._limit_check_ms:
            self._enforce_energy_limits()


def _small_batteries(seed: int, count: int, departure_s, smaller: float) -> tuple[dict, np.random.Generator]:
    """Three models' per-vehicle parameters, ``count`` each, 30 % spread, random states of charge and batteries
    ``smaller`` times smaller than the catalog's (energy limits within seconds), and the generator that drew them."""
    params = fleet_parameters([{"model": m, "count": count, "charger_kw": 10, "bus": "b", "soc": 0.5,
                                "departure_s": departure_s, "baseline_kw": 3.0}
                               for m in ("Nissan Ariya", "Tesla Model 3 LR dual motor", "Nissan LEAF e+")],
                              seed=seed, spread_pct=30, assume_v2g=True)
    params = {k: params[k] for k in (*PARAMETERS, *OPTIONAL_PARAMETERS)}
    rng = np.random.default_rng(seed)
    params["soc"] = rng.uniform(0.05, 0.95, 3 * count)
    params["capacity_kwh"] = np.asarray(params["capacity_kwh"]) / smaller
    return params, rng


def _assert_same_state(a: ChargerFleet, b: ChargerFleet) -> None:
    """Every vehicle of ``a`` exactly (bit for bit) where ``b``'s is: its motion, energy, queue and limit events."""
    for name in ("p_ref", "t_ref", "goal", "rate", "then_goal", "energy_kwh", "t_energy", "pending_t", "pending_goal",
                 "departed", "last_effect_ms", "last_seq"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert {i: list(map(list, q)) for i, q in a._queue.items()} == {i: list(map(list, q)) for i, q in b._queue.items()}
    assert a.take_limit_events() == b.take_limit_events() and a.stale_ignored == b.stale_ignored


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True)
@given(st.integers(0, 2**16), st.lists(st.tuples(st.integers(1, 400), st.floats(-10, 10), st.booleans()),
                                       min_size=1, max_size=40))
def test_each_vehicles_events_applied_together_are_the_events_one_time_at_a_time(seed, commands):
    """Whatever the setpoints (a vehicle's next often queued before its last took effect), reversals, departures and
    energy limits, applying every vehicle's earliest due events together, each at its own time, leaves every
    vehicle exactly (bit for bit) where applying them one time at a time does."""
    params, rng = _small_batteries(seed, 8, [1, 20], 2000)
    fleets = ChargerFleet(**params), _OneTimeAtATime(**params)
    t = 0
    for gap, kw, sample in commands:
        t += gap
        who = rng.choice(24, size=rng.integers(1, 24), replace=False)
        values = np.full(who.size, kw) + rng.normal(0, 3, who.size)
        for fleet in fleets:
            if sample:
                fleet.total_power_kw()
            fleet.command(t, who, values)
    for fleet in fleets:
        fleet.advance(t + 30_000)
    _assert_same_state(*fleets)


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True)
@given(st.integers(0, 2**16), st.lists(st.tuples(st.integers(0, 250), st.integers(0, 5), st.floats(-10, 10),
                                                 st.integers(-1, 6)), min_size=1, max_size=80),
       st.sampled_from([1, 100, 3000]))
def test_setpoints_at_many_times_at_once_are_one_command_per_time(seed, setpoints, smaller):
    """``command_many`` (the setpoints a network delivered since the fleet's last step, each at its own
    millisecond, applied together where that changes nothing) leaves every vehicle exactly (bit for bit) where one
    ``command`` per millisecond does, whatever the times, other vehicles' events in between, a vehicle twice,
    stale and duplicate sequence numbers, departures and energy limits, and ignores the same stale setpoints."""
    params, _ = _small_batteries(seed, 2, [0.5, 10], smaller)
    one, many = ChargerFleet(**params), ChargerFleet(**params)
    times = np.cumsum([gap for gap, *_ in setpoints]).astype(np.int64)
    vehicles = np.array([v for _, v, _, _ in setpoints])
    kw = np.array([x for _, _, x, _ in setpoints])
    seq = np.array([n for *_, n in setpoints], dtype=np.int64)
    for t in np.unique(times):
        at = times == t
        one.command(int(t), vehicles[at], kw[at], seq[at])
    k, calls = 0, 0
    while k < times.size:
        applied = many.command_many(times[k:], vehicles[k:], kw[k:], seq[k:])
        assert applied >= int(np.sum(times == times[k]))  # at least the first time's
        k, calls = k + applied, calls + 1
    for fleet in (one, many):
        fleet.advance(int(times[-1]) + 20_000)
    _assert_same_state(many, one)


def test_a_setpoint_after_its_vehicles_own_event_waits_for_it():
    """A vehicle whose earlier setpoint takes effect between the first time of a batch and its own next setpoint:
    ``command_many`` stops before that setpoint (``command`` would apply the effect first), and the vehicle ends
    where one ``command`` per time leaves it."""
    params = fleet_parameters([{"model": "Nissan Ariya", "count": 2, "charger_kw": 10, "bus": "b", "soc": 0.5,
                                "baseline_kw": 3.0}], seed=1, spread_pct=0, assume_v2g=True)
    params = {k: params[k] for k in (*PARAMETERS, *OPTIONAL_PARAMETERS)}
    effect = 1000 + int(params["start_delay_ms"][0])  # vehicle 0's first setpoint (up) takes effect then
    one, many = ChargerFleet(**params), ChargerFleet(**params)
    for fleet in (one, many):
        fleet.command(1000, [0], [8.0])
    times, vehicles, kw = np.array([effect - 100, effect + 100]), np.array([1, 0]), np.array([6.0, 2.0])
    for t, v, x in zip(times, vehicles, kw):
        one.command(int(t), [v], [x])
    assert many.command_many(times, vehicles, kw) == 1  # vehicle 1's only: vehicle 0's effect comes first
    assert many.command_many(times[1:], vehicles[1:], kw[1:]) == 1
    for fleet in (one, many):
        fleet.advance(60_000)
    for name in ("energy_kwh", "goal", "p_ref", "t_ref", "t_energy"):
        np.testing.assert_array_equal(getattr(many, name), getattr(one, name), err_msg=name)


def test_wide_matrices_stream_to_the_file_in_the_record_s_precision(tmp_path):
    path = tmp_path / "r.h5"
    sim = RecorderSim()
    sim.init("R", path=str(path), heartbeat_steps=0, dtypes={"fleet/vehicle_p_kw": "float32"})
    sim.create(1, "Recorder")
    rows = np.random.default_rng(0).normal(0, 5, (3 * ROWS_PER_WRITE + 7, 2000))
    for k, row in enumerate(rows):
        sim.step(k * 100, {"recorder": {"vehicle_p_kw": {"F.fleet": row.astype(np.float32)},
                                        "vm_pu": {"G.grid": row[:5].tolist()},
                                        "p_kw": {"F.fleet": float(row.sum())}}}, 10**9)
        if k == 2 * ROWS_PER_WRITE:
            assert sim.matrices[("fleet", "vehicle_p_kw")]["n"] < ROWS_PER_WRITE  # not held in memory
    sim.finalize()
    with h5py.File(path) as h5:
        power = h5["fleet/vehicle_p_kw/value"]
        assert power.dtype == np.float32 and power.shape == rows.shape and power.chunks == (16, 2000)
        np.testing.assert_array_equal(power[:], rows.astype(np.float32))
        np.testing.assert_array_equal(h5["fleet/vehicle_p_kw/time_ms"][:], np.arange(rows.shape[0]) * 100)
        assert h5["grid/vm_pu/value"].dtype == np.float64 and h5["grid/vm_pu/value"].shape == (rows.shape[0], 5)
        assert h5["fleet/p_kw/value"].shape == (rows.shape[0],)
    assert record.dtypes() == {"fleet/vehicle_p_kw": "float32", "fleet/vehicle_soc": "float32"}


def test_per_vehicle_outputs_are_arrays_in_process_and_lists_in_a_process_of_their_own():
    params = fleet_parameters([{"model": "Nissan Ariya", "count": 5, "charger_kw": 10, "bus": "b"}], assume_v2g=True)
    out = {}
    for arrays in (True, False):
        sim = FleetSim(arrays=arrays)
        sim.init("F")
        sim.create(1, "Fleet", vehicles=params)
        sim.step(0, {}, 100)
        out[arrays] = sim.get_data({"fleet": ["vehicle_p_kw", "vehicle_soc"]})["fleet"]
    rows = out[True]["vehicle_p_kw"]
    assert rows["time_ms"] == [0] and len(rows["value"]) == 1  # a list of rows, each an array (no copy into a block)
    assert isinstance(rows["value"][0], np.ndarray) and rows["value"][0].dtype == np.float32
    assert rows["value"][0].shape == (5,)
    assert isinstance(out[False]["vehicle_p_kw"]["value"], list) and isinstance(out[False]["vehicle_soc"]["value"][0], list)
    assert [r.tolist() for r in out[True]["vehicle_soc"]["value"]] == out[False]["vehicle_soc"]["value"]
    json.dumps(out[False])  # what mosaik sends between processes


def test_a_fleet_striding_past_its_row_interval_records_every_row():
    """Stepping once a second, the fleet still takes a row every 100 ms, and one at the run's last 100 ms."""
    params = fleet_parameters([{"model": "Nissan Ariya", "count": 3, "charger_kw": 10, "bus": "b"}], assume_v2g=True)
    sim = FleetSim()
    sim.init("F", step_ms=100, sample_ms=10, stride_ms=1000, until_ms=2500)
    sim.create(1, "Fleet", vehicles=params)
    times, steps, t = [], [], 0
    while t is not None and t < 2500:
        steps.append(t)
        t_next = sim.step(t, {}, 10**9)
        out = sim.get_data({"fleet": ["vehicle_p_kw"]})["fleet"]
        times += out.get("vehicle_p_kw", {}).get("time_ms", [])
        t = t_next
    assert steps == [0, 1000, 2000, 2400] and times == list(range(0, 2500, 100))


def test_replicates_in_worker_processes_give_the_serial_answer(tmp_path):
    path = make_scenario(tmp_path, duration_s=4, network={"profile": "4g"},
                         fleet__groups=[{"model": "Nissan Ariya", "count": 6, "charger_kw": 10, "bus": "Bus 5"}])
    serial = api.run_replicates(path, 3, out=tmp_path / "serial")
    parallel = api.run_replicates(path, 3, out=tmp_path / "parallel", workers=2)
    assert serial.summary == parallel.summary
    for seed in serial.summary["seeds"]:
        assert (tmp_path / "serial" / f"seed-{seed}" / "verdicts.json").read_bytes() == \
            (tmp_path / "parallel" / f"seed-{seed}" / "verdicts.json").read_bytes()


@settings(max_examples=EXAMPLES * 10, deadline=None)
@given(soc=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=8), soc_min=st.floats(0.0, 0.5),
       soc_max=st.floats(0.5, 1.0), near=st.sampled_from([0.0, 1e-9, 5e-7, -5e-7, 2e-6, -2e-6]))
def test_model_and_verdict_agree_on_who_is_at_a_soc_limit_though_the_record_is_float32(soc, soc_min, soc_max, near):
    """The model decides on its float64 state of charge, the verdict on the float32 the run recorded: both say
    the same vehicles may not export (at their reserve) or import (full), also exactly at and just around a limit."""
    soc = np.clip(np.array(soc + [soc_min + near, soc_max - near]), 0.0, 1.0)
    for limit in (soc_min + SOC_AT_LIMIT, soc_max - SOC_AT_LIMIT):  # float32 rounds by <= 6e-8: not decidable here
        assume(np.all(np.abs(soc - limit) > 1e-7))
    soc = np.append(soc, [soc_min, soc_max])  # exactly at a limit, where the model stops a vehicle
    params = fleet_parameters([{"model": "Nissan Ariya", "count": soc.size, "charger_kw": 10, "bus": "b", "soc": 0.5,
                                "soc_min": 0.0, "soc_max": 1.0}], assume_v2g=True)
    params.update(soc=soc.tolist(), soc_min=[soc_min] * soc.size, soc_max=[soc_max] * soc.size)
    fleet = ChargerFleet(**{k: params[k] for k in (*PARAMETERS, *OPTIONAL_PARAMETERS)})
    model = fleet.limits_kw()
    verdict = soc_limited_kw(params, soc.astype(np.float32))
    np.testing.assert_array_equal(model[0], verdict[0])
    np.testing.assert_array_equal(model[1], verdict[1])
    at_reserve = soc <= soc_min + SOC_AT_LIMIT
    assert np.all(model[0][at_reserve] >= 0) and np.all(model[0][~at_reserve] < 0)


def test_a_national_fleet_as_identical_copies_of_a_feeder_sees_each_copys_grid(tmp_path):
    """grid.copies: 300 identical vehicles over 3 copies of CIGRE MV load each copy as 100 do one network: the
    same voltages and loadings at every step, three times the fleet's power; a copy count below 1 is exit 2."""
    from conftest import run_file
    from v2g_testbed.analysis.timeseries import RunRecord
    from v2g_testbed.cosim.scenario import ScenarioError, load

    def run(count, copies, name):
        path = make_scenario(tmp_path, name=name, duration_s=4, grid={"network": "cigre_mv", "copies": copies,
                                                                     "base_load_scale": 0.6},
                             fleet={"assume_v2g": True, "spread_pct": 0, "groups": [
                                 {"model": "Nissan Ariya", "count": count, "charger_kw": 10, "bus": "Bus 5",
                                  "soc": 0.5, "baseline_kw": 10}]},
                             services=[{"id": "DC-L", "contracted_mw": 1.0 * count / 100}])
        run_file(path, tmp_path / name)
        with RunRecord.open(tmp_path / name / "timeseries.h5") as rec:
            return rec.series("voltage").value, rec.series("fleet_power").value

    v1, p1 = run(100, 1, "one")
    v3, p3 = run(300, 3, "three")
    np.testing.assert_allclose(v3, v1, atol=1e-9)
    np.testing.assert_allclose(p3, 3 * p1, rtol=1e-9, atol=1e-6)
    assert np.ptp(v1) > 1e-4  # the chargers moved the voltage at all
    with pytest.raises(ScenarioError, match=r"grid\.copies"):
        load(make_scenario(tmp_path, name="bad", grid={"network": "cigre_mv", "copies": 0}))


@settings(max_examples=50, deadline=None, derandomize=True)
@given(st.lists(st.integers(1, 400), min_size=1, max_size=200), st.sampled_from([None, 5000]),
       st.sampled_from([0, 1000]))
def test_a_simulator_woken_often_asks_for_an_own_step_soon_and_never_past_its_own(gaps, own, idle_ms):
    """WakeBound: whatever the wake-ups, the step asked for is later than now and never later than the
    simulator's own; after `wakes` wake-ups since its own last step it is within one interval (mosaik 3.6 keeps
    each wake-up's cancelled wait until that step); a simulator never woken keeps its own schedule."""
    bound = WakeBound(100, wakes=16, idle_ms=idle_ms)
    t, asked, woken = 0, None, 0
    for gap in gaps:
        t = min(t + gap, asked) if asked is not None else t + gap  # the next step: a wake-up or its own
        woken = 0 if t == asked else woken + 1
        own_next = None if own is None else (t // own + 1) * own
        asked = bound.next_step(t, own_next)
        assert asked is None or asked > t
        if own_next is not None:
            assert asked <= own_next
        if woken >= 16:
            assert asked <= (t // 100 + 1) * 100
        if asked is None:
            assert own_next is None and idle_ms == 0


@settings(max_examples=50, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.integers(1, 700), st.integers(0, 3)), min_size=1, max_size=60),
       st.sampled_from([0, 100, 1000]))
def test_held_rows_go_out_once_in_order_and_never_later_than_asked(steps, every_ms):
    """Held: whatever the step times and rows, every row goes out once, in order, nothing is left at the end, and
    a row goes out at the step that made it or a later one less than ``every_ms`` after it."""
    times = list(itertools.accumulate(gap for gap, _ in steps))
    held, given, k = Held(every_ms, times[-1] + 1), [], 0
    for j, (t, (_, rows)) in enumerate(zip(times, steps)):
        held.add("x", {"time_ms": [t] * rows, "value": list(range(k, k + rows))})
        k += rows
        out = held.take(times[j + 1] if j + 1 < len(times) else None).get("x")
        if out:
            given += out["value"]
            assert all(made == t or made < t < made + every_ms for made in out["time_ms"])
    assert given == list(range(k)) and held.blocks == {}


def test_a_simulator_left_alone_keeps_its_own_schedule():
    bound = WakeBound(100, idle_ms=0)
    assert [bound.next_step(t, t + 5000) for t in (0, 5000, 10000)] == [5000, 10000, 15000]
    assert bound.next_step(15000, None) is None
    assert WakeBound(100, idle_ms=1000).next_step(15200, None) == 16000


def test_how_mosaik_schedules_the_steps_changes_nothing_recorded(tmp_path, monkeypatch):
    """The 4G DR hub, 8 s, as shipped; without WakeBound's sooner steps; with mosaik's lazy stepping off (every
    simulator runs as far ahead as its inputs allow, so the network gets other horizons); with the recorder's
    rows given at every step instead of held (Held); and with the frequency given one change at a time and the
    network's deliveries every 100 ms (as before they went a stride at a time): the verdicts and every recorded
    series are the same (samples carry their own times; a message's draws follow everything before it). As shipped,
    the frequency and the aggregator step about once a second, not at each of the ramp's 100 samples."""
    import collections

    import mosaik

    from v2g_testbed.cosim import run as runner
    from v2g_testbed.cosim import scenario
    from v2g_testbed.sims.controller import ControllerSim
    from v2g_testbed.sims.frequency import FrequencySim
    from v2g_testbed.sims.network import NetworkSim

    def run(out):
        runner.run(scenario.load(ROOT / "scenarios" / "hub-dr-4g.yaml", ["duration_s=8"]), out)
        with h5py.File(out / "timeseries.h5") as h5:
            data = {}
            h5.visititems(lambda name, obj: data.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
        return (out / "verdicts.json").read_text(), data

    steps = []
    original = WakeBound.next_step
    monkeypatch.setattr(WakeBound, "next_step", lambda self, t, own, early=True: steps.append(
        (own, original(self, t, own, early))) or steps[-1][1])
    stepped = collections.Counter()
    for sim in (FrequencySim, ControllerSim, NetworkSim):
        monkeypatch.setattr(sim, "step", lambda self, *a, _step=sim.step, **k: stepped.update([type(self)]) or
                            _step(self, *a, **k))
    verdicts, data = run(tmp_path / "shipped")
    assert any(own != asked for own, asked in steps), "no step was asked for sooner: the comparison shows nothing"
    assert stepped[FrequencySim] <= 10 and stepped[ControllerSim] <= 16 and stepped[NetworkSim] <= 20, stepped
    frequency_init, network_init = FrequencySim.init, NetworkSim.init
    monkeypatch.setattr(FrequencySim, "init", lambda self, sid, **k: frequency_init(self, sid, **{**k, "ahead_ms": 1}))
    monkeypatch.setattr(NetworkSim, "init", lambda self, sid, **k: network_init(self, sid, **{**k, "batch_ms": 100}))
    one_at_a_time = run(tmp_path / "one-at-a-time")  # a 1 ms window: every change a step of its own
    assert stepped[FrequencySim] > 100, "the frequency did not step at each change: the comparison shows nothing"
    monkeypatch.setattr(FrequencySim, "init", frequency_init)
    monkeypatch.setattr(NetworkSim, "init", network_init)
    monkeypatch.setattr(WakeBound, "next_step", lambda self, t, own, early=True: own)
    unbounded = run(tmp_path / "unbounded")
    monkeypatch.setattr(WakeBound, "next_step", original)
    world_run = mosaik.World.run
    monkeypatch.setattr(mosaik.World, "run", lambda self, *a, **k: world_run(self, *a, **{**k, "lazy_stepping": False}))
    eager = run(tmp_path / "eager")
    monkeypatch.setattr(mosaik.World, "run", world_run)
    held_init = Held.__init__
    monkeypatch.setattr(Held, "__init__", lambda self, every_ms=0, until_ms=None: held_init(self, 0, until_ms))
    unheld = run(tmp_path / "unheld")  # every step's rows for the recorder at once (the recorder steps with each)
    for other_verdicts, other in (unbounded, eager, unheld, one_at_a_time):
        assert verdicts == other_verdicts
        assert data.keys() == other.keys()
        for name, value in data.items():
            np.testing.assert_array_equal(value, other[name], err_msg=name)
