"""The run record: every name that crosses from the simulators to the analysis, defined once.

A co-simulation stores what its simulators output in ``timeseries.h5`` (``sims/recorder.py``): one group
``/<entity>/<attribute>`` per recorded output, plus the per-vehicle table ``/vehicles/<field>``. This module
names them: the entity ids the simulators create, each recorded output (its entity, attribute, unit and
shape) and the per-vehicle fields. ``cosim/world.py`` connects the recorder by these names, and the analysis
reads the file only through ``v2g_testbed.analysis.timeseries.RunRecord``, which takes these names: no HDF5 path is
spelled anywhere else, so a renamed output fails at one definition instead of drifting in a copy.
"""

from __future__ import annotations

from dataclasses import dataclass

from v2g_testbed.sims import PHASES
from v2g_testbed.sims.obc import OPTIONAL_PARAMETERS, PARAMETERS

# entity ids, as each simulator's create() names its one entity
FREQUENCY, AGGREGATOR, NETWORK, FLEET, GRID = "frequency", "aggregator", "network", "fleet", "grid"
VEHICLES = "vehicles"  # the per-vehicle table the runner writes beside the series


@dataclass(frozen=True)
class Recorded:
    """One recorded output: ``series`` (time, value), ``matrix`` (time, one value per vehicle/bus/line),
    ``table`` (rows with their own times), or ``labels`` (names, stored once)."""

    entity: str
    attr: str
    unit: str
    kind: str = "series"
    columns: str | None = None  # a matrix: what its columns are (VEHICLES: vehicle index, else a labels output)
    dtype: str = "float64"      # how a matrix is stored (float32 where ~7 digits are plenty and size matters)

    @property
    def path(self) -> str:
        return f"{self.entity}/{self.attr}"


def _r(entity, attr, unit, kind="series", columns=None, dtype="float64") -> Recorded:
    return Recorded(entity, attr, unit, kind, columns, dtype)


SERIES: dict[str, Recorded] = {
    "frequency": _r(FREQUENCY, "f_hz", "Hz"),
    "system_support": _r(FREQUENCY, "support_mw", "MW"),
    "required": _r(AGGREGATOR, "required_kw", "kW"),
    "setpoints": _r(AGGREGATOR, "setpoints", "kW", "table"),          # vehicle, kw, seq; time_ms = sent
    "delivered": _r(NETWORK, "delivered", "kW", "table"),             # vehicle, kw, sent_ms, retries, seq, time_ms
    "lost": _r(NETWORK, "lost", "kW", "table"),                       # ... cause
    "telemetry_delivered": _r(NETWORK, "telemetry_delivered", "kW", "table"),
    "telemetry_lost": _r(NETWORK, "telemetry_lost", "kW", "table"),
    "fleet_power": _r(FLEET, "p_kw", "kW"),
    "metered_power": _r(FLEET, "metered_p_kw", "kW"),
    "vehicle_power": _r(FLEET, "vehicle_p_kw", "kW", "matrix", VEHICLES, "float32"),
    # float32 as well: limits compare it within v2g_testbed.sims.obc.SOC_AT_LIMIT (halves the largest write of a big run)
    "vehicle_soc": _r(FLEET, "vehicle_soc", "1", "matrix", VEHICLES, "float32"),
    "soc_mean": _r(FLEET, "soc_mean", "1"),
    # the model's own events: each vehicle coming to its reserve (limit -1) or full (+1), at the moment it acted
    "limit_events": _r(FLEET, "limit_events", "1", "table"),             # vehicle, limit; time_ms = when
    "voltage": _r(GRID, "vm_pu", "pu", "matrix", "bus_names"),
    **{f"voltage_{p}": _r(GRID, f"vm_{p}_pu", "pu", "matrix", "bus_names") for p in PHASES},
    "unbalance": _r(GRID, "unbalance_pct", "%", "matrix", "bus_names"),
    "max_unbalance": _r(GRID, "max_unbalance_pct", "%"),
    "line_loading": _r(GRID, "line_loading_pct", "%", "matrix", "line_names"),
    "trafo_loading": _r(GRID, "trafo_loading_pct", "%", "matrix", "trafo_names"),
    "v_min": _r(GRID, "v_min_pu", "pu"),
    "v_max": _r(GRID, "v_max_pu", "pu"),
    "max_line_loading": _r(GRID, "max_line_loading_pct", "%"),
    "max_trafo_loading": _r(GRID, "max_trafo_loading_pct", "%"),
    "converged": _r(GRID, "converged", "1"),
    "bus_names": _r(GRID, "bus_names", "1", "labels"),
    "bus_kv": _r(GRID, "bus_vn_kv", "kV", "matrix", "bus_names"),  # nominal voltage per bus, one row at the start
    "line_names": _r(GRID, "line_names", "1", "labels"),
    "trafo_names": _r(GRID, "trafo_names", "1", "labels"),
    "grid_solver": _r(GRID, "solver", "1", "labels"),  # the power-flow solver the grid simulator actually used
}

# per-vehicle fields of the table: the charger model's parameters and where each vehicle is
VEHICLE_LABELS = ("model", "bus", "phase")
VEHICLE_FIELDS = (*VEHICLE_LABELS, *PARAMETERS, *OPTIONAL_PARAMETERS)


def units() -> dict[str, str]:
    """The recorder's ``units`` parameter: each recorded output's unit, by path (the one definition)."""
    return {r.path: r.unit for r in SERIES.values()}


def dtypes() -> dict[str, str]:
    """The recorder's ``dtypes`` parameter: matrices stored at less than double precision, by path."""
    return {r.path: r.dtype for r in SERIES.values() if r.dtype != "float64"}


def attrs(entity: str, *names: str) -> list[str]:
    """The attribute names of recorded outputs ``names`` (keys of SERIES), checked to belong to ``entity``."""
    out = []
    for name in names:
        rec = SERIES[name]
        if rec.entity != entity:
            raise KeyError(f"{name} is recorded from {rec.entity}, not {entity}")
        out.append(rec.attr)
    return out
