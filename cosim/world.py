"""Builds the mosaik world for a scenario: the one place that knows how the simulators connect.

    Frequency --f_hz--> Controller --setpoints--> [Network] --delivered--> Fleet --Bus.p_kw--> Grid
         \\                  \\                        \\                     \\                  \\
          +------------------+------------------------+---------------------+------------------+--> Recorder

With network profile ``local`` the Network simulator is left out: each charger measures the
frequency itself (the Controller then stands for the controllers inside the chargers). With a
``system`` frequency event, a swing-equation model replaces the event generator and, in closed loop,
reads the fleet's total power back (time-shifted by one step).

Known ahead (every frequency event but the system model), the frequency goes to the Controller a stride at a
time (the grid step; the row interval when meter reports go up), each change at its own time (``f_samples``); the
Network gives its deliveries a stride at a time, each setpoint at its own arrival time, which the Fleet applies
then. Neither changes what the simulators compute, only how often mosaik steps them (tested:
``tests/test_frequency.py``, ``tests/test_network.py``).
"""

from __future__ import annotations

import mosaik
import numpy as np

from v2g_testbed.sims import PHASES, catalog, record
from v2g_testbed.sims.controller import aggregator_vehicles
from v2g_testbed.sims.fleet import PHASE_OUTPUTS, bus_reactive, fleet_rng, hours_of, last_row_ms, sample_vehicles

SIM_CONFIG = {
    "Frequency": {"python": "v2g_testbed.sims.frequency:FrequencySim"},
    "SystemFrequency": {"python": "v2g_testbed.sims.frequency:SystemFrequencySim"},
    "Controller": {"python": "v2g_testbed.sims.controller:ControllerSim"},
    "Network": {"python": "v2g_testbed.sims.network:NetworkSim"},
    "Fleet": {"python": "v2g_testbed.sims.fleet:FleetSim"},
    "Grid": {"python": "v2g_testbed.sims.grid:GridSim"},
    "Recorder": {"python": "v2g_testbed.sims.recorder:RecorderSim"},
}

TIME_RESOLUTION_S = 0.001  # one mosaik step is one millisecond
# the network with nothing in flight still steps once a second: under mosaik 3.6 each wake-up of a simulator
# with no step of its own leaves a wait behind until the end of the run (sims.WakeBound)
IDLE_STEP_MS = 1000
MODULES = {"fleet": ("Fleet", "v2g_testbed.sims.fleet"), "grid": ("Grid", "v2g_testbed.sims.grid"), "network": ("Network", "v2g_testbed.sims.network")}


def sim_config(execution) -> dict:
    """SIM_CONFIG with the chosen simulators started as processes or connected to, not imported."""
    config = {name: dict(entry) for name, entry in SIM_CONFIG.items()}
    for role in execution.separate_processes:
        name, module = MODULES[role]
        config[name] = {"cmd": f"%(python)s -m {module} %(addr)s"}
    for role, address in execution.connect.items():
        config[MODULES[role][0]] = {"connect": address}
    return config


def sample_fleet(loaded) -> dict[str, list]:
    """Per-vehicle parameters for this scenario and seed (reproducible)."""
    fleet = loaded.scenario.fleet
    # a plugged-in vehicle gives a service only what its departure energy spares, over the longest delivery
    honour_h = max((s["delivery_duration_min"] for s in loaded.services), default=0.0) / 60.0
    return sample_vehicles(loaded.groups, fleet.spread_pct, fleet_rng(loaded.scenario.seed), fleet.spread_distribution,
                           loaded.load_phases, hours_of(fleet.time_of_day), honour_h, weekday_of(loaded.scenario))


def weekday_of(scenario) -> int | None:
    """The run's day (0 Monday .. 6 Sunday): ``fleet.weekday``, else the day of ``grid.profile_time``, else None."""
    from datetime import date

    from v2g_testbed.sims.fleet import WEEKDAYS

    if scenario.fleet.weekday is not None:
        return WEEKDAYS.index(scenario.fleet.weekday)
    if scenario.grid.profile_time is not None:
        return date.fromisoformat(scenario.grid.profile_time[:10]).weekday()
    return None


def cells_of(n_vehicles: int, profile: dict) -> list[int]:
    """Chargers fill cells in order, ``chargers_per_cell`` each (all on one cell if not set)."""
    per_cell = int(profile.get("chargers_per_cell") or n_vehicles or 1)
    return [i // per_cell for i in range(n_vehicles)]


def held_attrs(entity: str, *names: str) -> list[tuple[str, str]]:
    """(source, recorder) attribute pairs of recorded outputs ``names`` whose source holds them for a recorder
    (``sims.Held``: the source gives ``record_<attr>``, the recorder stores it as ``<attr>``)."""
    return [("record_" + attr, attr) for attr in record.attrs(entity, *names)]


def network_faults(loaded, n_vehicles: int) -> list[dict]:
    """Faults in the form NetworkSim takes: times in ms, silent chargers drawn with the seed."""
    rng = np.random.default_rng([loaded.scenario.seed, 3])
    end_ms = round(loaded.scenario.duration_s * 1000)
    out = []
    for f in loaded.scenario.network.faults:
        window = {"from_ms": round(f.from_s * 1000), "to_ms": end_ms if f.to_s is None else round(f.to_s * 1000)}
        if f.kind == "silent_chargers":
            chosen = sorted(rng.choice(n_vehicles, size=f.count, replace=False).tolist())
            out.append({"kind": "silent", "vehicles": chosen, **window})
        else:
            out.append({"kind": f.kind, "hop": f.hop, "cell": f.cell, "loss_probability": f.loss_probability,
                        **window})
    return out


def build(world: mosaik.World, loaded, vehicles: dict, h5_path: str) -> dict:
    """Start and connect every simulator in ``world``. Returns the entities by role."""
    sc = loaded.scenario
    nominal = catalog.nominal_hz()
    profile = loaded.network_profile

    until_ms = round(sc.duration_s * 1000)
    report_ms = round(sc.network.report_interval_s * 1000) if sc.network.report_interval_s else 0
    # the fleet steps on its own only as often as the grid reads it (per-vehicle rows every vehicle_sample_ms are
    # taken inside its steps, like the 10 ms samples); with a closed-loop system model or meter reports going up
    # it keeps stepping every vehicle_sample_ms, as those read it that often
    stride_ms = (round(sc.grid.step_s * 1000) if loaded.system is None and not report_ms
                 else sc.outputs.vehicle_sample_ms)
    if loaded.system is None:
        # a known profile: the controller gets it a stride at a time, each sample at its own time
        frequency = world.start("Frequency", nominal_hz=nominal, sample_ms=sc.frequency.sample_ms,
                                events=loaded.frequency_events, until_ms=until_ms,
                                record_ms=stride_ms, ahead_ms=stride_ms).Frequency()
    else:
        frequency = world.start("SystemFrequency", nominal_hz=nominal, system=loaded.system,
                                replication_factor=loaded.system["replication_factor"]).System()
    # with no network leg and a known profile, nothing reaches the aggregator between two strides of the frequency:
    # it runs ahead to the next, each dispatch stamped with its time, and the fleet applies each at that time
    controller = world.start("Controller", measurement_delay_ms=profile["measurement_delay_ms"],
                             dispatch_interval_ms=profile["dispatch_interval_ms"], record_ms=stride_ms,
                             until_ms=until_ms, run_ahead=loaded.system is None and not profile["hops"]).Aggregator(
        services=loaded.services, vehicles=aggregator_vehicles(vehicles),
        nominal_hz=nominal)
    fleet = world.start("Fleet", step_ms=sc.outputs.vehicle_sample_ms, sample_ms=sc.outputs.sample_ms, stride_ms=stride_ms,
                        until_ms=until_ms, record_ms=stride_ms,
                        telemetry_ms=round(1000 / sc.fleet.telemetry_hz), report_ms=report_ms).Fleet(
        vehicles=vehicles)
    bus_refs = list(dict.fromkeys(str(b) for b in vehicles["bus"]))
    grid = world.start("Grid", network=sc.grid.network, base_dir=str(loaded.base_dir),
                       step_ms=round(sc.grid.step_s * 1000), base_load_scale=sc.grid.base_load_scale,
                       profile_start_ms=sc.grid.profile_start_ms(), power_flow=loaded.power_flow, solver=loaded.solver,
                       copies=sc.grid.copies).Grid(
        ev_buses=[_bus_ref(b) for b in bus_refs], reactive=bus_reactive(loaded.groups, vehicles))
    recorder = world.start("Recorder", path=str(h5_path), heartbeat_steps=stride_ms,
                           dtypes=record.dtypes(), units=record.units()).Recorder()

    world.connect(frequency, controller, "f_hz" if loaded.system is not None else "f_samples")
    if profile["hops"]:
        n = len(vehicles["bus"])
        # deliveries in batches a stride long, each setpoint at its own time (the fleet applies each then); the last
        # batch at the fleet's last row (FleetSim's last step: what arrives later is never applied)
        network = world.start("Network", profile=profile, seed=[sc.seed, 2], faults=network_faults(loaded, n),
                              batch_ms=stride_ms, idle_step_ms=IDLE_STEP_MS, record_ms=stride_ms,
                              until_ms=last_row_ms(until_ms, sc.outputs.vehicle_sample_ms) + 1).Network(
            cells=cells_of(n, profile))
        world.connect(controller, network, "setpoints")
        world.connect(network, fleet, ("delivered", "setpoints"))
        recorded = ["delivered", "lost"]
        if report_ms:  # meter reports go up through the same network (a loop: shifted by one step)
            world.connect(fleet, network, ("reports", "telemetry"), time_shifted=1)
            recorded += ["telemetry_delivered", "telemetry_lost"]
        world.connect(network, recorder, *held_attrs(record.NETWORK, *recorded))
    else:
        network = None
        world.connect(controller, fleet, "setpoints")
    loads = {child.eid: child for child in grid.children}
    unbalanced = loaded.power_flow == "unbalanced"
    for bus in fleet.children:  # same eid, same bus; unbalanced: each phase's load; balanced: the total
        world.connect(bus, loads[bus.eid],
                      *(PHASE_OUTPUTS if unbalanced else ("p_kw",)))

    if loaded.system is None:  # held and given together (sims.Held): the recorder steps once a stride for them
        world.connect(frequency, recorder, *held_attrs(record.FREQUENCY, "frequency"))
    else:
        world.connect(frequency, recorder, *record.attrs(record.FREQUENCY, "frequency", "system_support"))
        # closed loop: the system sees the fleet's power as of the fleet's last step (time-shifted by a millisecond;
        # the fleet steps every vehicle_sample_ms here, the system model every 20 ms, so the power it sees is up
        # to one vehicle_sample_ms old: on the 2019 event with 400 fleets, 100 ms against 20 ms moved the nadir
        # by 1.5e-7 Hz)
        world.connect(fleet, frequency, ("total_p_kw", "fleet_p_kw"), time_shifted=True,
                      initial_data={"total_p_kw": None})
    world.connect(controller, recorder, *held_attrs(record.AGGREGATOR, "setpoints", "required"))
    world.connect(fleet, recorder, *record.attrs(record.FLEET, "fleet_power", "metered_power", "vehicle_power",
                                                 "vehicle_soc", "soc_mean", "limit_events"))
    voltages = ([f"voltage_{p}" for p in PHASES] + ["unbalance", "max_unbalance"]) if unbalanced else ["voltage"]
    world.connect(grid, recorder, *record.attrs(record.GRID, *voltages, "line_loading", "trafo_loading", "v_min", "v_max",
                                                "max_line_loading", "max_trafo_loading", "converged", "bus_names",
                                                "bus_kv", "line_names", "trafo_names", "grid_solver"))
    if loaded.system is None:
        world.set_initial_event(frequency.sid)
    return {"frequency": frequency, "controller": controller, "network": network, "fleet": fleet,
            "grid": grid, "recorder": recorder}


def _bus_ref(ref: str):
    """Bus references travel as strings; an all-digit one is a pandapower bus index."""
    return int(ref) if ref.isdigit() else ref
