"""Reading step-test logs: a long CSV, one row per sample of one vehicle.

Columns: ``time_s`` (seconds, any origin, increasing per vehicle), ``vehicle`` (an id), ``setpoint_kw`` (the
command in force: a change is a step, taking effect when the row shows it), ``power_kw`` (the measured power,
+ import), optionally ``model`` (the vehicle model; else ``--model``). ``#`` lines are comments.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from v2g_testbed.sims.files import InputFileError, read_text

REQUIRED = ("time_s", "vehicle", "setpoint_kw", "power_kw")


class CalibrationError(ValueError):
    """A log that cannot be calibrated from: one line naming the file, the row or column, and the problem."""


@dataclass
class VehicleLog:
    vehicle: str
    model: str
    source: str
    time_s: np.ndarray
    setpoint_kw: np.ndarray
    power_kw: np.ndarray


def read_logs(paths, model: str | None = None) -> list[VehicleLog]:
    """Every vehicle's samples from the long CSVs ``paths``, in time order."""
    rows: dict[tuple[str, str], list] = {}
    models: dict[tuple[str, str], str] = {}
    for path in map(Path, paths):
        try:
            lines = [ln for ln in read_text(path, "trace").splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        except OSError as exc:
            raise CalibrationError(f"{path}: cannot read: {exc.strerror}") from None
        except InputFileError as exc:
            raise CalibrationError(f"{path}: {exc}") from None
        reader = csv.DictReader(lines)
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise CalibrationError(f"{path}: the header lacks {', '.join(missing)} (columns: {', '.join(REQUIRED)}"
                                   ", optionally model)")
        for n, row in enumerate(reader, start=2):
            try:
                t, sp, p = float(row["time_s"]), float(row["setpoint_kw"]), float(row["power_kw"])
            except (TypeError, ValueError):
                raise CalibrationError(f"{path}: row {n}: time_s, setpoint_kw and power_kw must be numbers") from None
            if not all(math.isfinite(x) for x in (t, sp, p)):
                raise CalibrationError(f"{path}: row {n}: numbers must be finite")
            key = (str(path), row["vehicle"])
            name = row.get("model") or model
            if not name:
                raise CalibrationError(f"{path}: row {n}: no model column and no --model")
            models.setdefault(key, name)
            rows.setdefault(key, []).append((t, sp, p))
    if not rows:
        raise CalibrationError(f"{', '.join(map(str, paths))}: no samples")
    out = []
    for (source, vehicle), samples in rows.items():
        data = np.array(sorted(samples))
        if np.any(np.diff(data[:, 0]) <= 0):
            raise CalibrationError(f"{source}: vehicle {vehicle}: two samples at the same time")
        out.append(VehicleLog(vehicle, models[(source, vehicle)], source, data[:, 0], data[:, 1], data[:, 2]))
    return out
