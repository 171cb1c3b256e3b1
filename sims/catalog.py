"""Catalogs of vehicles, services and network profiles, read from the data files in ``sims/data``.

The data files carry the sources; this module only reads them. A user adds vehicles of their own
either inline in a scenario or in a CSV with the same columns as ``vehicles.csv``.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
from pathlib import Path

import yaml

DATA_DIR = Path(__file__).parent / "data"


class CatalogError(ValueError):
    """A catalog file or a catalog lookup is wrong (unknown name, missing column, bad value)."""


@dataclasses.dataclass(frozen=True)
class VehicleModel:
    """Measured onboard-charger behaviour of one vehicle model (averages; see vehicles.csv)."""

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

    def __post_init__(self):
        for name in ("battery_kwh", "ramp_up_kw_per_s", "ramp_down_kw_per_s"):
            if not getattr(self, name) > 0:
                raise CatalogError(f"vehicle {self.model!r}: {name} must be > 0, got {getattr(self, name)}")
        for name in ("t_a_s", "t_b_s", "t_c_s", "t_d_s"):
            if not getattr(self, name) >= 0:
                raise CatalogError(f"vehicle {self.model!r}: {name} must be >= 0, got {getattr(self, name)}")

    @property
    def measured_rated_kw(self) -> float:
        """Rated power implied by the measurement: ramp-up rate times rise time."""
        return self.ramp_up_kw_per_s * self.t_b_s


_VEHICLE_FIELDS = {f.name: f.type for f in dataclasses.fields(VehicleModel)}


def read_vehicle_csv(path: Path) -> dict[str, VehicleModel]:
    """Read a vehicle catalog CSV (``#`` lines are comments). Raise CatalogError naming file, row and column."""
    path = Path(path)
    try:
        lines = [ln for ln in path.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    except OSError as exc:
        raise CatalogError(f"{path}: cannot read vehicle catalog: {exc.strerror}") from None
    rows = list(csv.DictReader(lines))
    required = {f.name for f in dataclasses.fields(VehicleModel) if f.default is dataclasses.MISSING}
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
                if name in ("model", "source_key"):
                    kwargs[name] = value.strip()
                elif name == "year":
                    kwargs[name] = int(value)
                else:
                    kwargs[name] = float(value)
            except ValueError:
                raise CatalogError(f"{path}: row {i}: column {name}: not a number: {value!r}") from None
        if "source_key" not in kwargs and path.resolve() != (DATA_DIR / "vehicles.csv").resolve():
            kwargs["source_key"] = str(path)
        vehicle = VehicleModel(**kwargs)
        models[vehicle.model] = vehicle
    return models


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
            out[sid] = service
    return out


def nominal_hz() -> float:
    return float(_services_file()["nominal_hz"])


def initiation_threshold_pu() -> float:
    return float(_services_file()["initiation_threshold_pu"])


@functools.lru_cache(maxsize=1)
def network_profiles() -> dict[str, dict]:
    return yaml.safe_load((DATA_DIR / "network_profiles.yaml").read_text())["profiles"]


@functools.lru_cache(maxsize=1)
def fleet_defaults() -> dict:
    return yaml.safe_load((DATA_DIR / "fleet_defaults.yaml").read_text())


@functools.lru_cache(maxsize=1)
def frequency_profiles() -> dict:
    return yaml.safe_load((DATA_DIR / "frequency_profiles.yaml").read_text())
