"""From fitted steps to a vehicle catalog: per vehicle, then per model, the mean, spread, count and 95 % interval
of each parameter, written in the format of ``sims/data/vehicles.csv`` (plus spread columns) so that a scenario
can list it in ``fleet.catalogs``.

Parameters (as the catalog defines them): ``t_a_s`` the start delay (the delay of steps whose magnitude rises),
``t_b_s`` the rise time (start of the ramp to its level), ``ramp_up_kw_per_s``; ``t_c_s`` the ramp-down delay,
``t_d_s`` the fall time, ``ramp_down_kw_per_s`` (steps whose magnitude falls). A model's value is the mean over
its vehicles' means (each vehicle counts once, however many steps it logged); ``*_sd`` the spread between
vehicles (or between steps, for one vehicle); ``*_ci95`` the half-width of the mean's 95 % interval (Student's t);
``*_n`` the steps behind it. A ramp faster than the sampling is only a lower bound: where every step of a model
says so, its ramp is written as that bound and flagged in ``notes``.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from v2g_testbed.analysis.calibration.fit import StepFit, fit_steps
from v2g_testbed.analysis.calibration.logs import CalibrationError, read_logs
from v2g_testbed.sims.files import write_whole

PARAMETERS = {  # catalog column -> (step direction, StepFit attribute)
    "t_a_s": ("up", "delay_s"), "t_b_s": ("up", "rise_s"), "ramp_up_kw_per_s": ("up", "ramp_kw_per_s"),
    "t_c_s": ("down", "delay_s"), "t_d_s": ("down", "rise_s"), "ramp_down_kw_per_s": ("down", "ramp_kw_per_s"),
}


@dataclass
class ModelFit:
    model: str
    vehicles: int
    values: dict[str, dict] = field(default_factory=dict)  # column -> {mean, sd, ci95, n, resolved}
    notes: list[str] = field(default_factory=list)


def _stats(per_vehicle: list[np.ndarray]) -> dict | None:
    """Mean over vehicles' means; spread between vehicles (between steps for one); 95 % interval of the mean."""
    from scipy.stats import t as student

    groups = [g for g in per_vehicle if g.size]
    if not groups:
        return None
    steps = np.concatenate(groups)
    means = np.array([g.mean() for g in groups])
    sample = means if len(groups) > 1 else steps
    mean = float(means.mean())
    sd = float(sample.std(ddof=1)) if sample.size > 1 else 0.0
    ci = float(student.ppf(0.975, sample.size - 1) * sd / np.sqrt(sample.size)) if sample.size > 1 else None
    return {"mean": mean, "sd": sd, "ci95": ci, "n": int(steps.size)}


def summarise(fits: list[StepFit]) -> list[ModelFit]:
    out = []
    for model in sorted({f.model for f in fits}):
        mine = [f for f in fits if f.model == model and f.rejected is None]
        vehicles = sorted({(f.source, f.vehicle) for f in mine})
        result = ModelFit(model, len(vehicles))
        for column, (direction, attr) in PARAMETERS.items():
            chosen = [f for f in mine if f.direction == direction and getattr(f, attr) is not None]
            if attr in ("ramp_kw_per_s", "rise_s") and any(f.ramp_resolved for f in chosen):
                chosen = [f for f in chosen if f.ramp_resolved]  # lower bounds only where nothing better exists
            per_vehicle = [np.array([getattr(f, attr) for f in chosen if (f.source, f.vehicle) == v]) for v in vehicles]
            stats = _stats(per_vehicle)
            if stats is None:
                continue
            stats["resolved"] = all(f.ramp_resolved for f in chosen) or attr == "delay_s"
            stats["step_error"] = float(np.mean([f.delay_err_s for f in chosen])) if attr == "delay_s" else None
            result.values[column] = stats
            if not stats["resolved"]:
                result.notes.append(f"{column}: faster than the logs' sampling: at least {stats['mean']:.3g}")
        out.append(result)
    return out


def calibrate(paths, model: str | None = None, ocpp_version: str = "2.0.1", phase_voltage_v: float = 230.0
              ) -> tuple[list[StepFit], list[ModelFit]]:
    """Fit every step of the logs ``paths`` (long CSVs or OCPP message logs); summarise per model."""
    fits = [f for log in read_logs(paths, model, ocpp_version, phase_voltage_v) for f in fit_steps(log)]
    if not any(f.rejected is None for f in fits):
        raise CalibrationError(f"{', '.join(map(str, paths))}: no step could be fitted "
                               f"({len(fits)} found; {fits[0].rejected if fits else 'no setpoint change'})")
    return fits, summarise(fits)


def source_key(paths) -> str:
    digest = hashlib.sha256()
    for path in sorted(map(str, paths)):
        digest.update(Path(path).read_bytes())
    return f"calibrated:{'+'.join(Path(p).name for p in paths)}#{digest.hexdigest()[:12]}"


def write_catalog(models: list[ModelFit], out: Path, key: str, battery_kwh: dict[str, float]) -> Path:
    """The catalog CSV (``sims/data/vehicles.csv`` columns, then spread columns), written whole."""
    from v2g_testbed.sims import catalog

    builtin = catalog.builtin_vehicles()
    rows = []
    for m in models:
        missing = [c for c in PARAMETERS if c not in m.values]
        if missing:
            raise CalibrationError(f"{m.model}: the logs have no fitted step for {', '.join(missing)} (both an "
                                   "upward and a downward step are needed)")
        kwh = battery_kwh.get(m.model) or (builtin[m.model].battery_kwh if m.model in builtin else None)
        if kwh is None:
            raise CalibrationError(f"{m.model}: battery size unknown: give --battery-kwh")
        row = {"model": m.model, "battery_kwh": kwh, "source_key": key}
        for column in PARAMETERS:
            v = m.values[column]
            row[column] = f"{v['mean']:.4g}"
            row[f"{column}_sd"] = f"{v['sd']:.3g}"
            row[f"{column}_ci95"] = "" if v["ci95"] is None else f"{v['ci95']:.3g}"
            row[f"{column}_n"] = v["n"]
        row["vehicles"] = m.vehicles
        row["notes"] = "; ".join(m.notes)
        rows.append(row)
    columns = ["model", "battery_kwh", *PARAMETERS, "source_key",
               *[f"{c}_{s}" for c in PARAMETERS for s in ("sd", "ci95", "n")], "vehicles", "notes"]
    text = io.StringIO()
    text.write(f"# vehicle catalog calibrated by v2g-testbed (v2g calibrate) from {key}\n")
    writer = csv.DictWriter(text, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    return write_whole(out, text.getvalue())  # whole or not at all
