"""The scenario file's schema: pydantic models of every section, checked field by field (finite numbers,
bounds, no true/false for a number), and the one error a scenario raises (``ScenarioError``)."""

from __future__ import annotations

import typing
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from v2g_testbed.sims import catalog
from v2g_testbed.sims.catalog import VehicleModel
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
    copies: int = Field(default=1, ge=1, le=10**6, description=(
        "the network stands for this many identical copies with the fleet shared evenly among them (a national "
        "fleet as many feeders): each copy carries 1/copies of the chargers at each bus, and the grid's voltages "
        "and loadings are each copy's"))


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


_TIME_OF_DAY = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


class Sessions(_Strict):
    """When the group's vehicles are plugged in: a named profile (sims/data/sessions.yaml), a sessions file of one's
    own fleet, or a fixed window."""
    profile: Literal["home", "workplace", "depot"] | None = None
    """arrival, departure and state of charge on arrival drawn per vehicle from this profile"""
    plug_in: str | None = Field(default=None, pattern=_TIME_OF_DAY, description="every vehicle arrives at HH:MM")
    plug_out: str | None = Field(default=None, pattern=_TIME_OF_DAY,
                                 description="and leaves at HH:MM (earlier than plug_in: the next day)")
    file: str | None = None
    """a CSV of recorded sessions (arrival, departure as HH:MM; soc_arrival 0-1; optional energy_kwh, the energy
    wanted by departure, and weekday, the day of arrival Mon-Sun), relative to the scenario: each vehicle draws one
    of them (of the run's day and the day before, where the file has weekdays)"""

    @model_validator(mode="after")
    def _one_kind(self):
        kinds = [self.profile is not None, self.file is not None, self.plug_in is not None or self.plug_out is not None]
        if sum(kinds) != 1 or (kinds[2] and (self.plug_in is None or self.plug_out is None)):
            raise ValueError("give one of: a profile, a file, or plug_in and plug_out")
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
    sessions: Sessions | None = None
    """plug-in behaviour: who is plugged in at fleet.time_of_day, with what charge (replaces plugged_in_fraction,
    soc, baseline_kw, arrival_s and departure_s)"""
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
    time_of_day: str = Field(default="12:00", pattern=_TIME_OF_DAY,
                             description="local time the run starts at, for groups with sessions")
    weekday: Literal["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"] | None = None
    """the day the run is on, for sessions files with a weekday column (default: the day of grid.profile_time, if
    set; else sessions do not depend on the day)"""
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
    support: str | None = Field(default=None, max_length=40)
    """for a service whose support must be held (Nordic FFR): which of the market's options the aggregator
    follows, e.g. long (hold 30 s) or short (hold 5 s, then withdraw at most 20 % of the capacity a second);
    default: the catalog's"""


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
