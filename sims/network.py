"""Communication network between aggregator and chargers: a SimPy 4 model inside a mosaik simulator.

Every setpoint is one message, a SimPy process that crosses the profile's hops in order
(see ``data/network_profiles.yaml``). On each hop it waits a lognormal latency; on the radio hop
it first pays the idle-to-connected promotion delay if the charger's modem has been idle longer
than the idle timer (messages arriving during a promotion wait for the same one) -- a setpoint sent to an
idle modem first waits for the modem's next paging occasion (``paging_cycle_ms``: LTE DRX paging, NB-IoT
eDRX, or a PSM device's periodic wake-up), and a promotion fails with ``connection_failure_probability``
(the attempt is lost, cause ``connection``, and retried) -- and then queues on its cell's downlink (a ``simpy.Resource`` of capacity 1
held for ``message_bytes * 8 / downlink_kbps``), so a fleet-wide broadcast reaches the last charger
of a crowded cell later than the first. A transmission attempt is lost with the hop's
``loss_probability``; it is retried after ``retransmission_timeout_ms`` up to ``max_retries`` times,
then the message is lost.

Faults (sim param ``faults``, times in ms): ``{"kind": "outage", "hop": name, "cell": k or None,
"from_ms", "to_ms"}`` loses every attempt on that hop (for that cell's chargers only, if given) in
the window; ``"burst_loss"`` is the same with a ``loss_probability``; ``{"kind": "silent",
"vehicles": [...], "from_ms", "to_ms"}`` makes those chargers stop answering. An attempt's fate is
decided when it starts; a message given up records the cause of its last failed attempt.

The SimPy clock counts microseconds, so sub-millisecond serialisation times add up correctly; a
message reaches the fleet at the first mosaik millisecond at or after its arrival.

Input:  ``Network.setpoints`` (trigger) ``{"vehicle": [...], "kw": [...], "seq": [...]}`` sent at the step's
        time (``seq``, optional, travels with each message: messages can overtake each other);
        ``Network.telemetry`` (trigger) ``{"vehicle", "kw", "time_ms"}``: meter reports going up, each
        crossing the hops in reverse order, on the cell's uplink (``uplink_kbps``, else the downlink
        rate), with the same modem promotion, losses and faults.
Output: ``Network.delivered`` ``{"vehicle", "kw", "sent_ms", "retries", "seq", "time_ms"}`` (what arrived
        since the last output, each with its arrival time) and
        ``Network.lost`` ``{"vehicle", "kw", "sent_ms", "retries", "cause"}`` (what was given up now;
        cause ``loss``, ``outage``, ``burst_loss`` or ``silent``); ``Network.telemetry_delivered``
        ``{"vehicle", "p_kw", "metered_ms", "retries", "time_ms"}`` and ``Network.telemetry_lost``.
For a recorder, ``record_delivered``, ``record_lost``, ``record_telemetry_delivered`` and ``record_telemetry_lost``:
the same tables held and given together about every ``record_ms`` (``v2g_testbed.sims.Held``: a recorder steps
that often, not at every delivery).
Sim params: ``profile`` (a profile dict), ``seed``, ``faults``, ``record_ms`` (default 0: each step's at once) and
``until_ms`` (the end: nothing held is left behind, and a batch the end cuts short goes out at its last
millisecond), ``batch_ms`` (0: output at every
millisecond something arrives; N > 0: output at multiples of N ms what arrived since, each message with
its own ``time_ms`` -- far fewer mosaik steps for a receiver that applies messages at their own times,
like ``FleetSim``), ``idle_step_ms`` (0: with nothing in flight, no step of its own; N > 0: a step at the next
multiple of N ms, for mosaik 3.6: see ``v2g_testbed.sims.WakeBound``). Create params: ``cells`` (cell index per
vehicle).
"""

from __future__ import annotations

import math

import mosaik_api_v3
import numpy as np
import simpy

from v2g_testbed.sims import Held, WakeBound, require_milliseconds

US_PER_MS = 1000
Z95 = 1.6448536269514722  # standard normal 95th percentile

OUTPUTS = ("delivered", "lost", "telemetry_delivered", "telemetry_lost")
META = {
    "api_version": "3.0",
    "type": "event-based",
    "models": {
        "Network": {
            "public": True,
            "params": ["cells"],
            "attrs": ["setpoints", "telemetry", *OUTPUTS, *(f"record_{attr}" for attr in OUTPUTS)],
        }
    },
}


def lognormal_params(median: float, p95: float) -> tuple[float, float]:
    """(mu, sigma) of a lognormal distribution with the given median and 95th percentile."""
    if not 0 < median <= p95:
        raise ValueError(f"latency needs 0 < median <= p95, got median={median}, p95={p95}")
    return math.log(median), math.log(p95 / median) / Z95


class LatencyModel:
    """Draws the random delays of one profile from a seeded generator."""

    def __init__(self, profile: dict, seed: int):
        self.rng = np.random.default_rng(seed)
        self.hops = []
        for hop in profile["hops"]:
            h = dict(hop)
            h["latency"] = lognormal_params(hop["latency_ms"]["median"], hop["latency_ms"]["p95"])
            if hop.get("radio"):
                h["promotion"] = lognormal_params(hop["promotion_ms"]["median"], hop["promotion_ms"]["p95"])
                h["serialisation_us"] = round(hop["message_bytes"] * 8 / hop["downlink_kbps"] * US_PER_MS)
                up_kbps = hop.get("uplink_kbps") or hop["downlink_kbps"]
                h["uplink_serialisation_us"] = round(hop["message_bytes"] * 8 / up_kbps * US_PER_MS)
            self.hops.append(h)
        self.rto_us = round(profile.get("retransmission_timeout_ms", 1000) * US_PER_MS)
        self.max_retries = int(profile.get("max_retries", 0))

    def draw_us(self, params: tuple[float, float]) -> int:
        return round(self.rng.lognormal(*params) * US_PER_MS)

    def lost(self, probability: float) -> bool:
        return probability > 0 and self.rng.random() < probability


class NetworkSim(mosaik_api_v3.Simulator):
    def __init__(self):
        super().__init__(META)
        self.env = simpy.Environment()
        self.arrived: list[tuple] = []  # (arrival us, ...) output at this step
        self.given_up: list[tuple] = []
        self.pending_arrived: list[tuple] = []  # found by running ahead, to output at a later step
        self.pending_given_up: list[tuple] = []
        self.pending_up: list[tuple] = []  # telemetry reports, the same way up
        self.pending_up_lost: list[tuple] = []
        self.up, self.up_lost = [], []
        self.held = Held()
        self.output: dict = {}

    def init(self, sid, time_resolution=0.001, profile=None, seed=0, faults=(), batch_ms=0, idle_step_ms=0,
             record_ms=0, until_ms=None):
        require_milliseconds("NetworkSim", time_resolution)
        self.held = Held(record_ms, until_ms)
        self.last_ms = math.inf if until_ms is None else int(until_ms) - 1  # the last step before until
        self.model = LatencyModel(profile, seed)
        self.seed = seed
        self.batch_ms = int(batch_ms)
        # woken by every dispatch: see WakeBound
        self.wake_bound = WakeBound(self.batch_ms or 100, idle_ms=int(idle_step_ms))
        self.faults = [dict(f, from_us=f["from_ms"] * US_PER_MS, to_us=f["to_ms"] * US_PER_MS) for f in faults]
        for f in self.faults:
            if f["kind"] != "silent" and f["hop"] not in {h["name"] for h in self.model.hops}:
                raise ValueError(f"fault on unknown hop {f['hop']!r}")
            f["vehicles"] = set(f.get("vehicles", ()))
        return self.meta

    def _paging_wait_us(self, hop: dict, vehicle: int, now: int) -> int:
        """Time from ``now`` (us) to the modem's next paging occasion (0 without a paging cycle)."""
        cycle_ms = hop.get("paging_cycle_ms")
        if not cycle_ms:
            return 0
        cycle = round(cycle_ms * US_PER_MS)
        offset = round(self.paging_phase[vehicle] * cycle)
        return (offset - now) % cycle

    def _attempt_loss(self, hop: dict, vehicle: int, now: int) -> tuple[float, str]:
        """(loss probability, cause) of an attempt starting at ``now`` (us) on ``hop`` for ``vehicle``."""
        for f in self.faults:
            if not f["from_us"] <= now < f["to_us"]:
                continue
            if f["kind"] == "silent":
                if vehicle in f["vehicles"]:
                    return 1.0, "silent"
            elif f["hop"] == hop["name"] and (f.get("cell") is None or f["cell"] == self.cell_of[vehicle]):
                return (1.0, "outage") if f["kind"] == "outage" else (f["loss_probability"], "burst_loss")
        return hop.get("loss_probability", 0.0), "loss"

    def create(self, num, model, cells=()):
        if num != 1:
            raise ValueError("NetworkSim creates one Network entity")
        self.cell_of = np.asarray(cells, dtype=int)
        n_cells = int(self.cell_of.max()) + 1 if self.cell_of.size else 0
        self.cells = [simpy.Resource(self.env, capacity=1) for _ in range(n_cells)]
        self.uplinks = [simpy.Resource(self.env, capacity=1) for _ in range(n_cells)]
        self.modem_active_until = np.full(self.cell_of.size, -np.inf)  # us; idle after this
        self.modem_ready_at = np.zeros(self.cell_of.size, dtype=np.int64)  # us; end of the promotion under way
        self.connection_ok = np.ones(self.cell_of.size, dtype=bool)  # outcome of that promotion
        # each modem's paging occasions: a phase within the cycle, fixed per modem (3GPP derives it from the
        # UE identity), drawn from a generator of its own so the latency draws stay the same stream
        phase_rng = np.random.default_rng([*np.atleast_1d(self.seed).tolist(), 5])
        self.paging_phase = phase_rng.random(self.cell_of.size)
        return [{"eid": "network", "type": model}]

    def _message(self, vehicle: int, kw: float, sent_ms: int, up: bool = False, seq: int = -1):
        """One setpoint's journey. ``clock`` is the message's own time: waits that touch no shared state
        (latencies, retransmission timeouts) only move it forward, and SimPy is yielded to only where
        shared state is involved (the modem and the cell) and at the end -- the same journey in fewer
        SimPy events. A hop's fate is decided at the time the attempt starts."""
        env, model = self.env, self.model
        clock = sent_ms * US_PER_MS
        retries = 0
        # queue names, looked up when used: step() replaces the lists as it hands messages over
        arrived, given_up = ("pending_up", "pending_up_lost") if up else ("pending_arrived", "pending_given_up")
        for hop in (reversed(model.hops) if up else model.hops):
            while True:
                connected = True
                if hop.get("radio"):
                    if clock > env.now:
                        yield env.timeout(clock - env.now)
                    if env.now > self.modem_active_until[vehicle]:  # idle: one connection serves all waiting
                        if self.modem_ready_at[vehicle] <= env.now:
                            # the network reaches an idle modem at its next paging occasion; a modem that
                            # sends (telemetry) starts its own connection at once; either way a promotion
                            # follows, which fails (connection setup) with its probability
                            paging = 0 if up else self._paging_wait_us(hop, vehicle, env.now)
                            self.modem_ready_at[vehicle] = env.now + paging + model.draw_us(hop["promotion"])
                            self.connection_ok[vehicle] = not model.lost(hop.get("connection_failure_probability", 0))
                        yield env.timeout(self.modem_ready_at[vehicle] - env.now)
                        connected = bool(self.connection_ok[vehicle])
                    if connected:
                        link = (self.uplinks if up else self.cells)[self.cell_of[vehicle]]
                        with link.request() as slot:
                            yield slot
                            yield env.timeout(hop["uplink_serialisation_us"] if up else hop["serialisation_us"])
                        self.modem_active_until[vehicle] = env.now + hop["idle_timer_s"] * 1e6
                    clock = env.now
                # a failed connection setup loses the attempt (the modem stays idle); otherwise its hop's chance
                if connected:
                    probability, cause = self._attempt_loss(hop, vehicle, clock)
                else:
                    cause = "connection"
                clock += model.draw_us(hop["latency"])
                if connected and not model.lost(probability):
                    break
                if retries >= model.max_retries:
                    if clock > env.now:
                        yield env.timeout(clock - env.now)
                    getattr(self, given_up).append((env.now, vehicle, kw, sent_ms, retries, cause, seq))
                    return
                retries += 1
                clock += model.rto_us
        if clock > env.now:
            yield env.timeout(clock - env.now)
        getattr(self, arrived).append((env.now, vehicle, kw, sent_ms, retries, seq))

    def step(self, time, inputs, max_advance):
        """Deliver what arrives up to ``time``; then run SimPy ahead, as far as ``max_advance`` allows
        (no new setpoint can arrive before then), to find when the next message arrives, so that
        mosaik steps this simulator only when something is delivered or lost.

        SimPy is stepped event by event (not env.run(until=...): SimPy 4.1 leaves its stop event
        queued, so peek() would never report an empty schedule). Everything before ``time`` happens before the
        messages sent at ``time`` start their journeys: their random draws then follow every earlier one, however
        far mosaik let the network run ahead at its previous step."""
        now_us = time * US_PER_MS
        while self.env.peek() < now_us:
            self.env.step()
        for message in inputs.get("network", {}).get("setpoints", {}).values():
            if message.get("time_ms") and max(message["time_ms"]) > time:  # they would leave before their time
                raise ValueError(f"NetworkSim at {time} ms got setpoints dispatched at {max(message['time_ms'])} ms: "
                                 "an aggregator in front of a network must not run ahead (ControllerSim run_ahead)")
            seqs = message.get("seq") or [-1] * len(message["vehicle"])
            for vehicle, kw, seq in zip(message["vehicle"], message["kw"], seqs):
                self.env.process(self._message(int(vehicle), float(kw), time, seq=int(seq)))
        for report in inputs.get("network", {}).get("telemetry", {}).values():
            if report:
                for vehicle, kw, at in zip(report["vehicle"], report["kw"], report["time_ms"]):
                    self.env.process(self._message(int(vehicle), float(kw), int(at), up=True))
        while self.env.peek() <= now_us:
            self.env.step()
        queues = ("pending_arrived", "pending_given_up", "pending_up", "pending_up_lost")
        self.arrived, self.given_up, self.up, self.up_lost = (
            [m for m in getattr(self, q) if m[0] <= now_us] for q in queues)
        for q in queues:
            setattr(self, q, [m for m in getattr(self, q) if m[0] > now_us])
        horizon_us = (max_advance + 1) * US_PER_MS - 1  # the last microsecond of max_advance
        while not any(getattr(self, q) for q in queues) and self.env.peek() <= horizon_us:
            self.env.step()
        upcoming = [m[0] for q in queues for m in getattr(self, q)]
        nxt = min(upcoming) if upcoming else self.env.peek()
        if nxt == math.inf:
            return self._hold(self.wake_bound.next_step(time, None))
        nxt_ms = max(time + 1, math.ceil(nxt / US_PER_MS))
        if self.batch_ms and upcoming:  # up to the next batch boundary, or the last millisecond if that comes first
            boundary = -(-nxt_ms // self.batch_ms) * self.batch_ms
            nxt_ms = self.last_ms if nxt_ms <= self.last_ms < boundary else boundary
        return self._hold(self.wake_bound.next_step(time, nxt_ms))

    def _hold(self, next_step):
        """This step's tables, and for the recorder the held ones when due (``Held``)."""
        self.output = self._tables()
        for attr, table in self.output.items():
            self.held.add(f"record_{attr}", table)
        self.output.update(self.held.take(next_step))
        return next_step

    def get_data(self, outputs):
        return {"network": self.output} if self.output else {}

    def _tables(self) -> dict:
        """What arrived and what was given up at this step, by output."""
        out = {}
        if self.arrived:
            at, v, kw, sent, retries, seq = zip(*self.arrived)
            out["delivered"] = {"vehicle": list(v), "kw": list(kw), "sent_ms": list(sent), "retries": list(retries),
                                "seq": list(seq), "time_ms": [math.ceil(a / US_PER_MS) for a in at]}
        if self.given_up:
            at, v, kw, sent, retries, cause, seq = zip(*self.given_up)
            out["lost"] = {"vehicle": list(v), "kw": list(kw), "sent_ms": list(sent), "retries": list(retries),
                           "cause": list(cause), "seq": list(seq), "time_ms": [math.ceil(a / US_PER_MS) for a in at]}
        if self.up:
            at, v, kw, sent, retries, _ = zip(*self.up)
            out["telemetry_delivered"] = {"vehicle": list(v), "p_kw": list(kw), "metered_ms": list(sent),
                                          "retries": list(retries), "time_ms": [math.ceil(a / US_PER_MS) for a in at]}
        if self.up_lost:
            at, v, kw, sent, retries, cause, _ = zip(*self.up_lost)
            out["telemetry_lost"] = {"vehicle": list(v), "metered_ms": list(sent), "cause": list(cause),
                                     "time_ms": [math.ceil(a / US_PER_MS) for a in at]}
        return out


if __name__ == "__main__":
    mosaik_api_v3.start_simulation(NetworkSim(), "v2g-testbed network simulator")
