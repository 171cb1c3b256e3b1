"""Grid limits: named sets (analysis/data/grid_limits.yaml) with per-voltage-level voltage bands.

The `grid` rule and hosting capacity read limits only through ``Limits``: a scenario's ``grid.limits``
(``set`` and optional overrides) resolved against the data file, and the voltage band of each bus from its
nominal voltage (pandapower ``vn_kv``, recorded by the grid simulator as ``bus_kv``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

DATA = Path(__file__).parent / "data" / "grid_limits.yaml"


@functools.cache
def catalog() -> dict:
    return yaml.safe_load(DATA.read_text())


def set_names() -> list[str]:
    return list(catalog()["sets"])


@dataclass(frozen=True)
class Limits:
    """One resolved limit set: voltage band rows ``(below_kv, v_min_pu, v_max_pu)``, loading, unbalance."""

    name: str
    levels: tuple[tuple[float, float, float], ...]
    loading_pct: float
    unbalance_pct: float
    source: str

    @classmethod
    def of(cls, limits: dict | None) -> "Limits":
        """From a scenario's ``grid.limits`` (model_dump: ``set`` and overrides, None where not set)."""
        limits = dict(limits or {})
        name = limits.get("set") or catalog()["default"]
        data = catalog()["sets"][name]
        levels = tuple((float(r["below_kv"]), float(r["v_min_pu"]), float(r["v_max_pu"])) for r in data["voltage"])
        if limits.get("v_min_pu") is not None:
            levels = tuple((k, float(limits["v_min_pu"]), hi) for k, _, hi in levels)
        if limits.get("v_max_pu") is not None:
            levels = tuple((k, lo, float(limits["v_max_pu"])) for k, lo, _ in levels)
        pick = {k: float(limits[k]) if limits.get(k) is not None else float(data[k]) for k in ("loading_pct", "unbalance_pct")}
        return cls(name, levels, pick["loading_pct"], pick["unbalance_pct"], data["source"])

    def band(self, kv) -> tuple[np.ndarray, np.ndarray]:
        """(v_min_pu, v_max_pu) of each bus of nominal voltage ``kv`` (array)."""
        kv = np.asarray(kv, float)
        below = np.array([k for k, _, _ in self.levels])
        row = np.minimum(np.searchsorted(below, kv, side="right"), len(below) - 1)
        return np.array([lo for _, lo, _ in self.levels])[row], np.array([hi for _, _, hi in self.levels])[row]

    @property
    def uniform(self) -> bool:
        return len({(lo, hi) for _, lo, hi in self.levels}) == 1

    def describe(self, kv=None) -> str:
        """'0.9-1.1 pu' or, per level present in ``kv``, 'LV 0.94-1.1 pu, <132 kV 0.94-1.06 pu'."""
        rows = self.levels
        if kv is not None:
            present = set(np.minimum(np.searchsorted([k for k, _, _ in rows], np.asarray(kv, float), side="right"),
                                     len(rows) - 1).tolist())
            rows = tuple(r for i, r in enumerate(rows) if i in present)
        if len({(lo, hi) for _, lo, hi in rows}) == 1:
            return f"{rows[0][1]:g}-{rows[0][2]:g} pu"
        return ", ".join(f"{'<' + format(k, 'g') + ' kV' if np.isfinite(k) else 'above'} {lo:g}-{hi:g} pu"
                         for k, lo, hi in rows)
