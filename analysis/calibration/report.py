"""``v2g calibrate --report DIR``: per model, every measured step overlaid with the response the fit gives it
(``<model>.png``), the fitted parameters with their intervals (``parameters.csv``) and every step with its fit or
the reason it was left out (``steps.csv``)."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np

from v2g_testbed.analysis.calibration.catalog import PARAMETERS, ModelFit
from v2g_testbed.analysis.calibration.fit import StepFit


def fitted_curve(step: StepFit, times: np.ndarray) -> np.ndarray:
    """The model's response with the fitted parameters: the old level, the delay, a ramp, the new level."""
    p0, p1 = step.level_before_kw, step.level_after_kw
    start = step.delay_s
    rate = step.ramp_kw_per_s if step.ramp_kw_per_s else np.inf
    moved = np.clip((times - start) * rate, 0.0, abs(p1 - p0))
    return p0 + np.sign(p1 - p0) * moved


def write(out: Path, fits: list[StepFit], models: list[ModelFit]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    made = []
    for model in sorted({f.model for f in fits}):
        mine = [f for f in fits if f.model == model and f.rejected is None and f.samples is not None]
        fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=False)
        for ax, direction in zip(axes, ("up", "down")):
            for f in (s for s in mine if s.direction == direction):
                t, p = f.samples
                line = ax.plot(t, p, ".", ms=3, alpha=0.6)[0]
                grid = np.linspace(t.min(), t.max(), 400)
                ax.plot(grid, fitted_curve(f, grid), "-", lw=1, color=line.get_color())
            ax.axvline(0, color="k", lw=0.5)
            ax.set(title=f"{model}: steps {'up (t_a, ramp up)' if direction == 'up' else 'down (t_c, ramp down)'}",
                   xlabel="seconds from the command", ylabel="kW")
        fig.tight_layout()
        path = out / f"{re.sub(r'[^A-Za-z0-9._-]+', '_', model)}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        made.append(path)
    with open(out / "parameters.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["model", "parameter", "mean", "ci95", "sd", "steps", "vehicles", "resolved"])
        for m in models:
            for column in PARAMETERS:
                v = m.values.get(column)
                if v:
                    w.writerow([m.model, column, v["mean"], v["ci95"], v["sd"], v["n"], m.vehicles, v["resolved"]])
    with open(out / "steps.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["source", "vehicle", "model", "at_s", "from_kw", "to_kw", "direction", "sample_s", "delay_s",
                    "delay_err_s", "ramp_kw_per_s", "ramp_err_kw_per_s", "ramp_resolved", "rise_s", "rejected"])
        for s in fits:
            w.writerow([s.source, s.vehicle, s.model, s.at_s, s.from_kw, s.to_kw, s.direction, s.sample_s, s.delay_s,
                        s.delay_err_s, s.ramp_kw_per_s, s.ramp_err_kw_per_s, s.ramp_resolved, s.rise_s, s.rejected or ""])
    return [*made, out / "parameters.csv", out / "steps.csv"]
