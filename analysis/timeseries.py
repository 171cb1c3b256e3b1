"""Reading a run's record (``timeseries.h5``) by the names ``sims/record.py`` defines, and nothing else."""

from __future__ import annotations

from dataclasses import dataclass

import h5py
import numpy as np

from v2g_testbed.sims import record


@dataclass
class Series:
    time_ms: np.ndarray
    value: np.ndarray

    def at(self, t_ms) -> np.ndarray:
        """Value held at each time in ``t_ms`` (the last sample at or before it; NaN before the first)."""
        idx = np.searchsorted(self.time_ms, np.asarray(t_ms), side="right") - 1
        out = self.value[np.clip(idx, 0, None)].astype(float)
        out[np.asarray(idx) < 0] = np.nan
        return out


class RunRecord:
    """The recorded outputs of one run, by name (``record.SERIES``), and its per-vehicle table."""

    def __init__(self, h5: h5py.File):
        self.h5 = h5

    @classmethod
    def open(cls, path) -> "RunRecord":
        return cls(h5py.File(path, "r"))

    def close(self):
        self.h5.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def has(self, name: str) -> bool:
        return record.SERIES[name].path in self.h5

    def series(self, name: str, lazy: bool = False) -> Series | None:
        """A ``series`` or ``matrix`` output: its times and values (None if the run did not record it). ``lazy``:
        the values stay in the file (an h5py dataset: index a row to read it) while the record is open: a
        million vehicles' matrix need not fit in memory to read one moment of it."""
        rec = record.SERIES[name]
        if rec.path not in self.h5:
            return None
        group = self.h5[rec.path]
        return Series(group["time_ms"][:], group["value"] if lazy else group["value"][:])

    def row_blocks(self, name: str, rows: int = 16):
        """A matrix output in blocks of ``rows`` time steps: (time_ms, values) pairs, read as they are needed."""
        group = self.h5[record.SERIES[name].path]
        times = group["time_ms"][:]
        for start in range(0, times.size, rows):
            yield times[start:start + rows], group["value"][start:start + rows]

    def table(self, name: str) -> dict[str, np.ndarray] | None:
        rec = record.SERIES[name]
        if rec.path not in self.h5:
            return None
        return {column: self.h5[rec.path][column][:] for column in self.h5[rec.path]}

    def labels(self, name: str) -> list[str]:
        rec = record.SERIES[name]
        if rec.path not in self.h5:
            return []
        return [v.decode() if isinstance(v, bytes) else str(v) for v in self.h5[rec.path]["value"][:]]

    def vehicles(self) -> dict[str, np.ndarray]:
        """The per-vehicle table as the fleet simulator was given it (labels as str, ``None`` stored as inf)."""
        group = self.h5[record.VEHICLES]
        return {k: (group[k].asstr()[:] if k in record.VEHICLE_LABELS else group[k][:])
                for k in record.VEHICLE_FIELDS if k in group}
