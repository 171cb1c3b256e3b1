"""Reading the recorded ``timeseries.h5`` (layout: see ``sims/recorder.py``)."""

from __future__ import annotations

from dataclasses import dataclass

import h5py
import numpy as np


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


def series(h5: h5py.File, path: str) -> Series | None:
    if path not in h5:
        return None
    group = h5[path]
    return Series(group["time_ms"][:], group["value"][:])


def table(h5: h5py.File, path: str) -> dict[str, np.ndarray] | None:
    if path not in h5:
        return None
    return {name: h5[path][name][:] for name in h5[path]}


def labels(h5: h5py.File, path: str) -> list[str]:
    if path not in h5:
        return []
    return [v.decode() if isinstance(v, bytes) else str(v) for v in h5[path]["value"][:]]
