"""Reading step-test logs.

* A long CSV, one row per sample of one vehicle. Columns: ``time_s`` (seconds, any origin, increasing per
  vehicle), ``vehicle`` (an id), ``setpoint_kw`` (the command in force: a change is a step, taking effect when the
  row shows it), ``power_kw`` (the measured power, + import), optionally ``model`` (the vehicle model; else
  ``--model``). ``#`` lines are comments.
* An OCPP message log (``.jsonl``): one JSON object per line, ``{"time": ISO-8601 or seconds, "charge_point": id,
  "frame": [2, "uid", "Action", {payload}]}`` (an OCPP-J CALL, as the central system or the charger sent it).
  Each frame is parsed and validated against the OCPP JSON schemas by the maintained ``ocpp`` library (2.0.1 or
  1.6). ``SetChargingProfile`` gives the setpoint (its schedule's first period's limit, in W, or in A times the
  phases and the phase voltage; a negative limit is discharge), at the moment the line was logged;
  ``MeterValues`` and ``TransactionEvent`` give the response (``Power.Active.Import`` +, ``Power.Active.Export``
  -, per unit of measure; the meter value's own timestamp). The vehicle is the charge point and EVSE.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from v2g_testbed.sims.files import InputFileError, read_data_lines, read_text

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
    # exact command times, where the log has them apart from the samples (OCPP): (time_s, setpoint_kw) each
    commands: list[tuple[float, float]] | None = None


def read_logs(paths, model: str | None = None, ocpp_version: str = "2.0.1", phase_voltage_v: float = 230.0,
              phases: int = 3) -> list[VehicleLog]:
    """Every vehicle's samples from the logs ``paths`` (long CSVs, or OCPP message logs: ``.jsonl``)."""
    ocpp_paths = [p for p in map(Path, paths) if p.suffix.lower() in (".jsonl", ".json")]
    out = [log for p in ocpp_paths for log in read_ocpp(p, model, ocpp_version, phase_voltage_v, phases)]
    csv_paths = [p for p in map(Path, paths) if p not in ocpp_paths]
    return out + (_read_csv(csv_paths, model) if csv_paths else [])


def _read_csv(paths, model: str | None) -> list[VehicleLog]:
    rows: dict[tuple[str, str], list] = {}
    models: dict[tuple[str, str], str] = {}
    for path in map(Path, paths):
        reader = csv.DictReader(read_data_lines(path, "trace", CalibrationError))
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


def _seconds(value, where: str) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    from datetime import datetime

    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise CalibrationError(f"{where}: time {value!r} is neither seconds nor ISO-8601") from None


def _power_kw(sampled: list[dict]) -> float | None:
    """Active power from an OCPP sampledValue list (Import +, Export -), in kW."""
    total, found = 0.0, False
    for s in sampled:
        measurand = s.get("measurand")
        if measurand not in ("Power.Active.Import", "Power.Active.Export") or s.get("phase"):
            continue
        unit = (s.get("unitOfMeasure") or {}).get("unit") or s.get("unit") or "W"
        scale = {"W": 1e-3, "kW": 1.0}.get(unit)
        if scale is None:
            continue
        value = float(s["value"]) * scale * 10 ** float((s.get("unitOfMeasure") or {}).get("multiplier", 0))
        total += value if measurand.endswith("Import") else -value
        found = True
    return total if found else None


def _first_invalid(calls, version: str):
    """The first CALL whose payload the ocpp library's JSON schemas refuse: (where, message, error), or None.
    (The library validates in a coroutine: run here on a loop of its own, in a thread where one is running
    already, as in a notebook.)"""
    import asyncio

    from ocpp.exceptions import OCPPError
    from ocpp.messages import validate_payload

    async def check():
        for where, _, message in calls:
            try:
                await validate_payload(message, version)
            except (OCPPError, ValueError) as exc:
                return where, message, exc
        return None

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(check())
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, check()).result()


def read_ocpp(path, model: str | None, version: str = "2.0.1", phase_voltage_v: float = 230.0,
              phases: int = 3) -> list[VehicleLog]:
    """Setpoints and metered power per charge point and EVSE from an OCPP message log (see the module)."""
    import json

    from ocpp.exceptions import OCPPError
    from ocpp.messages import Call, unpack

    if version not in ("2.0.1", "1.6"):
        raise CalibrationError(f"--ocpp-version: 2.0.1 or 1.6, got {version!r}")
    path = Path(path)
    try:
        lines = read_text(path, "trace").splitlines()
    except OSError as exc:
        raise CalibrationError(f"{path}: cannot read: {exc.strerror}") from None
    except InputFileError as exc:
        raise CalibrationError(f"{path}: {exc}") from None
    commands: dict[str, list] = {}
    samples: dict[str, list] = {}
    calls = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}: line {n}"
        try:
            entry = json.loads(line)
            frame = entry["frame"]
            message = unpack(json.dumps(frame) if not isinstance(frame, str) else frame)
        except (ValueError, KeyError, TypeError, OCPPError) as exc:
            raise CalibrationError(f"{where}: not an OCPP-J frame: {str(exc).splitlines()[0][:120]}") from None
        if not isinstance(message, Call):
            continue  # CALLRESULT / CALLERROR: nothing to calibrate from
        calls.append((where, entry, message))
    invalid = _first_invalid(calls, version)
    if invalid is not None:
        where, message, exc = invalid
        raise CalibrationError(f"{where}: {message.action} is not valid OCPP {version}: "
                               f"{str(exc).splitlines()[0][:160]}")
    for where, entry, message in calls:
        t = _seconds(entry.get("time"), where)
        payload, cp = message.payload, str(entry.get("charge_point", "cp"))
        if message.action == "SetChargingProfile":
            profile = payload.get("chargingProfile") or payload.get("csChargingProfiles")
            schedule = profile["chargingSchedule"]
            schedule = schedule[0] if isinstance(schedule, list) else schedule
            period = schedule["chargingSchedulePeriod"][0]
            n_phases = period.get("numberPhases", phases)
            limit = float(period["limit"])
            kw = limit / 1000 if schedule["chargingRateUnit"] == "W" else limit * n_phases * phase_voltage_v / 1000
            evse = payload.get("evseId", payload.get("connectorId", 1))
            commands.setdefault(f"{cp}/{evse}", []).append((t, kw))
        elif message.action in ("MeterValues", "TransactionEvent"):
            evse = payload.get("evseId", payload.get("connectorId", (payload.get("evse") or {}).get("id", 1)))
            for value in payload.get("meterValue", []):
                kw = _power_kw(value.get("sampledValue", []))
                if kw is not None:
                    samples.setdefault(f"{cp}/{evse}", []).append((_seconds(value["timestamp"], where), kw))
    out = []
    for vehicle, rows in samples.items():
        data = np.array(sorted(set(rows)))
        cmds = sorted(commands.get(vehicle, []))
        if not cmds:
            continue
        t0 = min(data[0, 0], cmds[0][0])
        set_at = np.array([c[0] for c in cmds])
        level = np.array([0.0] + [c[1] for c in cmds])
        setpoint = level[np.searchsorted(set_at, data[:, 0], side="right")]
        if not model:
            raise CalibrationError(f"{path}: OCPP logs name no vehicle model: give --model")
        out.append(VehicleLog(vehicle, model, str(path), data[:, 0] - t0, setpoint, data[:, 1],
                              commands=[(c[0] - t0, c[1]) for c in cmds]))
    if not out:
        raise CalibrationError(f"{path}: no charge point with both SetChargingProfile and metered power")
    return out
