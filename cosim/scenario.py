"""Scenario files: schema (pydantic), loading, ``--set`` overrides and one-line errors.

A scenario is the only thing a user writes: it names the grid, the fleet, the network, the
frequency events and the services, and nothing about mosaik. Paths inside a scenario are relative
to the scenario file. Every problem is reported as ``ScenarioError("<file>: <field.path>: <what>")``.
"""

from __future__ import annotations

import os
import re
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from v2g_testbed.sims import catalog
from v2g_testbed.sims.catalog import CatalogError, VehicleModel
from v2g_testbed.sims.files import InputFileError, load_yaml, read_text
from v2g_testbed.sims.fleet import single_phase
from v2g_testbed.sims.grid import PROFILE_MS, SIMBENCH_YEAR_START, SIMBENCH_YEAR_STEPS


class ScenarioError(Exception):
    """A scenario cannot be used; the message is one line naming file, field and problem. ``problems``:
    every problem found (one line each; ``v2g validate`` prints them all), the message being the first."""

    def __init__(self, message: str, problems: list[str] | None = None):
        super().__init__(message)
        self.problems = list(problems) if problems else [message]


def _admits_bool(annotation) -> bool:
    """A field whose type names ``bool`` (anywhere in a union or a container) takes true/false."""
    return annotation is bool or annotation is Any or any(_admits_bool(a) for a in typing.get_args(annotation))


def _holds_bool(value) -> bool:
    return isinstance(value, bool) or (isinstance(value, (list, tuple)) and any(_holds_bool(v) for v in value))


class _Strict(BaseModel):
    # finite numbers only, schema-wide: inf and nan are never a real parameter
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, use_attribute_docstrings=True, validate_default=True)

    @model_validator(mode="before")
    @classmethod
    def _no_true_for_a_number(cls, data):
        """pydantic reads true as 1 for a number (``count: true`` would be one vehicle): refused, schema-wide.
        (A model-level check: pydantic allows no field validator on a union's tag.) ``@name:`` makes the
        error name the field."""
        if isinstance(data, dict):
            for name, value in data.items():
                field = cls.model_fields.get(name) if isinstance(name, str) else None
                if field is not None and _holds_bool(value) and not _admits_bool(field.annotation):
                    raise ValueError(f"@{name}: expected a number or text, got true/false")
        return data


_DEFAULTS = catalog.fleet_defaults()
_GROUP_HARD = catalog.plausibility()["group"]
_HZ_BAND = tuple(catalog.plausibility()["frequency_hz"]["hard"])
MAX_TIME_S = 24 * 3600  # the longest run; no event or trace time may lie beyond it


def _hz(value: float) -> float:
    """A frequency inside the band any real system stays in (plausibility.yaml)."""
    if not _HZ_BAND[0] <= value <= _HZ_BAND[1]:
        raise ValueError(f"{value:g} Hz is outside {_HZ_BAND[0]:g}-{_HZ_BAND[1]:g} Hz")
    return value


Hz = Annotated[float, AfterValidator(_hz)]
Seconds = Annotated[float, Field(ge=0, le=MAX_TIME_S)]


class StepEvent(_Strict):
    type: Literal["step"]
    """a step to to_hz at at_s (a prequalification test)"""
    at_s: Seconds
    """when the step happens, from the start of the run"""
    to_hz: Hz
    """the frequency it steps to"""
    hold_s: float | None = Field(default=None, gt=0, le=MAX_TIME_S, description="back to nominal after this long")


class RampEvent(_Strict):
    type: Literal["ramp"]
    """a ramp from nominal to to_hz at rocof_hz_per_s, starting at at_s"""
    at_s: Seconds
    """when the ramp starts"""
    to_hz: Hz
    """the frequency it ramps to, then holds"""
    rocof_hz_per_s: float = Field(gt=0.001, le=1000)
    """rate of change of frequency"""
    hold_s: float | None = Field(default=None, gt=0, le=MAX_TIME_S)
    """back to nominal after this long at to_hz (none: stays)"""


class PiecewiseEvent(_Strict):
    type: Literal["piecewise"]
    """straight lines between (time, Hz) points"""
    at_s: Seconds = 0.0
    """when the first point applies"""
    points: list[tuple[Seconds, Hz]] = Field(min_length=2, description="(seconds from at_s, Hz)")

    @field_validator("points")
    @classmethod
    def _increasing(cls, points):
        if any(b[0] <= a[0] for a, b in zip(points, points[1:])):
            raise ValueError("point times must increase")
        return points


class TraceEvent(_Strict):
    type: Literal["trace"]
    """a recorded frequency trace, replayed from at_s"""
    at_s: Seconds = 0.0
    """when the trace's first sample applies"""
    file: str = Field(description="CSV with time_s and hz columns, or HDF5 file")
    time_column: str = "time_s"
    """column (CSV) or dataset (HDF5) of times in seconds"""
    hz_column: str = "hz"
    """column (CSV) or dataset (HDF5) of frequencies in Hz"""
    dataset: str | None = Field(default=None, description="HDF5: group holding the two datasets")


class StandardEvent(_Strict):
    type: Literal["standard"]
    """a test profile from sims/data/frequency_profiles.yaml"""
    at_s: Seconds = 0.0
    """shifts the whole profile"""
    name: str
    """the profile's name (`v2g catalog` lists them)"""


class OUEvent(_Strict):
    type: Literal["ou"]
    """stochastic frequency: an Ornstein-Uhlenbeck process around mean_hz"""
    at_s: Seconds = 0.0
    """when the process starts"""
    duration_s: float = Field(gt=0, le=MAX_TIME_S)
    """how long it runs"""
    preset: str | None = Field(default="ou_gb", description="parameters from frequency_profiles.yaml")
    mean_hz: Hz | None = None
    """the level it reverts to (default: the preset's)"""
    theta_per_s: float | None = Field(default=None, gt=0, le=1000)
    """mean-reversion rate (default: the preset's)"""
    sigma_hz_per_sqrt_s: float | None = Field(default=None, ge=0, le=1)
    """volatility (default: the preset's)"""
    seed: int | None = Field(default=None, ge=0, description="default: the scenario's seed")


class SystemEvent(_Strict):
    type: Literal["system"]
    """a swing-equation model of a power system event (e.g. GB 9 August 2019); the only event of a run"""
    preset: str = Field(description="a system in frequency_profiles.yaml, e.g. gb_2019_08_09")
    replication_factor: float = Field(default=0.0, ge=0,
                                      description="closed loop: the fleet stands for this many like it (0: open loop)")


FrequencyEvent = Annotated[Union[StepEvent, RampEvent, PiecewiseEvent, TraceEvent, StandardEvent, OUEvent, SystemEvent],
                           Field(discriminator="type")]


class Frequency(_Strict):
    events: list[FrequencyEvent] = Field(min_length=1)
    """what the frequency does; events after one another, each from its own at_s"""
    sample_ms: int = Field(default=20, ge=1, le=60_000, description="sampling of ramps")


from v2g_testbed.analysis import limits as _limits  # noqa: E402  (the limit sets are data the analysis owns)

LimitSet = Literal[tuple(_limits.set_names())]


class GridLimits(_Strict):
    set: LimitSet = _limits.catalog()["default"]
    """named limit set (analysis/data/grid_limits.yaml): en50160 (0.90-1.10 pu at every level) or gb_esqcr
    (LV +10 %/-6 %, HV below 132 kV +/-6 %); voltage bands per bus by its nominal voltage"""
    v_min_pu: float | None = Field(default=None, gt=0)
    """lowest voltage allowed at every voltage level (default: the set's band for the bus's level)"""
    v_max_pu: float | None = Field(default=None, gt=0)
    """highest voltage allowed at every voltage level (default: the set's band for the bus's level)"""
    loading_pct: float | None = Field(default=None, gt=0)
    """lines and transformers (default: the set's, 100 %)"""
    unbalance_pct: float | None = Field(default=None, gt=0)
    """voltage unbalance (negative/positive sequence); unbalanced power flow only (default: the set's, 2 %)"""

    @model_validator(mode="after")
    def _band(self):
        resolved = _limits.Limits.of(self.model_dump())
        for below_kv, lo, hi in resolved.levels:
            if lo >= hi:
                where = "" if resolved.uniform else f" (buses below {below_kv:g} kV)"
                raise ValueError(f"v_min_pu ({lo:g}) must be below v_max_pu ({hi:g}){where}")
        return self


class Grid(_Strict):
    network: str = "cigre_mv"
    """cigre_lv, cigre_mv, ieee_eu_lv[:snapshot], simbench:<code>, or a pandapower JSON file (relative to the scenario)"""
    limits: GridLimits = Field(default_factory=GridLimits)
    """the limits the `grid` rule and hosting capacity apply"""
    power_flow: Literal["auto", "balanced", "unbalanced"] = Field(
        default="auto", description="auto: unbalanced (three-phase) where the network has zero-sequence data and "
        "something is unbalanced (single-phase chargers or the network's own single-phase loads); balanced otherwise")
    solver: Literal["auto", "zbus", "pandapower", "lightsim2grid"] = Field(
        default="auto", description="auto: zbus for balanced power flows (a Z-bus model on pandapower's own "
        "matrices, built once per run and checked against pandapower's base case; runpp where it cannot represent "
        "the network), pandapower for unbalanced ones; pandapower or lightsim2grid: runpp every step")
    profile_time: str | None = Field(default=None, description="SimBench grids: base loads and generation from "
                                     "their profiles at this time of the 2016 reference year, e.g. 2016-07-01T18:00")

    @model_validator(mode="after")
    def _profiles_need_simbench(self):
        if self.profile_time is not None:
            if not self.network.startswith("simbench:"):
                raise ValueError("profile_time: profiles exist only for simbench:<code> grids")
            self.profile_start_ms()  # parses, or raises
        return self

    def profile_start_ms(self) -> int | None:
        """profile_time in milliseconds from the start of the SimBench year (None without one)."""
        if self.profile_time is None:
            return None
        from datetime import datetime

        try:
            at = datetime.fromisoformat(self.profile_time)
        except ValueError:
            raise ValueError(f"profile_time: not a date and time: {self.profile_time!r}") from None
        seconds = (at - datetime.fromisoformat(SIMBENCH_YEAR_START)).total_seconds()
        if not 0 <= seconds * 1000 < SIMBENCH_YEAR_STEPS * PROFILE_MS:
            raise ValueError(f"profile_time: {self.profile_time} is outside the SimBench year 2016")
        return round(seconds * 1000)
    step_s: float = Field(default=1.0, ge=0.001, le=3600, description="power-flow interval")
    base_load_scale: float = Field(default=1.0, ge=0, le=100, description="scales the network's own loads")


class BusSet(_Strict):
    """Every bus of a kind, found in the grid: ``load`` (buses with a load: the customers) or ``lv_bus``
    (buses below 1 kV); on one feeder only, if ``feeder`` names one (as ``v2g hosting-capacity`` does)."""
    every: Literal["load", "lv_bus"]
    """load: every bus with a load (the customers); lv_bus: every bus below 1 kV"""
    feeder: str | None = None
    """only the buses of this feeder (named by its first line, as `v2g hosting-capacity` prints them)"""


class Reactive(_Strict):
    """Reactive power of a group's chargers (sims/data/reactive.yaml; sims/reactive.py)."""

    mode: Literal["unity", "power_factor", "q_u"] = "unity"
    """unity: no reactive power; power_factor: a fixed cos phi; q_u: a Q(U) characteristic"""
    power_factor: float = Field(default=1.0, gt=0, le=1)
    """power_factor mode: cos phi (0.95: |Q| = 0.33 |P|)"""
    absorb: bool = True
    """power_factor mode: absorb reactive power (under-excited, lowers the voltage); false: inject it"""
    curve: str | list[tuple[float, float]] = "en50549"
    """q_u mode: a named curve of sims/data/reactive.yaml, or points [[v_pu, q], ...] (q: fraction of rated power,
    + absorbs), voltages increasing"""

    @model_validator(mode="after")
    def _curve(self):
        from v2g_testbed.sims.reactive import curves

        if self.mode == "q_u":
            if isinstance(self.curve, str):
                if self.curve not in curves():
                    raise ValueError(f"curve: unknown Q(U) curve {self.curve!r} (known: {', '.join(curves())})")
            else:
                v = [p[0] for p in self.curve]
                if len(v) < 2 or any(b <= a for a, b in zip(v, v[1:])) or any(abs(p[1]) > 1 for p in self.curve):
                    raise ValueError("curve: at least two points [v_pu, q], voltages increasing, |q| <= 1")
        return self


class FleetGroup(_Strict):
    model: str | VehicleModel
    """a vehicle model of the catalog (`v2g catalog vehicles`) or one given inline"""
    count: int = Field(ge=_GROUP_HARD["count"]["hard"][0], le=_GROUP_HARD["count"]["hard"][1])
    """number of vehicles in the group"""
    charger_kw: float = Field(ge=_GROUP_HARD["charger_kw"]["hard"][0], le=_GROUP_HARD["charger_kw"]["hard"][1])
    """charger rating"""
    bus: int | str | list[int | str] | BusSet = Field(
        description="a bus, a list the group's chargers spread over, or {every: load | lv_bus}")
    placement: Literal["round_robin", "random"] = Field(
        default="round_robin", description="how chargers are spread over a list of buses (random: with the seed)")
    bidirectional: bool = _DEFAULTS["bidirectional"]
    """whether the chargers can export (V2G); false: they can only charge less (V1G)"""
    soc: float = Field(default=_DEFAULTS["soc"], ge=0, le=1)
    """state of charge at the start, 0-1"""
    soc_min: float = Field(default=_DEFAULTS["soc_min"], ge=0, le=1)
    """lowest state of charge the fleet may discharge to, 0-1"""
    soc_max: float = Field(default=_DEFAULTS["soc_max"], ge=0, le=1)
    """highest state of charge it may charge to, 0-1"""
    baseline_kw: float = Field(default=_DEFAULTS["baseline_kw"], ge=-5000, le=5000)
    """each vehicle's power before any response (+ charging, - discharging)"""
    plugged_in_fraction: float = Field(default=_DEFAULTS["plugged_in_fraction"], ge=0, le=1)
    """share of the group plugged in (drawn with the seed), 0-1"""
    efficiency_charge: float = Field(default=_DEFAULTS["efficiency_charge"], gt=0, le=1)
    """charger efficiency charging, 0-1"""
    efficiency_discharge: float = Field(default=_DEFAULTS["efficiency_discharge"], gt=0, le=1)
    """charger efficiency discharging, 0-1"""
    connection: Literal["dc", "ac"] = _DEFAULTS["connection"]
    """dc: the charger converts (onboard charger bypassed); ac: the onboard charger limits power"""
    phases: Literal[1, 3] = _DEFAULTS["phases"]
    """AC chargers: 1 or 3 phases"""
    dc_charger: str | None = None
    """DC: a bidirectional DC charger of sims/data/dc_chargers.csv whose measured delays and ramps replace the
    vehicle's onboard-charger (AC) measurements; none: the AC figures are borrowed (and the verdicts say so)"""
    phase: Literal["a", "b", "c", "round_robin", "random", "same_as_load"] = Field(
        default=_DEFAULTS["phase"], description="single-phase AC chargers: their phase, spread in turn or at random, "
        "or same_as_load: the phase of the single-phase load at the bus (the house the charger belongs to)")
    max_current_a: float = Field(default=_DEFAULTS["max_current_a"], gt=0, le=1000)
    """AC: largest current per phase"""
    min_current_a: float = Field(default=_DEFAULTS["min_current_a"], ge=0, le=1000)
    """AC: smallest non-zero current (IEC 61851-1: 6 A)"""
    current_step_a: float = Field(default=_DEFAULTS["current_step_a"], ge=0, le=1000)
    """AC: setpoint resolution of the pilot signal"""
    reactive: Reactive = Field(default_factory=Reactive)
    """reactive power of the chargers: unity (default), a fixed power factor, or Q(U) (grid codes' voltage support)"""
    phase_voltage_v: float = Field(default=_DEFAULTS["phase_voltage_v"], gt=0, le=1000)
    """AC: phase-to-neutral voltage"""
    setpoint_step_kw: float = Field(default=_DEFAULTS["setpoint_step_kw"], ge=0, le=5000)
    """DC: setpoint resolution (0: continuous)"""
    arrival_s: Seconds | tuple[Seconds, Seconds] = Field(default=_DEFAULTS["arrival_s"],
                                                         description="seconds, or [low, high] drawn per vehicle")
    departure_s: Seconds | tuple[Seconds, Seconds] | None = _DEFAULTS["departure_s"]
    """when vehicles leave: seconds, [low, high] drawn per vehicle, or none (they stay)"""

    @field_validator("bus")
    @classmethod
    def _non_empty(cls, bus):
        if isinstance(bus, list) and not bus:
            raise ValueError("an empty list of buses")
        return bus

    @model_validator(mode="after")
    def _soc_window(self):
        if not self.soc_min <= self.soc_max:
            raise ValueError(f"soc_min ({self.soc_min}) must not exceed soc_max ({self.soc_max})")
        for name in ("arrival_s", "departure_s"):
            value = getattr(self, name)
            if isinstance(value, tuple) and not 0 <= value[0] <= value[1]:
                raise ValueError(f"{name} range must be [low, high] with 0 <= low <= high, got {list(value)}")
        return self


class Fleet(_Strict):
    groups: list[FleetGroup] = Field(min_length=1)
    """groups of like vehicles on like chargers"""
    spread_pct: float = Field(default=0.0, ge=0, le=100,
                              description="coefficient of variation of delays and ramp rates, %")
    spread_distribution: Literal["lognormal", "normal", "uniform"] = "lognormal"
    """distribution of each vehicle's delays and ramp rates around the model's means"""
    telemetry_hz: float = Field(default=_DEFAULTS["telemetry_hz"], gt=0, le=1000,
                                description="rate at which the chargers meter and report their power")
    catalogs: list[str] = Field(default_factory=list, description="extra vehicle CSV files")
    assume_v2g: bool = False
    """a what-if: let bidirectional groups of models that are not V2G-capable export anyway (every verdict says
    which); false: such a group is refused, and must be made V1G (bidirectional: false)"""

    @field_validator("telemetry_hz")
    @classmethod
    def _whole_ms(cls, hz):
        if abs(1000 / hz - round(1000 / hz)) > 1e-9:
            raise ValueError(f"1000 / telemetry_hz must be a whole number of milliseconds, got {hz} Hz")
        return hz

    @model_validator(mode="after")
    def _uniform_spread(self):
        if self.spread_distribution == "uniform" and self.spread_pct >= 57.7:
            raise ValueError("spread_pct must be below 57.7 for a uniform spread (values would reach zero)")
        return self


class Quantiles(_Strict):
    median: float = Field(gt=0, le=3.6e6)
    """median"""
    p95: float = Field(gt=0, le=3.6e6)
    """95th percentile"""

    @model_validator(mode="after")
    def _ordered(self):
        if self.p95 < self.median:
            raise ValueError(f"p95 ({self.p95}) must not be below the median ({self.median})")
        return self


class Hop(_Strict):
    name: str
    """the hop's name (faults name it)"""
    latency_ms: Quantiles
    """one-way latency of a message over this hop"""
    loss_probability: float = Field(default=0.0, ge=0, lt=1)
    """chance a message is lost on this hop, 0-1"""
    radio: bool = False
    """the cellular radio hop (RRC promotion from idle, cell capacity)"""
    promotion_ms: Quantiles | None = None
    """radio: delay to leave idle (RRC promotion) before the first message"""
    idle_timer_s: float | None = Field(default=None, ge=0, le=MAX_TIME_S)
    """radio: the modem goes idle after this long without traffic"""
    downlink_kbps: float | None = Field(default=None, gt=0, le=1e9)
    """radio: downlink capacity of a cell, shared by its chargers"""
    message_bytes: int | None = Field(default=None, gt=0, le=10**8)
    """radio: size of one setpoint message"""
    paging_cycle_ms: float | None = Field(default=None, gt=0, le=MAX_TIME_S * 1000)
    """radio: a setpoint for an idle modem waits for its next paging occasion, one per cycle (LTE DRX paging,
    NB-IoT eDRX, or a PSM device's wake-up period); none: reached at once"""
    connection_failure_probability: float = Field(default=0.0, ge=0, lt=1)
    """radio: chance a promotion from idle fails (connection setup); the attempt is lost and retried"""

    @model_validator(mode="after")
    def _radio_fields(self):
        missing = [f for f in ("promotion_ms", "idle_timer_s", "downlink_kbps", "message_bytes")
                   if self.radio and getattr(self, f) is None]
        if missing:
            raise ValueError(f"a radio hop needs {', '.join(missing)}")
        return self


class NetworkProfile(_Strict):
    """One communication path (see sims/data/network_profiles.yaml for the meaning of each field)."""
    description: str = ""
    """what this path is"""
    measurement_delay_ms: int = Field(ge=0, le=3_600_000)
    """frequency measurement delay at the aggregator (or charger)"""
    dispatch_interval_ms: int = Field(default=0, ge=0, le=3_600_000)
    """least time between two dispatches"""
    hops: list[Hop] = Field(default_factory=list)
    """the hops a setpoint travels, in order"""
    chargers_per_cell: int | None = Field(default=None, ge=1)
    """chargers sharing one radio cell (none: all in one)"""
    retransmission_timeout_ms: float = Field(default=1000, gt=0, le=3.6e6)
    """a lost message is sent again after this long"""
    max_retries: int = Field(default=0, ge=0, le=100)
    """how often a lost message is sent again"""
    sources: list[str] = Field(default_factory=lambda: ["user"])
    """keys into sims/data/sources.yaml"""
    verify: bool = True
    """true: a figure lacks a source"""

    @model_validator(mode="after")
    def _one_radio_hop(self):
        if sum(h.radio for h in self.hops) > 1:
            raise ValueError("at most one hop may be the radio hop")
        return self


class Fault(_Strict):
    kind: Literal["outage", "burst_loss", "silent_chargers"]
    """outage: a hop delivers nothing; burst_loss: a hop loses messages; silent_chargers: chargers ignore setpoints"""
    from_s: float = Field(ge=0, le=MAX_TIME_S)
    """start of the fault"""
    to_s: float | None = Field(default=None, le=MAX_TIME_S, description="end of the fault; none: to the end of the run")
    hop: str | None = Field(default=None, description="outage, burst_loss: the hop that fails")
    cell: int | None = Field(default=None, ge=0, description="outage, burst_loss: only this cell (radio hop)")
    loss_probability: float | None = Field(default=None, gt=0, le=1, description="burst_loss")
    count: int | None = Field(default=None, ge=1, le=10**7, description="silent_chargers: how many (drawn with the seed)")

    @model_validator(mode="after")
    def _fields_for_kind(self):
        need = {"outage": ["hop"], "burst_loss": ["hop", "loss_probability"], "silent_chargers": ["count"]}[self.kind]
        missing = [f for f in need if getattr(self, f) is None]
        if missing:
            raise ValueError(f"a {self.kind} fault needs {', '.join(missing)}")
        if self.to_s is not None and self.to_s <= self.from_s:
            raise ValueError(f"to_s ({self.to_s}) must be after from_s ({self.from_s})")
        return self


class Network(_Strict):
    profile: str | NetworkProfile = "local"
    """a profile of sims/data/network_profiles.yaml (`v2g catalog networks`), or one given inline"""
    chargers_per_cell: int | None = Field(default=None, ge=1, le=10**7, description="overrides the profile's")
    faults: list[Fault] = Field(default_factory=list)
    """failures injected into the network"""
    report_interval_s: float | None = Field(
        default=None, gt=0, le=3600, description="telemetry uplink: each charger reports its meter every this often (none: off)")


class ServiceRef(_Strict):
    id: str
    """a service of the catalog (`v2g catalog services`), e.g. DC-L"""
    contracted_mw: float = Field(gt=0, le=100_000)
    """the power contracted for the service"""
    assume: dict[str, Union[float, dict[str, float]]] = Field(default_factory=dict)
    """the testbed's own judging assumptions for this service, set to another value within reason:
    {envelope.tolerance_pu: 0.05} or {envelope: {tolerance_pu: 0.05}} (`v2g catalog services` lists them)"""


class Outputs(_Strict):
    sample_ms: int = Field(default=10, ge=1, le=60_000, description="fleet power sampling interval")
    vehicle_sample_ms: int = Field(default=100, ge=1, le=3_600_000, description="per-vehicle power sampling interval")
    plots: bool = Field(default=False, description="write the PNG plots with the run (else `v2g run --plots` or "
                        "`v2g report` draws them later, from the record)")

    @model_validator(mode="after")
    def _multiple(self):
        if self.vehicle_sample_ms % self.sample_ms:
            raise ValueError("vehicle_sample_ms must be a multiple of sample_ms")
        return self


class Execution(_Strict):
    """Where simulators run: in this process (default), as separate processes (mosaik's `cmd` starter),
    or already listening elsewhere (mosaik's `connect` starter, host:port)."""
    separate_processes: list[Literal["fleet", "grid", "network"]] = Field(default_factory=list)
    """simulators started as separate processes (mosaik's cmd starter)"""
    connect: dict[Literal["fleet", "grid", "network"], str] = Field(default_factory=dict)
    """simulators already listening elsewhere: role -> host:port (mosaik's connect starter)"""
    init_timeout_s: float = Field(default=10.0, gt=0, le=3600, description="how long a simulator in a separate "
                                  "process or behind `connect` may take to answer mosaik's init() call, s")

    @field_validator("connect")
    @classmethod
    def _addresses(cls, connect):
        for role, address in connect.items():
            host, _, port = address.rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"{role}: expected host:port, got {address!r}")
        return connect


INPUTS_DIR = "inputs"  # beside scenario.resolved.yaml: copies of the files the run read
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"  # a file name: no path separators, no leading dot


class Scenario(_Strict):
    name: str = Field(pattern=NAME_PATTERN, max_length=100)
    """the run's name: its output directory is results/<name>"""
    description: str = ""
    """free text, shown in the report"""
    seed: int = Field(default=0, ge=0, lt=2**63)
    """seed of every random draw: same scenario and seed, byte-identical verdicts"""
    duration_s: float = Field(gt=0, le=MAX_TIME_S)
    """simulated time"""
    grid: Grid = Field(default_factory=Grid)
    """the distribution network the chargers are connected to"""
    fleet: Fleet
    """the vehicles and their chargers"""
    network: Network = Field(default_factory=Network)
    """the communication path from the aggregator to the chargers (local: none)"""
    frequency: Frequency
    """the frequency events the fleet responds to"""
    services: list[ServiceRef] = Field(min_length=1)
    """the services the fleet is judged for, with contracted power"""
    outputs: Outputs = Field(default_factory=Outputs)
    """what the run records and draws"""
    execution: Execution = Field(default_factory=Execution)
    """where the simulators run (in this process by default)"""
    provenance: dict[str, Any] | None = Field(
        default=None, description="written by `v2g run` into scenario.resolved.yaml (input hashes, versions, what "
        "was resolved); not read by a run")

    @model_validator(mode="after")
    def _grid_step_multiple(self):
        step_ms = round(self.grid.step_s * 1000)
        if step_ms % self.outputs.vehicle_sample_ms:
            raise ValueError(f"grid.step_s ({self.grid.step_s}) must be a multiple of outputs.vehicle_sample_ms "
                             f"({self.outputs.vehicle_sample_ms} ms): the grid reads the fleet's power at those steps")
        return self

    @field_validator("services")
    @classmethod
    def _known_services(cls, refs):
        known = catalog.services()
        for i, ref in enumerate(refs):
            if ref.id not in known:
                raise ValueError(f"[{i}].id: unknown service {ref.id!r} (known: {', '.join(known)})")
            if known[ref.id].get("trigger") == "instruction":
                raise ValueError(f"[{i}].id: {ref.id} is dispatched by instruction, not by frequency: "
                                 "`v2g screen` covers it, `v2g run` cannot simulate it yet")
        return refs

    @field_validator("network")
    @classmethod
    def _known_profile(cls, network):
        if isinstance(network.profile, str) and network.profile not in catalog.network_profiles():
            known = ", ".join(catalog.network_profiles())
            raise ValueError(f"profile: unknown network profile {network.profile!r} (known: {known})")
        return network


# -- loading ---------------------------------------------------------------------------------

# pydantic puts the union member it tried into an error's location: an event's `type` tag, or a type's
# name for plain unions (str | VehicleModel, int | str | list[...]). Those are not field names.
_EVENT_TAGS = {typing.get_args(cls.model_fields["type"].annotation)[0]
               for cls in typing.get_args(typing.get_args(FrequencyEvent)[0])}
_TYPE_NAMES = {"str", "int", "float", "bool", "none", "VehicleModel", "NetworkProfile"}


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in _EVENT_TAGS or part in _TYPE_NAMES or part in _model_names() or "[" in str(part):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out


def _field_names() -> set[str]:
    """Every field name of the scenario schema (for "did you mean")."""
    names, todo = set(), [Scenario]
    while todo:
        cls = todo.pop()
        for name, field in cls.model_fields.items():
            names.add(name)
            todo += [t for t in _model_types(field.annotation) if t not in todo]
    return names


def _model_names() -> set[str]:
    """The class names of the schema's models: pydantic puts a union member's name in an error's location."""
    global _MODEL_NAMES
    if _MODEL_NAMES is None:
        names, todo = set(), [Scenario]
        while todo:
            cls = todo.pop()
            names.add(cls.__name__)
            todo += [t for f in cls.model_fields.values() for t in _model_types(f.annotation) if t.__name__ not in names]
        _MODEL_NAMES = names
    return _MODEL_NAMES


_MODEL_NAMES: set[str] | None = None


def _model_types(annotation) -> list[type]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [t for arg in typing.get_args(annotation) for t in _model_types(arg)]


def _validation_problems(path: Path, exc: ValidationError) -> list[str]:
    """Every problem pydantic found, one line each (file, field, problem), the likeliest cause first."""
    import difflib

    errors = exc.errors()
    # A typo in a key shows as an unknown field *and* a missing one: the unknown field is the cause. For a
    # union field (`str | inline model`), the branches that do not match the kind of value the user wrote
    # ("not a valid string" for a mapping, "not a dictionary" for a string) are noise: left out where the
    # branch that matches has errors of its own.
    errors.sort(key=lambda e: e["type"] != "extra_forbidden")

    def noise(e) -> bool:
        if isinstance(e.get("input"), dict):
            return e["type"].endswith(("_type", "_parsing")) and e["type"] not in ("dict_type", "model_type")
        return e["type"] in ("model_type", "dict_type", "model_attributes_type", "dataclass_type")

    if not all(noise(e) for e in errors):
        errors = [e for e in errors if not noise(e)]
    # a branch that matched the value's kind got further in (its errors lie deeper): a shallower "not a valid
    # <type>" from another branch is noise too
    places = [_loc(e["loc"]) for e in errors]
    errors = [e for e, here in zip(errors, places)
              if not (e["type"].endswith(("_type", "_parsing"))
                      and any(p.startswith((here + ".", here + "[")) for p in places))]
    found: dict[str, list[str]] = {}  # where -> problems there (a union's branches each say why not)
    missing: dict[str, list[str]] = {}
    for error in errors:
        if error["type"] == "extra_forbidden":
            key = str(error["loc"][-1])
            close = difflib.get_close_matches(key, sorted(_field_names() - {key}), n=1)
            hint = f"; did you mean `{close[0]}`?" if close else ""
            where, msg = _loc(error["loc"][:-1]) or "(top level)", f"unknown field `{key}`{hint}"
        elif error["type"] == "missing":  # the fields a section lacks, on one line
            where = _loc(error["loc"][:-1]) or "(top level)"
            missing.setdefault(where, []).append(str(error["loc"][-1]))
            continue
        else:
            msg = error["msg"].removeprefix("Value error, ")
            where = _loc(error["loc"])
            if msg.startswith("@"):  # a model-level check naming its field
                name, msg = msg[1:].split(": ", 1)
                where = f"{where}.{name}" if where else name
            elif msg.startswith("[") or msg.startswith("profile:"):  # our validators name the sub-field
                sep = "" if msg.startswith("[") else "."
                where, msg = f"{where}{sep}{msg.split(':', 1)[0]}", msg.split(": ", 1)[1]
            where = where or "(top level)"
        if msg not in found.setdefault(where, []):
            found[where].append(msg)
    for where, names in missing.items():
        if len(names) == 1:
            found.setdefault(f"{where}.{names[0]}" if where != "(top level)" else names[0], []).append("Field required")
        else:
            found.setdefault(where, []).append(f"missing fields {', '.join(names)}")
    return [f"{path}: {where}: {'; or: '.join(msgs)}" for where, msgs in found.items()]


def _validation_error(path: Path, exc: ValidationError) -> ScenarioError:
    """The first problem as the one-line message (with how many more, and where to see them)."""
    problems = _validation_problems(path, exc)
    more = f" (+{len(problems) - 1} more: `v2g validate {path}` lists them)" if len(problems) > 1 else ""
    return ScenarioError(problems[0] + more, problems)


def apply_override(data: dict, assignment: str) -> None:
    """Apply ``dotted.path=VALUE`` (VALUE parsed as YAML) to the raw scenario dict, in place. List
    items by number: ``fleet.groups.0.count`` or, as error messages write them, ``fleet.groups[0].count``."""
    if "=" not in assignment:
        raise ScenarioError(f"--set {assignment}: expected dotted.path=VALUE")
    path, raw = assignment.split("=", 1)
    try:
        value = load_yaml(raw)
    except InputFileError as exc:
        raise ScenarioError(f"--set {path}: the value is not valid: {str(exc).split(': ', 1)[-1]}") from None
    keys = [k for k in re.split(r"\.|\[(\d+)\]", path.strip()) if k]
    if not keys:
        raise ScenarioError(f"--set {assignment}: empty field path")
    node: Any = data
    for i, key in enumerate(keys):
        last = i == len(keys) - 1
        where = ".".join(keys[: i + 1])
        if isinstance(node, list):
            if not key.isdigit() or int(key) >= len(node):
                raise ScenarioError(f"--set {path}: {where}: no list item {key} (list has {len(node)})")
            key = int(key)
        elif not isinstance(node, dict):
            raise ScenarioError(f"--set {path}: {'.'.join(keys[:i])} is not a section")
        if last:
            node[key] = value
        else:
            if isinstance(node, dict) and node.get(key) is None:
                node[key] = {}
            node = node[key]


def load(path: str | Path, overrides: list[str] = (), seed: int | None = None) -> "LoadedScenario":
    """Read, override and validate a scenario file. Raise ScenarioError with a one-line message."""
    path = Path(path)
    try:
        data = load_yaml(read_text(path, "scenario"))
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read: {exc.strerror}") from None
    except InputFileError as exc:
        raise ScenarioError(f"{path}: {exc}") from None
    if not isinstance(data, dict):
        raise ScenarioError(f"{path}: (top level): expected a mapping of sections, got {type(data).__name__}")
    for assignment in overrides:
        apply_override(data, assignment)
    if seed is not None:
        data["seed"] = seed
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise _validation_error(path, exc) from None
    except RecursionError:
        raise ScenarioError(f"{path}: (top level): nested too deeply to be a scenario") from None
    except CatalogError as exc:  # raised by VehicleModel checks inside an inline model
        raise ScenarioError(f"{path}: fleet.groups: {exc}") from None
    return LoadedScenario(scenario, path)


def _machine_memory_gb() -> float | None:
    """The machine's physical memory in GB (None where the platform does not say: Windows without psutil)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    except (AttributeError, ValueError, OSError):
        try:
            import psutil

            return psutil.virtual_memory().total / 1e9
        except ImportError:
            return None


class LoadedScenario:
    """A validated scenario with its file location, catalog lookups resolved."""

    def __init__(self, scenario: Scenario, path: Path):
        self.scenario = scenario
        self.path = path
        self.base_dir = path.parent
        self.vehicles = self._vehicle_catalog()
        self.model_notes: list[str] = []  # what the verdicts must say about the vehicle models used
        self.groups = self._resolve_groups()
        self.services = self._resolve_services()
        self.network_profile = self._resolve_network_profile()
        self._check_frequency()
        self.warnings = self._plausibility_warnings()
        self._grid_checked = False
        self.power_flow: str | None = None  # balanced or unbalanced, resolved by check_grid
        self.power_flow_note: str | None = None
        self.solver: str | None = None  # pandapower or lightsim2grid, resolved by check_grid
        self.load_phases: dict[str, str] = {}  # bus reference -> phase of its single-phase load (same_as_load)

    def error(self, where: str, what: str) -> ScenarioError:
        return ScenarioError(f"{self.path}: {where}: {what}")

    def _plausibility_warnings(self) -> list[str]:
        """Values far outside what real equipment does (sims/data/plausibility.yaml): allowed, but said."""
        bounds = catalog.plausibility()
        out = []
        for g in {id(g["vehicle"]): g["vehicle"] for g in self.groups}.values():
            out += g.implausible()
        for i, g in enumerate(self.groups):
            for name in ("charger_kw", "count"):
                low, high = bounds["group"][name]["plausible"]
                if not low <= g[name] <= high:
                    out.append(f"fleet.groups[{i}].{name} = {g[name]:g} is outside what real fleets use ({low:g}-{high:g})")
        rating_mw = sum(g["count"] * g["charger_kw"] for g in self.groups) / 1000.0
        for i, s in enumerate(self.services):
            if s["contracted_mw"] > bounds["contract_to_fleet_rating_max"] * rating_mw:
                out.append(f"services[{i}].contracted_mw = {s['contracted_mw']:g} MW is more than the whole fleet's "
                           f"charger rating ({rating_mw:g} MW): it cannot be delivered")
        out += self._cost_warnings(bounds["run_cost"])
        low, high = bounds["frequency_hz"]["plausible"]
        for i, ev in enumerate(self.scenario.frequency.events):
            hz = [getattr(ev, "to_hz", None), getattr(ev, "mean_hz", None), *(p[1] for p in getattr(ev, "points", []))]
            far = [h for h in hz if h is not None and not low <= h <= high]
            if far:
                out.append(f"frequency.events[{i}]: {far[0]:g} Hz is beyond {low:g}-{high:g} Hz, where load shedding "
                           "and generator protection would already have acted")
        return out

    def _cost_warnings(self, cost: dict) -> list[str]:
        """What the run will take, from the measured cost per vehicle (plausibility.yaml ``run_cost``): refused
        (exit 2) when it needs more memory than the machine has, warned about when it needs much of it or
        will run long."""
        n = sum(g["count"] for g in self.groups)
        need_gb = cost["memory_base_gb"] + n * cost["memory_per_vehicle_kb"] / 1e6
        minutes = n * self.scenario.duration_s * cost["seconds_per_vehicle_second"] / 60
        have_gb = _machine_memory_gb()
        estimate = (f"{n:,} vehicles need about {need_gb:.1f} GB and {minutes:.0f} min (measured cost per "
                    f"vehicle, {cost['source']})")
        if have_gb is not None and need_gb > have_gb:
            raise self.error("fleet.groups", f"{estimate}: more memory than this machine has ({have_gb:.1f} GB)")
        out = []
        if have_gb is not None and need_gb > cost["warn_memory_share"] * have_gb:
            out.append(f"{estimate}: most of this machine's {have_gb:.1f} GB")
        elif minutes > cost["warn_minutes"]:
            out.append(estimate)
        return out

    def _vehicle_catalog(self) -> dict[str, VehicleModel]:
        models = dict(catalog.builtin_vehicles())
        for i, name in enumerate(self.scenario.fleet.catalogs):
            try:
                models.update(catalog.read_vehicle_csv(self.base_dir / name))
            except CatalogError as exc:
                raise self.error(f"fleet.catalogs[{i}]", str(exc)) from None
        return models

    def _resolve_groups(self) -> list[dict]:
        groups, assumed, borrowed = [], {}, {}
        for i, g in enumerate(self.scenario.fleet.groups):
            if isinstance(g.model, VehicleModel):
                vehicle = g.model
            elif g.model in self.vehicles:
                vehicle = self.vehicles[g.model]
            else:
                raise self.error(f"fleet.groups[{i}].model",
                                 f"unknown vehicle model {g.model!r} (known: {', '.join(self.vehicles)})")
            if g.bidirectional and not vehicle.v2g_capable:
                if not self.scenario.fleet.assume_v2g:
                    raise self.error(f"fleet.groups[{i}].bidirectional",
                                     f"{vehicle.model} ({vehicle.year}) is not V2G-capable (source: "
                                     f"{vehicle.v2g_source}): set bidirectional: false (V1G) or fleet.assume_v2g: "
                                     "true (a what-if)")
                assumed[vehicle.model] = vehicle.v2g_source
            vehicle = self._dc_timing(i, g, vehicle)
            if g.connection == "dc" and vehicle.measured_on == "ac":
                borrowed[vehicle.model] = vehicle.source_key
            groups.append(dict(g.model_dump(exclude={"model"}), vehicle=vehicle))
        if assumed:
            self.model_notes.append(f"assumed V2G-capable (fleet.assume_v2g): {', '.join(assumed)}, which these model "
                                    f"years are not ({', '.join(sorted(set(assumed.values())))}); their export is "
                                    "modelled with their charging measurements")
        if borrowed:
            self.model_notes.append(f"delays and ramps of {', '.join(borrowed)} on DC chargers are borrowed from "
                                    f"onboard-charger (AC) charging tests ({', '.join(sorted(set(borrowed.values())))}): "
                                    "no DC measurement for them; a group's dc_charger names a measured one")
        return groups

    def _dc_timing(self, i: int, g: "FleetGroup", vehicle: VehicleModel) -> VehicleModel:
        """The vehicle with its group's DC charger's measured response, if the group names one."""
        if g.dc_charger is None:
            return vehicle
        where = f"fleet.groups[{i}].dc_charger"
        chargers = catalog.dc_chargers()
        if g.connection != "dc":
            raise self.error(where, "a DC charger needs connection: dc")
        if g.dc_charger not in chargers:
            raise self.error(where, f"unknown DC charger {g.dc_charger!r} (known: {', '.join(chargers)})")
        charger = chargers[g.dc_charger]
        if vehicle.dc_inlet is not None and vehicle.dc_inlet != charger.protocol:
            raise self.error(where, f"{charger.name} is {charger.protocol}; {vehicle.model} has a {vehicle.dc_inlet} "
                             "inlet")
        return charger.timing_of(vehicle)

    def _resolve_services(self) -> list[dict]:
        import copy

        from v2g_testbed.analysis import parameters

        known = catalog.services()
        out = []
        for i, ref in enumerate(self.scenario.services):
            service = dict(copy.deepcopy(known[ref.id]), contracted_kw=ref.contracted_mw * 1000.0,
                           contracted_mw=ref.contracted_mw)
            allowed = parameters.assumptions(service)
            flat = {}
            for key, value in ref.assume.items():  # {envelope: {tolerance_pu: x}} and {envelope.tolerance_pu: x}
                flat.update({f"{key}.{k}": v for k, v in value.items()} if isinstance(value, dict) else {key: value})
            for name, value in flat.items():
                if name not in allowed:
                    raise self.error(f"services[{i}].assume.{name}", f"not an assumption of {ref.id} (its assumptions: "
                                     f"{', '.join(allowed) or 'none'})")
                low, high = allowed[name]["range"]
                if not 0 <= value <= 10 * high:
                    raise self.error(f"services[{i}].assume.{name}", f"{value:g} is far outside its plausible range "
                                     f"{low:g}-{high:g}")
                if name == "initiation_threshold_pu":
                    service[name] = value
                else:
                    section, key = name.split(".", 1)
                    service[section] = dict(service[section], **{key: value})
            out.append(service)
        return out

    def _resolve_network_profile(self) -> dict:
        net = self.scenario.network
        if isinstance(net.profile, str):
            profile = NetworkProfile.model_validate(catalog.network_profiles()[net.profile]).model_dump()
        else:
            profile = net.profile.model_dump()
        if net.chargers_per_cell is not None:
            profile["chargers_per_cell"] = net.chargers_per_cell
        hops = {h["name"] for h in profile["hops"]}
        n_vehicles = sum(g["count"] for g in self.groups)
        n_cells = -(-n_vehicles // (profile["chargers_per_cell"] or n_vehicles))
        for i, f in enumerate(net.faults):
            where = f"network.faults[{i}]"
            if not profile["hops"]:
                raise self.error(where, "the local profile has no network to fail")
            if f.hop is not None and f.hop not in hops:
                raise self.error(f"{where}.hop", f"no hop {f.hop!r} in this profile (hops: {', '.join(sorted(hops))})")
            if f.cell is not None and f.cell >= n_cells:
                raise self.error(f"{where}.cell", f"no cell {f.cell}: {n_vehicles} chargers make {n_cells} cell(s)")
            if f.count is not None and f.count > n_vehicles:
                raise self.error(f"{where}.count", f"{f.count} chargers, but the fleet has {n_vehicles}")
        if net.report_interval_s is not None and not profile["hops"]:
            raise self.error("network.report_interval_s", "the local profile has no network to carry reports up")
        return profile

    def _check_frequency(self):
        events = self.scenario.frequency.events
        self.system = None
        systems = [i for i, ev in enumerate(events) if ev.type == "system"]
        if systems:
            i = systems[0]
            if len(events) > 1:
                raise self.error(f"frequency.events[{i}]", "a system model must be the only frequency event")
            known = catalog.frequency_profiles()["systems"]
            if events[i].preset not in known:
                raise self.error(f"frequency.events[{i}].preset",
                                 f"unknown system {events[i].preset!r} (known: {', '.join(known)})")
            self.system = dict(known[events[i].preset], replication_factor=events[i].replication_factor)
            self.frequency_events = []
            return
        for i, ev in enumerate(events):
            if ev.at_s >= self.scenario.duration_s:
                raise self.error(f"frequency.events[{i}].at_s",
                                 f"{ev.at_s} s is not before the end of the run (duration_s {self.scenario.duration_s})")
        self.frequency_events = [e for i, ev in enumerate(self.scenario.frequency.events)
                                 for e in self._expand_event(i, ev)]

    def _expand_event(self, i: int, ev) -> list[dict]:
        """Scenario events as the frequency simulator takes them: files read, presets filled in."""
        where = f"frequency.events[{i}]"
        if ev.type == "standard":
            profiles = catalog.frequency_profiles()["profiles"]
            if ev.name not in profiles:
                raise self.error(f"{where}.name", f"unknown standard profile {ev.name!r} (known: {', '.join(profiles)})")
            return [dict(e, at_s=e["at_s"] + ev.at_s) for e in profiles[ev.name]["events"]]
        if ev.type == "ou":
            data = ev.model_dump()
            if ev.preset is not None:
                presets = catalog.frequency_profiles()
                if ev.preset not in presets or not ev.preset.startswith("ou_"):
                    raise self.error(f"{where}.preset", f"unknown process preset {ev.preset!r}")
                for key in ("mean_hz", "theta_per_s", "sigma_hz_per_sqrt_s"):
                    data[key] = presets[ev.preset][key] if data[key] is None else data[key]
            missing = [k for k in ("theta_per_s", "sigma_hz_per_sqrt_s") if data[k] is None]
            if missing:
                raise self.error(where, f"an ou event without a preset needs {', '.join(missing)}")
            data["seed"] = self.scenario.seed if ev.seed is None else ev.seed
            return [data]
        if ev.type == "trace":
            time_s, hz = self._read_trace(where, ev)
            return [{"type": "trace", "at_s": ev.at_s, "time_s": time_s, "hz": hz}]
        return [ev.model_dump()]

    def _read_trace(self, where: str, ev) -> tuple[list[float], list[float]]:
        import numpy as np

        path = self.base_dir / ev.file
        try:
            found = path.is_file()
        except OSError as exc:  # e.g. a name too long for the file system
            raise self.error(f"{where}.file", f"cannot use {ev.file[:60]!r}: {exc.strerror}") from None
        if not found:
            raise self.error(f"{where}.file", f"no such file {path}")
        try:
            if path.suffix in (".h5", ".hdf5"):
                import h5py

                with h5py.File(path, "r") as h5:
                    group = h5[ev.dataset] if ev.dataset else h5
                    time_s, hz = group[ev.time_column][:], group[ev.hz_column][:]
            else:
                import csv

                lines = [ln for ln in read_text(path, "trace").splitlines()
                         if ln.strip() and not ln.lstrip().startswith("#")]
                rows = list(csv.DictReader(lines))
                for k, r in enumerate(rows):
                    if None in r or None in r.values():  # more or fewer cells than the header has columns
                        raise ValueError(f"data row {k + 1} has {len(lines[k + 1].split(','))} cells, the header "
                                         f"{len(lines[0].split(','))}")
                time_s = [float(r[ev.time_column]) for r in rows]
                hz = [float(r[ev.hz_column]) for r in rows]
        except InputFileError as exc:
            raise self.error(f"{where}.file", f"{path.name} {exc}") from None
        except (KeyError, ValueError, TypeError, OSError) as exc:
            raise self.error(f"{where}.file", f"cannot read columns {ev.time_column!r} and {ev.hz_column!r} "
                             f"from {path.name}: {str(exc).splitlines()[0]}") from None
        time_s, hz = np.asarray(time_s, float), np.asarray(hz, float)
        if time_s.size < 2 or not np.all(np.isfinite(time_s)) or np.any(np.diff(time_s) <= 0):
            raise self.error(f"{where}.file", f"{path.name}: need at least two samples at finite, increasing times")
        if time_s[-1] - time_s[0] > MAX_TIME_S:
            raise self.error(f"{where}.file", f"{path.name}: the trace spans {time_s[-1] - time_s[0]:.3g} s; at most "
                             f"{MAX_TIME_S} s (24 h)")
        bad = np.flatnonzero(~np.isfinite(hz) | (hz < _HZ_BAND[0]) | (hz > _HZ_BAND[1]))
        if bad.size:
            raise self.error(f"{where}.file", f"{path.name}: sample {bad[0] + 1} is {hz[bad[0]]:g} Hz, outside "
                             f"{_HZ_BAND[0]:g}-{_HZ_BAND[1]:g} Hz")
        return (time_s - time_s[0]).tolist(), hz.tolist()

    def check_grid(self):
        """Load the grid, check every fleet bus exists and resolve ``grid.power_flow`` (slow: imports
        pandapower). Done once."""
        from v2g_testbed.sims.grid import (GridError, choose_solver, find_bus, has_asymmetric_elements, load_network,
                               single_phase_loads, zero_sequence_missing)

        if self._grid_checked:
            return

        try:
            net = load_network(self.scenario.grid.network, self.base_dir)
        except GridError as exc:
            raise self.error("grid.network", str(exc)) from None
        for i, g in enumerate(self.scenario.fleet.groups):
            if isinstance(g.bus, BusSet):
                self.groups[i]["bus"] = self._bus_set(net, g.bus, i)
                continue
            for j, bus in enumerate(g.bus if isinstance(g.bus, list) else [g.bus]):
                try:
                    find_bus(net, bus)
                except GridError as exc:
                    where = f"fleet.groups[{i}].bus" + (f"[{j}]" if isinstance(g.bus, list) else "")
                    raise self.error(where, str(exc)) from None
        self._resolve_load_phases(net, find_bus, single_phase_loads(net))
        self._check_reactive(net, find_bus)
        self._resolve_power_flow(zero_sequence_missing(net), has_asymmetric_elements(net))
        try:
            self.solver = choose_solver(self.scenario.grid.solver, self.power_flow == "unbalanced")
        except GridError as exc:
            raise self.error("grid.solver", str(exc)) from None
        self._grid_checked = True

    def _bus_set(self, net, bus_set: BusSet, i: int) -> list[int]:
        """The buses of ``{every: ..., feeder: ...}``, in index order."""
        from v2g_testbed.analysis.hosting import feeders
        from v2g_testbed.sims.grid import load_buses

        if bus_set.every == "load":
            found = load_buses(net)
        else:
            found = set(net.bus.index[(net.bus.vn_kv < 1.0) & net.bus.in_service].astype(int))
        what = f"every: {bus_set.every}"
        if bus_set.feeder is not None:
            known = feeders(net)
            if bus_set.feeder not in known:
                raise self.error(f"fleet.groups[{i}].bus.feeder", f"no feeder {bus_set.feeder!r} (feeders, named by "
                                 f"their first line: {', '.join(known) or 'none'})")
            found &= set(known[bus_set.feeder])
            what += f", feeder: {bus_set.feeder}"
        if not found:
            raise self.error(f"fleet.groups[{i}].bus", f"{{{what}}}: the grid has no such bus")
        return sorted(found)

    def _check_reactive(self, net, find_bus):
        """One reactive-power setting per bus: the grid simulator applies it to the bus's charging load."""
        seen: dict[int, tuple[int, dict]] = {}
        for i, g in enumerate(self.groups):
            for bus in g["bus"] if isinstance(g["bus"], list) else [g["bus"]]:
                index = find_bus(net, bus)
                first = seen.setdefault(index, (i, g["reactive"]))
                if first[1] != g["reactive"]:
                    raise self.error(f"fleet.groups[{i}].reactive", f"bus {bus!r} also has fleet.groups[{first[0]}], "
                                     "whose reactive setting differs: chargers at one bus share one setting")

    def _resolve_load_phases(self, net, find_bus, phases: dict[int, str]):
        for i, g in enumerate(self.groups):
            if g["phase"] != "same_as_load" or not single_phase(g):
                continue
            for bus in g["bus"] if isinstance(g["bus"], list) else [g["bus"]]:
                index = find_bus(net, bus)
                if index not in phases:
                    some = ", ".join(str(net.bus.at[b, "name"]) for b in list(phases)[:5])
                    raise self.error(f"fleet.groups[{i}].phase", f"same_as_load, but bus {bus!r} has no single-phase "
                                     f"load" + (f" (buses with one: {some}, ...)" if some else " (the grid has none)"))
                self.load_phases[str(bus)] = phases[index]

    def single_phase_chargers(self) -> bool:
        return any(single_phase(g) for g in self.groups)

    def _resolve_power_flow(self, missing: list[str], asymmetric_network: bool):
        wanted, network = self.scenario.grid.power_flow, self.scenario.grid.network
        if wanted == "unbalanced" and missing:
            raise self.error("grid.power_flow", f"unbalanced needs zero-sequence data that {network} lacks "
                             f"({', '.join(missing[:4])}{', ...' if len(missing) > 4 else ''})")
        unbalanced = self.single_phase_chargers() or asymmetric_network
        if wanted == "auto":
            wanted = "unbalanced" if unbalanced and not missing else "balanced"
        self.power_flow = wanted
        if wanted == "balanced" and self.single_phase_chargers():
            why = f"{network} has no zero-sequence data" if missing else "grid.power_flow is balanced"
            self.power_flow_note = f"single-phase chargers spread evenly over the three phases ({why})"

    def _inputs(self):
        """Every file the scenario reads besides itself: (the field as errors spell it, its keys in the
        scenario's data, the file)."""
        sc = self.scenario
        for i, ev in enumerate(sc.frequency.events):
            if ev.type == "trace":
                yield f"frequency.events[{i}].file", ("frequency", "events", i, "file"), self.base_dir / ev.file
        for i, c in enumerate(sc.fleet.catalogs):
            yield f"fleet.catalogs[{i}]", ("fleet", "catalogs", i), self.base_dir / c
        if sc.grid.network.endswith(".json"):
            yield "grid.network", ("grid", "network"), self.base_dir / sc.grid.network

    def input_files(self) -> dict[str, Path]:
        """Every file the scenario reads besides itself, by the field that names it."""
        return {field: path for field, _, path in self._inputs()}

    def resolved(self, inputs_dir: str = INPUTS_DIR) -> tuple[dict, dict[str, Path]]:
        """The scenario as run, itself a scenario that runs to the same verdicts: every default filled
        in, vehicle models inline, ``{every: ...}`` bus sets as the buses found, and each input file
        named as ``inputs_dir/<name>`` beside it. Returns the scenario and the copies to make (new
        relative name -> file read). What the loader resolved besides (services, network profile,
        power flow, solver) is in ``provenance.resolved``, for reading; a rerun resolves it again."""
        data = self.scenario.model_dump(mode="json", exclude={"provenance"})
        for g, resolved in zip(data["fleet"]["groups"], self.groups):
            g["model"] = dict(vars(resolved["vehicle"]))
            g["bus"] = resolved["bus"]  # {every: ...} as the buses it found
        copies: dict[str, Path] = {}
        for _, keys, path in self._inputs():
            if keys[:2] == ("fleet", "catalogs"):
                continue  # every model is inline now (below)
            # a rerun of a resolved scenario reads inputs/<n>-<file>: keep <file>, not <n>-<n>-<file>
            base = re.sub(r"^\d+-", "", path.name) if path.parent.name == inputs_dir else path.name
            name = f"{inputs_dir}/{len(copies)}-{base}"
            copies[name] = path
            node = data
            for key in keys[:-1]:
                node = node[key]
            node[keys[-1]] = name
        data["fleet"]["catalogs"] = []
        data["provenance"] = {"resolved": {"services": self.services, "network_profile": self.network_profile,
                                           "power_flow": self.power_flow, "solver": self.solver}}
        return data, copies


# -- JSON Schema ------------------------------------------------------------------------------

SCHEMA_ID = "https://github.com/v2g-testbed/v2g-testbed/docs/scenario.schema.json"
# a field's unit, from the suffix of its name (the schema's naming rule: every dimensioned field says its unit)
UNITS = {"_s": "s", "_ms": "ms", "_kw": "kW", "_mw": "MW", "_hz": "Hz", "_pu": "pu", "_pct": "%", "_kwh": "kWh",
         "_a": "A", "_v": "V", "_kbps": "kbit/s", "_per_s": "1/s", "_kw_per_s": "kW/s", "_hz_per_s": "Hz/s",
         "_hz_per_sqrt_s": "Hz/sqrt(s)", "_bytes": "bytes"}


def _unit(name: str) -> str | None:
    found = [suffix for suffix in UNITS if name.endswith(suffix)]
    return UNITS[max(found, key=len)] if found else None


def json_schema() -> dict:
    """The scenario file's JSON Schema (draft 2020-12), from the pydantic models: every field with its
    description and, where its name carries one, its unit (``unit`` and in the description)."""
    schema = Scenario.model_json_schema(mode="validation")

    def annotate(properties: dict):
        for name, prop in properties.items():
            unit = _unit(name)
            if unit is None:
                continue
            prop["unit"] = unit
            text = prop.get("description", "")
            prop["description"] = f"{text} [{unit}]" if text else f"[{unit}]"

    annotate(schema.get("properties", {}))
    for definition in schema.get("$defs", {}).values():
        annotate(definition.get("properties", {}))
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID,
            "$comment": "v2g-testbed scenario schema: generated by `v2g schema`; do not edit by hand", **schema,
            "title": "v2g-testbed scenario"}
