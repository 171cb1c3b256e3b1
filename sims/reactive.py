"""Charger reactive power: a fixed power factor or a Q(U) characteristic (sims/data/reactive.yaml).

``reactive_kvar(p_kw, v_pu, spec, rated_kw)`` gives the reactive power (kvar, load convention: + absorbs)
of chargers drawing ``p_kw`` (+ import, - export) with rated power ``rated_kw`` at a bus of voltage ``v_pu``.
``spec``: None (unity power factor), ``{"mode": "power_factor", "power_factor": 0.95, "absorb": True}``
(``|Q| = |P| tan(arccos pf)``, absorbing or injecting whatever the direction of P), or
``{"mode": "q_u", "points": [[v_pu, q_fraction], ...]}`` (Q = q(v) x rated power, linear between points,
flat beyond them). Used by the grid simulator and by hosting capacity, so both apply one definition.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import yaml

DATA = Path(__file__).parent / "data" / "reactive.yaml"


@functools.cache
def curves() -> dict:
    return yaml.safe_load(DATA.read_text())["q_u"]


def resolve(spec: dict | None) -> dict | None:
    """A scenario's ``reactive`` block with a named curve replaced by its points (None: unity power factor)."""
    if not spec or spec.get("mode", "unity") == "unity":
        return None
    out = dict(spec)
    if out["mode"] == "q_u":
        curve = out.get("curve", "en50549")
        out["points"] = [list(p) for p in (curves()[curve]["points"] if isinstance(curve, str) else curve)]
    return out


def reactive_kvar(p_kw, v_pu, spec: dict | None, rated_kw) -> np.ndarray:
    """Reactive power (kvar, + absorbed) per bus: see the module docstring."""
    p_kw = np.asarray(p_kw, float)
    if spec is None:
        return np.zeros_like(p_kw)
    if spec["mode"] == "power_factor":
        tan_phi = np.tan(np.arccos(float(spec["power_factor"])))
        return np.abs(p_kw) * tan_phi * (1.0 if spec.get("absorb", True) else -1.0)
    points = np.asarray(spec["points"], float)
    q = np.interp(np.asarray(v_pu, float), points[:, 0], points[:, 1])
    return q * np.asarray(rated_kw, float) * (np.abs(p_kw) > 0)  # a charger that is not running holds no Q
