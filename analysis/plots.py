"""PNG plots of one run, read from its ``timeseries.h5``.

``write_all(run_dir, services, network_profile, nominal_hz, grid_limits)`` writes, where the data exists:
  response.png      frequency, and per service the fleet's response against the required response,
                    the performance envelope and the deadlines
  models.png        power of every vehicle, grouped by model, with each model's mean
  delay_budget.png  per vehicle: frequency measurement, network, charger start delay, ramp
  latency.png       histogram of setpoint latencies (networked profiles)
  grid.png          bus voltage band (per phase, with an unbalanced power flow) and line / transformer
                    loading over time, and the voltage unbalance, with the scenario's limits
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from v2g_testbed.analysis.budget import first_receipts  # noqa: E402
from v2g_testbed.analysis.envelope import envelope  # noqa: E402
from v2g_testbed.analysis.limits import Limits  # noqa: E402
from v2g_testbed.analysis.timeseries import RunRecord  # noqa: E402
from v2g_testbed.analysis.verdict import service_trace  # noqa: E402
from v2g_testbed.sims import PHASES  # noqa: E402
from v2g_testbed.sims.obc import time_to_reach_s  # noqa: E402

COLORS = plt.rcParams["axes.prop_cycle"].by_key()["color"]


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _deadlines(ax, service: dict, t0_s: float, prefix: str = ""):
    """Vertical lines at the service's initiation and full-delivery deadlines after ``t0_s`` (a service
    without an initiation deadline, like FCR, gets only the second)."""
    for offset, name, color in ((service["initiation_max_s"], "initiation deadline", "tab:orange"),
                                (service["full_delivery_max_s"], "full-delivery deadline", "tab:red")):
        if offset is not None:
            ax.axvline(t0_s + offset, color=color, lw=1.2, label=prefix + name)


def response(rec, services, nominal_hz, path: Path) -> Path | None:
    freq, power = rec.series("frequency"), rec.series("fleet_power")
    traces = [(s, service_trace(s, services, freq, power, nominal_hz, rec.vehicles())) for s in services]
    traces = [(s, tr) for s, tr in traces if tr is not None]
    fig, axes = plt.subplots(1 + max(len(traces), 1), 1, figsize=(9, 2.6 + 2.6 * max(len(traces), 1)), sharex=True)
    t_end_s = power.time_ms[-1] / 1000
    f_t = np.append(freq.time_ms / 1000, t_end_s)
    axes[0].step(f_t, np.append(freq.value, freq.value[-1]), where="post", color="k")
    axes[0].set_ylabel("frequency (Hz)")
    axes[0].set_title("Frequency and the fleet's response")
    if not traces:
        axes[1].text(0.5, 0.5, "the frequency never activated a contracted service", ha="center", transform=axes[1].transAxes)
    for ax, (s, tr) in zip(axes[1:], traces):
        t = tr["t_ms"] / 1000
        contracted = s["contracted_kw"] / 1000
        if "envelope" in s:
            grid = np.arange(max(tr["t_event"] - 1000, tr["t_ms"][0]), tr["t_ms"][-1], round(1000 / s["envelope"]["sample_hz"]))
            lower, upper = envelope(s, freq, grid, nominal_hz)
            ax.fill_between(grid / 1000, lower * contracted, upper * contracted, color="tab:green", alpha=0.2,
                            step="post", label="performance envelope")
        ax.plot(t, tr["required_kw"] / 1000, "--", color="tab:gray", label="required")
        ax.plot(t, tr["response_kw"] / 1000, color="tab:blue", label="fleet response")
        t0 = tr["t_event"] / 1000
        _deadlines(ax, s, t0)
        ax.axvline(t0, color="k", lw=0.8, ls=":", label="frequency leaves the deadband")
        ax.set_ylabel(f"{s['id']} response (MW)")
        ax.legend(fontsize=7, loc="lower right")
    axes[-1].set_xlabel("time (s)")
    return _save(fig, path)


def _codes(names: np.ndarray, models_seen: list[str]) -> np.ndarray:
    """Index of each vehicle's model in ``models_seen`` (vectorised: a million names)."""
    order = np.argsort(models_seen)
    return order[np.searchsorted(np.array(models_seen)[order], names)]


def models(rec, path: Path) -> Path | None:
    if not rec.has("vehicle_power"):
        return None
    names = rec.vehicles()["model"]
    models_seen = list(dict.fromkeys(names))
    code = _codes(names, models_seen)
    counts = np.bincount(code, minlength=len(models_seen))
    shown = [np.flatnonzero(code == k)[:25] for k in range(len(models_seen))]  # a few vehicles of each model
    columns = np.concatenate(shown)
    # read in blocks of time steps: a fleet of a million needs the per-model means, never the whole matrix
    times, means, lines = [], [], []
    for t_ms, block in rec.row_blocks("vehicle_power"):
        block = np.asarray(block, dtype=np.float64)
        times.append(t_ms / 1000)
        means.append(np.stack([np.bincount(code, weights=row, minlength=len(models_seen)) for row in block]) / counts)
        lines.append(block[:, columns])
    t, mean, line = np.concatenate(times), np.vstack(means), np.vstack(lines)
    fig, ax = plt.subplots(figsize=(9, 4.5))
    start = 0
    for k, model in enumerate(models_seen):
        color = COLORS[k % len(COLORS)]
        ax.plot(t, line[:, start:start + shown[k].size], color=color, lw=0.4, alpha=0.35)
        start += shown[k].size
        ax.plot(t, mean[:, k], color=color, lw=2, label=f"{model} (mean of {counts[k]})")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("power per vehicle (kW, + import)")
    ax.set_title("Response of each vehicle model")
    ax.legend(fontsize=7)
    return _save(fig, path)


def budget_rows(rec, t_event_ms: int, measurement_ms: float) -> dict[str, np.ndarray] | None:
    """Per vehicle that received a setpoint after t_event: the delay budget in seconds (the charger's part by
    the OBC model's own rule, ``v2g_testbed.sims.obc.time_to_reach_s``)."""
    got = first_receipts(rec, t_event_ms)
    if got is None:
        return None
    vehicle, recv, sent_ms, kw = got["vehicle"], got["recv_ms"], got["sent_ms"], got["kw"]
    vehicles = rec.vehicles()
    start, ramp = time_to_reach_s(vehicles, vehicle, vehicles["baseline_kw"][vehicle], kw)
    return {"vehicle": vehicle, "measurement_s": np.full(vehicle.size, measurement_ms / 1000.0),
            "dispatch_wait_s": np.maximum((sent_ms - t_event_ms - measurement_ms) / 1000.0, 0.0),
            "network_s": (recv - sent_ms) / 1000.0, "start_s": start, "ramp_s": ramp}


def delay_budget(rec, services, nominal_hz, measurement_ms, path: Path) -> Path | None:
    freq, power = rec.series("frequency"), rec.series("fleet_power")
    traces = [(s, service_trace(s, services, freq, power, nominal_hz, rec.vehicles())) for s in services]
    traces = [(s, tr) for s, tr in traces if tr is not None]
    if not traces:
        return None
    s, tr = traces[0]
    rows = budget_rows(rec, tr["t_event"], measurement_ms)
    if rows is None or rows["vehicle"].size == 0:
        return None
    parts = [("measurement_s", "frequency measurement"), ("dispatch_wait_s", "dispatch interval"),
             ("network_s", "network"), ("start_s", "charger start delay"), ("ramp_s", "ramp to setpoint")]
    total = sum(rows[k] for k, _ in parts)
    order = np.argsort(total)
    if order.size > 300:
        order = order[np.linspace(0, order.size - 1, 300).round().astype(int)]
    names = rec.vehicles()["model"][rows["vehicle"][order]]
    fig, ax = plt.subplots(figsize=(9, 5))
    left = np.zeros(order.size)
    y = np.arange(order.size)
    for k, (key, label) in enumerate(parts):
        width = rows[key][order]
        if width.any():
            ax.barh(y, width, left=left, height=1.0, color=COLORS[k], label=label)
        left += width
    _deadlines(ax, s, 0.0, f"{s['id']} ")
    ax.set_yticks(y if order.size <= 40 else [])
    if order.size <= 40:
        ax.set_yticklabels(names, fontsize=6)
    ax.set_xlabel("seconds after the frequency left the deadband")
    ax.set_ylabel(f"{order.size} vehicles, sorted by total" if order.size > 40 else "")
    ax.set_title("Where the time goes, per vehicle")
    ax.legend(fontsize=7, loc="lower right")
    return _save(fig, path)


def latency(rec, path: Path) -> Path | None:
    delivered = rec.table("delivered")
    if delivered is None:
        return None
    lat = (delivered["time_ms"] - delivered["sent_ms"]) / 1000.0
    fig, ax = plt.subplots(figsize=(7, 3.8))
    ax.hist(lat, bins=min(60, max(10, lat.size // 5)), color="tab:blue")
    for q, style in ((50, "-"), (95, "--"), (99, ":")):
        ax.axvline(np.percentile(lat, q), color="k", ls=style, lw=1, label=f"p{q} {np.percentile(lat, q):.2f} s")
    ax.set_xlabel("setpoint latency, aggregator to vehicle (s)")
    ax.set_ylabel("messages")
    lost = rec.table("lost")
    ax.set_title(f"{lat.size} setpoints delivered" + (f", {lost['vehicle'].size} lost" if lost else ""))
    ax.legend(fontsize=8)
    return _save(fig, path)


def grid(rec, path: Path, limits: dict | None = None) -> Path | None:
    resolved = Limits.of(limits)
    kv = rec.series("bus_kv")
    kv = kv.value[0] if kv is not None and kv.value.size else np.zeros(1)
    bands = sorted(set(zip(*resolved.band(np.unique(kv)))))
    v_min, v_max = rec.series("v_min"), rec.series("v_max")
    if v_min is None:
        return None
    unbalance = rec.series("max_unbalance")
    fig, axes = plt.subplots(3 if unbalance is not None else 2, 1, figsize=(9, 7.5 if unbalance is not None else 5.5),
                             sharex=True)
    a, b = axes[0], axes[1]
    t = v_min.time_ms / 1000
    phases = [(p, rec.series(f"voltage_{p}").value) for p in PHASES if rec.has(f"voltage_{p}")]
    if phases:  # unbalanced power flow: the band of each phase over the buses
        for k, (phase, vm) in enumerate(phases):
            a.fill_between(t, np.nanmin(vm, axis=1), np.nanmax(vm, axis=1), step="post", alpha=0.35, color=COLORS[k],
                           label=f"phase {phase}: range over the buses")
    else:
        a.fill_between(t, v_min.value, v_max.value, step="post", alpha=0.4, label="range of bus voltages")
    for lim in sorted({x for band in bands for x in band}):
        a.axhline(lim, color="tab:red", lw=1)
    a.set_ylabel("voltage (pu)")
    a.set_title(f"Feeder ({'unbalanced' if phases else 'balanced'} power flow): voltage band {resolved.describe(kv)}, "
                f"loading limit {resolved.loading_pct:g} % ({resolved.name})", fontsize=9)
    a.legend(fontsize=7)
    for name, label in (("max_line_loading", "highest line loading"), ("max_trafo_loading", "highest transformer loading")):
        s = rec.series(name)
        if s is not None:
            b.step(s.time_ms / 1000, s.value, where="post", label=label)
    b.axhline(resolved.loading_pct, color="tab:red", lw=1)
    b.set_ylabel("loading (%)")
    b.legend(fontsize=7)
    if unbalance is not None:
        c = axes[2]
        c.step(unbalance.time_ms / 1000, unbalance.value, where="post", color="tab:purple", label="highest voltage unbalance")
        c.axhline(resolved.unbalance_pct, color="tab:red", lw=1)
        c.set_ylabel("unbalance (%)")
        c.legend(fontsize=7)
    axes[-1].set_xlabel("time (s)")
    return _save(fig, path)


def write_all(run_dir: Path, services: list[dict], network_profile: dict, nominal_hz: float,
              grid_limits: dict | None = None) -> list[Path]:
    run_dir = Path(run_dir)
    with RunRecord.open(run_dir / "timeseries.h5") as rec:
        made = [
            response(rec, services, nominal_hz, run_dir / "response.png"),
            models(rec, run_dir / "models.png"),
            delay_budget(rec, services, nominal_hz, network_profile["measurement_delay_ms"], run_dir / "delay_budget.png"),
            latency(rec, run_dir / "latency.png"),
            grid(rec, run_dir / "grid.png", grid_limits),
        ]
    return [p for p in made if p is not None]
