"""Catalogs of vehicles, services and network profiles, read from the data files in ``sims/data``.

The data files carry the sources; this module only reads them. A user adds vehicles of their own
either inline in a scenario or in a CSV with the same columns as ``vehicles.csv``.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import math
from pathlib import Path

import yaml

DATA_DIR = Path(__file__).parent / "data"


class CatalogError(ValueError):
    """A catalog file or a catalog lookup is wrong (unknown name, missing column, bad value)."""


@dataclasses.dataclass(frozen=True)
class VehicleModel:
    """Measured onboard-charger behaviour of one vehicle model (averages; see vehicles.csv)."""

    # an inline model in a scenario is validated by pydantic: an unknown field is an error (said here, not
    # inherited from the scenario's config, which pydantic 2.13 stopped doing for dataclasses)
    __pydantic_config__ = {"extra": "forbid"}

    model: str
    battery_kwh: float
    t_a_s: float  # command -> power starts to rise
    t_b_s: float  # rise start -> full rated power (documentation; the model uses the ramp rate)
    t_c_s: float  # command -> power starts to fall
    t_d_s: float  # fall start -> zero power (documentation; the model uses the ramp rate)
    ramp_up_kw_per_s: float
    ramp_down_kw_per_s: float
    year: int | None = None
    source_key: str = "user"
    v2g_capable: bool = True   # can export (V2G); the built-in catalog says per model (v2g_source)
    dc_inlet: str | None = None  # CCS2 or CHAdeMO: which DC chargers it takes
    v2g_source: str = "user"
    measured_on: str = "ac"    # what t_a..ramps were measured on: "ac" (the onboard charger), "dc:<charger>"
    # the spread measured between vehicles of this model (standard deviations, as `v2g calibrate` writes them):
    # where given, each vehicle's delays and ramps are drawn with it instead of the scenario's spread_pct
    t_a_s_sd: float | None = None
    t_c_s_sd: float | None = None
    ramp_up_kw_per_s_sd: float | None = None
    ramp_down_kw_per_s_sd: float | None = None

    def __post_init__(self):
        for name, bounds in plausibility()["vehicle"].items():
            if name == "verify":
                continue
            value, (low, high) = getattr(self, name), bounds["hard"]
            if not (isinstance(value, (int, float)) and math.isfinite(value)):
                raise CatalogError(f"vehicle {self.model!r}: {name} must be a finite number, got {value}")
            if not low <= value <= high:
                raise CatalogError(f"vehicle {self.model!r}: {name} must lie in [{low:g}, {high:g}], got {value:g}")

    def implausible(self) -> list[str]:
        """Warnings for values far outside what measured vehicles do (plausibility.yaml)."""
        out = []
        for name, bounds in plausibility()["vehicle"].items():
            if name != "verify" and not bounds["plausible"][0] <= getattr(self, name) <= bounds["plausible"][1]:
                low, high = bounds["plausible"]
                out.append(f"vehicle {self.model!r}: {name} = {getattr(self, name):g} is outside what real "
                           f"vehicles do ({low:g}-{high:g})")
        return out

    @property
    def measured_rated_kw(self) -> float:
        """Rated power implied by the measurement: ramp-up rate times rise time."""
        return self.ramp_up_kw_per_s * self.t_b_s


_VEHICLE_FIELDS = {f.name: f.type for f in dataclasses.fields(VehicleModel)}


def read_vehicle_csv(path: Path) -> dict[str, VehicleModel]:
    """Read a vehicle catalog CSV (``#`` lines are comments). Raise CatalogError naming file, row and column."""
    path = Path(path)
    from v2g_testbed.sims.files import read_data_lines

    reader = csv.DictReader(read_data_lines(path, "catalog", CatalogError, "vehicle catalog"))
    rows = list(reader)
    required = {f.name for f in dataclasses.fields(VehicleModel) if f.default is dataclasses.MISSING}
    header_missing = required - set(reader.fieldnames or [])
    if header_missing:
        raise CatalogError(f"{path}: not a vehicle catalog: the header lacks {', '.join(sorted(header_missing))} (a "
                           "CSV with the columns of sims/data/vehicles.csv)")
    if not rows:
        raise CatalogError(f"{path}: no vehicle rows (a header line and one row per vehicle model)")
    models: dict[str, VehicleModel] = {}
    for i, row in enumerate(rows, start=2):
        missing = required - {k for k, v in row.items() if v not in (None, "")}
        if missing:
            raise CatalogError(f"{path}: row {i}: missing column(s) {', '.join(sorted(missing))}")
        kwargs = {}
        for name, value in row.items():
            if name not in _VEHICLE_FIELDS or value in (None, ""):
                continue
            try:
                if name in ("model", "source_key", "dc_inlet", "v2g_source", "measured_on"):
                    kwargs[name] = value.strip()
                elif name == "v2g_capable":
                    if value.strip().lower() not in ("true", "false"):
                        raise ValueError(value)
                    kwargs[name] = value.strip().lower() == "true"
                elif name == "year":
                    kwargs[name] = int(value)
                else:
                    kwargs[name] = float(value)
            except (ValueError, OverflowError):
                raise CatalogError(f"{path}: row {i}: column {name}: not a number: {value!r}") from None
        if "source_key" not in kwargs and path.resolve() != (DATA_DIR / "vehicles.csv").resolve():
            kwargs["source_key"] = str(path)
        vehicle = VehicleModel(**kwargs)
        models[vehicle.model] = vehicle
    return models


@dataclasses.dataclass(frozen=True)
class DCCharger:
    """A bidirectional DC charger's measured response (with the vehicle it was measured with, both directions)."""

    name: str
    protocol: str
    rated_kw: float
    t_a_s: float
    t_c_s: float
    ramp_up_kw_per_s: float
    ramp_down_kw_per_s: float
    measured_with: str
    source_key: str
    verify: bool

    def timing_of(self, vehicle: VehicleModel) -> VehicleModel:
        """``vehicle`` with this charger's measured delays and ramps (its battery, inlet and V2G flag kept)."""
        return dataclasses.replace(vehicle, t_a_s=self.t_a_s, t_c_s=self.t_c_s, ramp_up_kw_per_s=self.ramp_up_kw_per_s,
                                   ramp_down_kw_per_s=self.ramp_down_kw_per_s, t_b_s=self.rated_kw / self.ramp_up_kw_per_s,
                                   t_d_s=self.rated_kw / self.ramp_down_kw_per_s, source_key=self.source_key,
                                   measured_on=f"dc:{self.name}")


@functools.lru_cache(maxsize=1)
def dc_chargers() -> dict[str, DCCharger]:
    """Bidirectional DC chargers with measured response (data/dc_chargers.csv)."""
    lines = [ln for ln in (DATA_DIR / "dc_chargers.csv").read_text().splitlines()
             if ln.strip() and not ln.lstrip().startswith("#")]
    out = {}
    for row in csv.DictReader(lines):
        numbers = {k: float(row[k]) for k in ("rated_kw", "t_a_s", "t_c_s", "ramp_up_kw_per_s", "ramp_down_kw_per_s")}
        out[row["name"]] = DCCharger(name=row["name"], protocol=row["protocol"], measured_with=row["measured_with"],
                                     source_key=row["source_key"], verify=row["verify"].strip().lower() == "true",
                                     **numbers)
    return out


@functools.lru_cache(maxsize=1)
def plausibility() -> dict:
    """Hard and plausible bounds on inputs (data/plausibility.yaml)."""
    return yaml.safe_load((DATA_DIR / "plausibility.yaml").read_text())


@functools.lru_cache(maxsize=1)
def builtin_vehicles() -> dict[str, VehicleModel]:
    return read_vehicle_csv(DATA_DIR / "vehicles.csv")


@functools.lru_cache(maxsize=1)
def sources() -> dict[str, str]:
    return yaml.safe_load((DATA_DIR / "sources.yaml").read_text())


@functools.lru_cache(maxsize=1)
def _services_file() -> dict:
    return yaml.safe_load((DATA_DIR / "services.yaml").read_text())


@functools.lru_cache(maxsize=1)
def services() -> dict[str, dict]:
    """All services by id, one entry per direction (``DC-L``, ``DC-H``, ...)."""
    data = _services_file()
    out: dict[str, dict] = {}
    for entry in data["services"]:
        for direction in entry["directions"]:
            sid = f"{entry['id']}-{'L' if direction == 'low' else 'H'}"
            service = {k: v for k, v in entry.items() if k != "directions"}
            service.update(id=sid, family=entry["id"], direction=direction,
                           name=f"{entry['name']} {'Low' if direction == 'low' else 'High'}")
            _check_regimes(sid, service)
            if "support" in service:
                service["support"] = support_option(service, service["support"].get("option"), sid)
            out[sid] = service
    return out


def support_option(service: dict, option: str | None, where: str) -> dict:
    """The service's support resolved to one of its options (``support.options``; None: the catalog's default):
    ``{option, min_s[, withdrawal_pu_per_s], reactivation_min, options}``. Its delivery duration is the
    option's hold."""
    spec = service["support"]
    options = spec.get("options") or {}
    option = option or spec.get("option")
    if option not in options:
        raise CatalogError(f"services.yaml: {where}: support option {option!r} is not one of "
                           f"{', '.join(options) or 'none'}")
    service["delivery_duration_min"] = options[option]["min_s"] / 60.0
    return {"option": option, **options[option], "reactivation_min": spec.get("reactivation_min"), "options": options}


REGIME_NEEDS = {"step_test": None, "monitoring": "envelope", "trigger": None, "linear_activation": "activation"}


def _check_regimes(sid: str, service: dict) -> None:
    regimes = service.get("regimes") or []
    unknown = [r for r in regimes if r not in REGIME_NEEDS]
    if not regimes or unknown:
        raise CatalogError(f"services.yaml: {sid}: regimes must list some of {', '.join(REGIME_NEEDS)}"
                           + (f", got {unknown[0]!r}" if unknown else ""))
    for r in regimes:
        if REGIME_NEEDS[r] and REGIME_NEEDS[r] not in service:
            raise CatalogError(f"services.yaml: {sid}: regime {r} needs `{REGIME_NEEDS[r]}`")


def nominal_hz() -> float:
    return float(_services_file()["nominal_hz"])


@functools.lru_cache(maxsize=1)
def session_profiles() -> dict:
    """Named plug-in behaviour (sims/data/sessions.yaml): arrival, departure and state of charge on arrival."""
    return yaml.safe_load((DATA_DIR / "sessions.yaml").read_text())["profiles"]


@functools.lru_cache(maxsize=1)
def judging_parameters() -> dict:
    """What each judging parameter rests on (sims/data/judging_parameters.yaml): conventions and per family."""
    return yaml.safe_load((DATA_DIR / "judging_parameters.yaml").read_text())


def initiation_threshold_pu() -> float:
    return float(_services_file()["initiation_threshold_pu"])


def step_test_max_rise_fraction() -> float:
    return float(_services_file()["step_test_max_rise_fraction"])


def step_test_held_pu() -> float:
    return float(_services_file()["step_test_held_pu"])


@functools.lru_cache(maxsize=1)
def network_profiles() -> dict[str, dict]:
    return yaml.safe_load((DATA_DIR / "network_profiles.yaml").read_text())["profiles"]


@functools.lru_cache(maxsize=1)
def fleet_defaults() -> dict:
    return yaml.safe_load((DATA_DIR / "fleet_defaults.yaml").read_text())


@functools.lru_cache(maxsize=1)
def frequency_profiles() -> dict:
    return yaml.safe_load((DATA_DIR / "frequency_profiles.yaml").read_text())
