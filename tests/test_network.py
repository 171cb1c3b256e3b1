"""The SimPy network model: latency distributions and shared-cell queueing."""

import numpy as np
import pytest

from v2g_testbed.sims import catalog
from v2g_testbed.sims.network import LatencyModel, NetworkSim, lognormal_params

PROFILES = {k: v for k, v in catalog.network_profiles().items() if v["hops"]}


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_hop_latency_quantiles_match_profile(name):
    """10,000 draws per hop: sample median and p95 within 3 % of the configured ones. (The standard
    error of a sample quantile at n = 10,000 is ~1 %, so this fails for a wrong sigma or median.)"""
    model = LatencyModel(PROFILES[name], seed=3)
    for hop, spec in zip(model.hops, PROFILES[name]["hops"]):
        draws_ms = np.array([model.draw_us(hop["latency"]) for _ in range(10_000)]) / 1000
        assert np.median(draws_ms) == pytest.approx(spec["latency_ms"]["median"], rel=0.03, abs=0.002)
        assert np.percentile(draws_ms, 95) == pytest.approx(spec["latency_ms"]["p95"], rel=0.03, abs=0.002)


def test_lognormal_params_reject_inverted_quantiles():
    with pytest.raises(ValueError):
        lognormal_params(100, 50)


def one_hop_radio_profile(**radio):
    hop = {"name": "radio", "radio": True, "latency_ms": {"median": 20, "p95": 20.001},
           "promotion_ms": {"median": 1, "p95": 1.001}, "idle_timer_s": 10, "downlink_kbps": 1000,
           "message_bytes": 500, "loss_probability": 0.0}
    hop.update(radio)
    return {"hops": [hop], "retransmission_timeout_ms": 1000, "max_retries": 0}


def broadcast(n_vehicles, n_cells, profile, seed=1):
    """Send one setpoint to every vehicle at t=0; return each message's latency in ms."""
    sim = NetworkSim()
    sim.init("net", profile=profile, seed=seed)
    sim.create(1, "Network", cells=[i % n_cells for i in range(n_vehicles)])
    t = 0
    nxt = sim.step(0, {"network": {"setpoints": {"agg": {"vehicle": list(range(n_vehicles)),
                                                         "kw": [1.0] * n_vehicles}}}}, 10**9)
    latencies = {}
    while True:
        out = sim.get_data({"network": ["delivered"]}).get("network", {})
        for v, sent in zip(out.get("delivered", {}).get("vehicle", []), out.get("delivered", {}).get("sent_ms", [])):
            latencies[v] = t - sent
        if nxt is None:
            break
        t = nxt
        nxt = sim.step(t, {}, 10**9)
    assert len(latencies) == n_vehicles
    return np.array([latencies[v] for v in range(n_vehicles)])


def test_broadcast_queues_on_a_shared_cell():
    """500 bytes at 1 Mbit/s is 4 ms per message on the downlink: on one cell the last of 200
    chargers hears ~800 ms after the first; spread over 4 cells, a quarter of that."""
    profile = one_hop_radio_profile()
    one_cell = broadcast(200, 1, profile)
    four_cells = broadcast(200, 4, profile)
    assert one_cell.max() - one_cell.min() == pytest.approx(199 * 4, abs=2)
    assert four_cells.max() - four_cells.min() == pytest.approx(49 * 4, abs=2)
    small = broadcast(50, 1, profile)
    assert small.max() < one_cell.max()  # the last setpoint comes later as the fleet on a cell grows


def test_lost_messages_are_retried_then_given_up():
    profile = one_hop_radio_profile(loss_probability=0.5)
    profile["max_retries"] = 1
    sim = NetworkSim()
    sim.init("net", profile=profile, seed=5)
    sim.create(1, "Network", cells=[0] * 400)
    nxt = sim.step(0, {"network": {"setpoints": {"a": {"vehicle": list(range(400)), "kw": [1.0] * 400}}}}, 10**9)
    delivered, lost, retried = 0, 0, 0
    while True:
        out = sim.get_data({}).get("network", {})
        delivered += len(out.get("delivered", {}).get("vehicle", []))
        retried += sum(out.get("delivered", {}).get("retries", []))
        lost += len(out.get("lost", {}).get("vehicle", []))
        if nxt is None:
            break
        nxt = sim.step(nxt, {}, 10**9)
    assert delivered + lost == 400
    assert 0.15 < lost / 400 < 0.35  # two attempts at 50 % loss: 25 % lost
    assert retried > 0


def test_every_shipped_profile_passes_the_profile_schema():
    from v2g_testbed.cosim.scenario import NetworkProfile

    for name, profile in catalog.network_profiles().items():
        NetworkProfile.model_validate(profile)


@pytest.mark.parametrize("name", ["4g", "nbiot"])
def test_deliveries_do_not_depend_on_how_far_the_network_was_let_run_ahead(name):
    """mosaik lets the network run SimPy ahead up to its ``max_advance``, which depends on how mosaik schedules
    the world (lazy stepping, other simulators' steps). Dispatches every 100 ms to 40 vehicles, stepped once with
    the furthest horizon mosaik could give and once never ahead of now: the same messages arrive at the same
    times with the same draws (a message's journey starts after everything before its sending)."""
    sends = {t: {"vehicle": list(range(40)), "kw": [float(t % 700) / 100 - 3] * 40} for t in range(0, 3000, 100)}

    def deliveries(ahead: bool):
        sim = NetworkSim()
        sim.init("net", profile=PROFILES[name], seed=[7, 2])
        sim.create(1, "Network", cells=[i % 3 for i in range(40)])
        got, t, nxt = [], 0, None
        while t is not None and t < 20_000:
            sent = sends.get(t)
            upcoming = [s for s in sends if s > t]
            horizon = (min(upcoming) - 1 if upcoming else 20_000) if ahead else t
            nxt = sim.step(t, {"network": {"setpoints": {"agg": sent}}} if sent else {}, horizon)
            out = sim.get_data({}).get("network", {}).get("delivered", {})
            got += list(zip(out.get("vehicle", []), out.get("kw", []), out.get("sent_ms", []), out.get("time_ms", [])))
            candidates = [s for s in (nxt, min(upcoming) if upcoming else None) if s is not None]
            t = min(candidates) if candidates else None
        return sorted(got)

    far, near = deliveries(True), deliveries(False)
    assert len(far) > 500  # most of the 1,200 messages arrive within the 20 s (NB-IoT is slow)
    assert far == near


def _rows(table: dict) -> list[tuple]:
    return list(zip(*(table.get(column, []) for column in ("vehicle", "kw", "sent_ms", "time_ms"))))


def test_batched_deliveries_are_the_unbatched_ones_and_the_end_cuts_no_batch_short():
    """Batches (``batch_ms``) only change when deliveries are given, never what or with which arrival time; and a
    batch the run's end cuts short goes out at the last millisecond (``until_ms`` - 1), so everything that
    arrives by then is delivered. The recorder's held copies (``record_delivered``) add up to the same rows."""
    sends = {t: {"vehicle": list(range(30)), "kw": [float(t % 500) / 100] * 30} for t in range(0, 2600, 200)}

    def deliveries(batch_ms: int, record_ms: int = 0):
        sim = NetworkSim()
        sim.init("net", profile=PROFILES["4g"], seed=[3, 2], batch_ms=batch_ms, record_ms=record_ms, until_ms=2950)
        sim.create(1, "Network", cells=[i % 2 for i in range(30)])
        got, recorded, steps, t = [], [], [], 0
        while t is not None and t < 2950:
            steps.append(t)
            upcoming = [s for s in sends if s > t]
            nxt = sim.step(t, {"network": {"setpoints": {"agg": sends[t]}}} if t in sends else {},
                           min(upcoming) - 1 if upcoming else 10**9)
            out = sim.get_data({}).get("network", {})
            rows = out.get("delivered", {})
            assert all(a <= t for a in rows.get("time_ms", [])), "a delivery given before it arrived"
            got += _rows(rows)
            recorded += _rows(out.get("record_delivered", {}))
            t = min(s for s in (nxt, min(upcoming) if upcoming else None) if s is not None) \
                if nxt is not None or upcoming else None
        return got, recorded, steps

    unbatched, _, every = deliveries(0)
    batched, recorded, steps = deliveries(1000, record_ms=1000)
    assert len(unbatched) > 100 and max(a for *_, a in unbatched) > 2000
    assert sorted(batched) == sorted(unbatched) == sorted(recorded)
    assert len(steps) < len(every)
    assert 2949 in steps, "the batch the end cut short did not go out at the last millisecond"


def test_setpoints_stamped_after_the_step_are_refused():
    """An aggregator that runs ahead stamps each dispatch with its time; a network would send them at its step,
    before their time: it refuses them instead of moving dispatches earlier."""
    sim = NetworkSim()
    sim.init("net", profile=PROFILES["4g"], seed=[3, 2])
    sim.create(1, "Network", cells=[0, 0])
    message = {"vehicle": [0, 1], "kw": [1.0, 2.0], "seq": [1, 1], "time_ms": [100, 140]}
    with pytest.raises(ValueError, match="must not run ahead"):
        sim.step(100, {"network": {"setpoints": {"agg": message}}}, 10**9)
    sim.step(140, {"network": {"setpoints": {"agg": message}}}, 10**9)  # at or before its step: sent as always
