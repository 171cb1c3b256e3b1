"""Hosting capacity: how many chargers a feeder takes before a voltage or loading limit breaks.

For each feeder (the part of the grid below a substation busbar, reached through one line) and each
direction (all chargers importing at full power; all exporting, for V2G), a Monte Carlo of placements:
in placement m, charger k sits at a bus drawn at random from the feeder's buses, so the first N
chargers of a placement are a fixed set and a larger N only adds chargers. For each placement the
largest N that keeps every bus voltage inside [v_min, v_max] and every line and transformer at or
below the loading limit is found by doubling then bisection (O(log N) power flows, not N). A power
flow that does not converge counts as a violation (voltage collapse).

Chargers go to the feeder's buses that have a load (the customers; ``at="all"``: any bus; a feeder
with no load at all uses every bus). Single-phase chargers each sit on one phase (drawn with the
placement, in turn, one given phase, or the phase of the single-phase load at their bus); with an unbalanced (three-phase) power flow every phase's
voltage counts, and the voltage unbalance must stay at or below ``unbalance_pct``. Without one, a
single-phase charger is a balanced load like any other.

The package: ``checks`` (limits with chargers added: the whole network, or one supply group), ``search``
(placements and the capacity search), ``studies`` (snapshot, time series, service), ``output`` (tables, plots,
map), ``subnetwork`` (a supply group cut out of the network); the feeders and supply groups themselves are
topology, in ``v2g_testbed.sims.topology``.
"""

from v2g_testbed.analysis.hosting.checks import GroupCheck, Violations, WholeNetworkCheck, group_checks
from v2g_testbed.analysis.hosting.output import (bus_coordinates, draw_map, write, write_service_timeseries,
                                                 write_timeseries)
from v2g_testbed.analysis.hosting.search import binding_summary, capacity, lockstep, phase_shares, powers
from v2g_testbed.analysis.hosting.studies import combine_service, hosting_capacity, hosting_timeseries, service_hosting
from v2g_testbed.sims.topology import feeder_table, feeders

__all__ = ["GroupCheck", "Violations", "WholeNetworkCheck", "binding_summary", "bus_coordinates", "capacity",
           "draw_map", "feeder_table", "feeders", "group_checks", "hosting_capacity", "hosting_timeseries",
           "lockstep", "phase_shares", "powers", "service_hosting", "combine_service", "write", "write_service_timeseries",
           "write_timeseries"]
