"""A mosaik world of your own, built by hand from v2g-testbed's simulators (README: "Reusing the simulators").

A 1 MW Dynamic Containment Low contract, 60 VW ID.3 and 60 Nissan Ariya on 10 kW DC chargers at two
CIGRE MV buses, a step to 49.5 Hz at 2 s; a small collector of your own stores the fleet's power and the
lowest grid voltage. Run: python docs/examples/mosaik_world.py
"""

import mosaik
import mosaik_api_v3

from v2g_testbed.sims import catalog
from v2g_testbed.sims.controller import aggregator_vehicles
from v2g_testbed.sims.fleet import fleet_parameters

SIM_CONFIG = {
    "Frequency": {"python": "v2g_testbed.sims.frequency:FrequencySim"},
    "Aggregator": {"python": "v2g_testbed.sims.controller:ControllerSim"},   # the aggregator's simulator class
    "Fleet": {"python": "v2g_testbed.sims.fleet:FleetSim"},
    "Grid": {"python": "v2g_testbed.sims.grid:GridSim"},
    "Collector": {"python": "__main__:Collector"},
}


collected: dict[str, dict] = {}  # the collector runs in this process (a "python" starter): it writes here


class Collector(mosaik_api_v3.Simulator):
    """Stores what it is given. The fleet's ``p_kw`` arrives in batches ``{"time_ms": [...], "value": [...]}``
    (the samples since its last step: it samples every 10 ms but steps every 100 ms); the grid's outputs
    are one value per power flow."""

    def __init__(self):
        super().__init__({"api_version": "3.0", "type": "event-based",
                          "models": {"Collector": {"public": True, "params": [], "attrs": [], "any_inputs": True}}})
        self.fleet_kw = collected.setdefault("fleet_kw", {})   # time (ms) -> kW, kept where main() reads it
        self.v_min_pu = collected.setdefault("v_min_pu", {})   # time (ms) -> pu

    def create(self, num, model):
        return [{"eid": "collector", "type": model}]

    def step(self, time, inputs, max_advance):
        for attr, sources in inputs.get("collector", {}).items():
            for value in sources.values():
                if attr == "p_kw":  # a batch of samples, each at its own time
                    self.fleet_kw.update(zip(value["time_ms"], value["value"]))
                elif attr == "v_min_pu":
                    self.v_min_pu[time] = value
        return None

    def get_data(self, outputs):
        return {}


def main():
    # time_resolution=0.001: every simulator here counts milliseconds (each refuses anything else), so
    # until=10_000 below is ten seconds
    world = mosaik.World(SIM_CONFIG, time_resolution=0.001, skip_greetings=True, configure_logging=False)
    vehicles = fleet_parameters([
        {"model": "VW ID.3 Pro", "count": 60, "charger_kw": 10, "bus": "Bus 5"},
        {"model": "Nissan Ariya", "count": 60, "charger_kw": 10, "bus": "Bus 6", "soc": 0.6},
    ], seed=1, spread_pct=10, assume_v2g=True)  # a what-if: these model years cannot export (v2g catalog)
    service = dict(catalog.services()["DC-L"], contracted_kw=1000.0)

    frequency = world.start("Frequency", nominal_hz=50.0, events=[{"type": "step", "at_s": 2, "to_hz": 49.5}],
                            until_ms=10_000).Frequency()
    aggregator = world.start("Aggregator", measurement_delay_ms=100).Aggregator(
        services=[service], vehicles=aggregator_vehicles(vehicles), nominal_hz=50.0)
    fleet = world.start("Fleet", step_ms=100, sample_ms=10).Fleet(vehicles=vehicles)
    grid = world.start("Grid", network="cigre_mv", step_ms=1000).Grid(ev_buses=["Bus 5", "Bus 6"])
    collector = world.start("Collector").Collector()

    world.connect(frequency, aggregator, "f_hz")
    world.connect(aggregator, fleet, "setpoints")
    loads = {load.eid: load for load in grid.children}  # ChargingLoad per bus, its eid the bus reference
    for bus in fleet.children:                           # the fleet's Bus children carry the same eids
        world.connect(bus, loads[bus.eid], "p_kw")
    world.connect(fleet, collector, "p_kw")
    world.connect(grid, collector, "v_min_pu")
    world.set_initial_event(frequency.sid)
    world.run(until=10_000, print_progress=False)

    fleet_kw, v_min_pu = collected["fleet_kw"], collected["v_min_pu"]
    t_full = next((t for t, kw in sorted(fleet_kw.items()) if kw <= -990.0), None)
    print(f"fleet power at 10 s: {fleet_kw[max(fleet_kw)]:.1f} kW (1000 kW contracted, exporting); "
          f"99 % reached at {t_full} ms" + (f" ({(t_full - 2000) / 1000:.2f} s after the step)" if t_full else ""))
    print(f"lowest voltage on the grid: {min(v_min_pu.values()):.3f} pu over {len(v_min_pu)} power flows")
    return collected


if __name__ == "__main__":
    main()
