"""``v2g report RESULTS_DIR``: one self-contained HTML file (plots embedded, no scripts, nothing fetched)."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import yaml

from v2g_testbed.sims.files import write_whole

PLOTS = (
    ("response.png", "Frequency and the fleet's response against what each service requires, with the deadlines"),
    ("delay_budget.png", "Where the time goes for each vehicle: measurement, network, charger start, ramp"),
    ("models.png", "Every vehicle's power, grouped by model"),
    ("latency.png", "Setpoint latencies through the network"),
    ("grid.png", "What the feeder saw: bus voltages (per phase when unbalanced), loadings and voltage unbalance"),
)

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1000px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
.yes { color: #0a6b22; font-weight: bold; } .no { color: #a40000; font-weight: bold; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.9em; color: #555; } pre { background: #f7f7f7; padding: 1em; overflow: auto; }
"""


def _e(value) -> str:
    return html.escape("-" if value is None else str(value))


def _verdict_cell(eligible) -> str:
    if eligible is None:
        return "<td>not tested</td>"
    return '<td class="yes">ELIGIBLE</td>' if eligible else '<td class="no">NOT ELIGIBLE</td>'


def _quantity(key: str, value):
    """A number printed at its quantity's precision (v2g_testbed.analysis.table), by the unit its name ends in."""
    from v2g_testbed.analysis.table import pct, pu, seconds

    if not isinstance(value, float):
        return value
    for suffix, fmt in (("_pu", pu), ("_pct", pct), ("_s", seconds)):
        if key.endswith(suffix):
            return fmt(value)
    return value


def _rules_table(entry: dict) -> str:
    rows = "".join(
        f"<tr><td>{_e(name)}</td><td>{_e(r.get('regime'))}</td>"
        f"<td class=\"{'yes' if r['passed'] else 'no'}\">{'pass' if r['passed'] else 'fail'}</td>"
        f"<td>{_e(r['value'])}</td><td>{_e(r['limit'])}</td><td>{_e(r['margin'])}</td><td>{_e(r['unit'])}</td>"
        f"<td>{_e(r.get('cause', ''))}</td></tr>"
        for name, r in entry.get("rules", {}).items())
    regimes = "".join(f"<li><b>{_e(name.replace('_', ' '))}</b>: {'applies' if r['applies'] else 'does not apply'}: "
                      f"{_e(r['why'])}</li>" for name, r in (entry.get("regimes") or {}).items())
    return ((f"<p>Judged by:</p><ul>{regimes}</ul>" if regimes else "")
            + ("<table><tr><th>rule</th><th>regime</th><th>result</th><th>measured</th><th>limit</th><th>margin</th>"
               f"<th>unit</th><th>cause</th></tr>{rows}</table>" if rows else ""))


def _vehicle_sources(resolved: dict) -> str:
    """Which catalog each vehicle model came from; a model calibrated from a fleet's own logs says which logs."""
    rows = []
    for g in resolved["fleet"]["groups"]:
        model = g["model"] if isinstance(g["model"], dict) else {"model": g["model"]}
        key = str(model.get("source_key", ""))
        what = (f"calibrated from the fleet's own logs ({_e(key.split(':', 1)[1])})" if key.startswith("calibrated:")
                else _e(key))
        spread = " with their measured spread" if model.get("t_a_s_sd") is not None else ""
        rows.append(f"<li>{_e(model.get('model'))} x {g['count']}: {what}{spread}</li>")
    return "<p>Vehicle models:</p><ul>" + "".join(rows) + "</ul>"


def render(run_dir: Path) -> str:
    run_dir = Path(run_dir)
    verdicts = json.loads((run_dir / "verdicts.json").read_text())
    resolved_text = (run_dir / "scenario.resolved.yaml").read_text()
    resolved = yaml.safe_load(resolved_text)
    n_vehicles = sum(g["count"] for g in resolved["fleet"]["groups"])
    parts = [f"<h1>v2g-testbed: {_e(verdicts['scenario'])}</h1>",
             f"<p>{_e(resolved.get('description') or '')}</p>",
             f"<p>{n_vehicles} vehicles, network <b>{_e(resolved['network']['profile'] if isinstance(resolved['network']['profile'], str) else 'inline profile')}</b>, "
             f"grid <b>{_e(resolved['grid']['network'])}</b>, {resolved['duration_s']} s simulated, seed {verdicts['seed']}.</p>",
             _vehicle_sources(resolved),
             "<h2>Verdicts</h2>",
             "<table id=\"verdicts\"><tr><th>service</th><th>verdict</th><th>failed rules</th><th>initiation (s)</th>"
             "<th>full delivery (s)</th><th>MW at deadline</th><th>contracted MW</th><th>desk method</th></tr>"]
    for v in verdicts["services"]:
        desk = v.get("desk")
        desk_cell = ("-" if desk is None else
                     ("eligible" if desk["eligible"] else "not eligible (" + ", ".join(desk["failed"]) + ")"))
        parts.append(f"<tr><td>{_e(v['service'])}</td>{_verdict_cell(v['eligible'])}<td>{_e(', '.join(v['failed']))}</td>"
                     f"<td>{_e(v.get('initiation_s'))}</td><td>{_e(v.get('full_delivery_s'))}</td>"
                     f"<td>{_e(v.get('delivered_mw'))}</td><td>{_e(v['contracted_mw'])}</td><td>{_e(desk_cell)}</td></tr>")
    parts.append("</table>")
    for v in verdicts["services"]:
        parts.append(f"<h3>{_e(v['service'])}: {_e(v['name'])}</h3>")
        if v.get("note"):
            parts.append(f"<p>{_e(v['note'])}</p>")
        parts.append(_rules_table(v))
        if v.get("envelope"):
            env = v["envelope"]
            parts.append(f"<p>Performance envelope: largest error {_e(env['max_error_pu'])} pu of contracted power, "
                         f"{_e(env['at_s'])} s after the event{' (responding too fast)' if env['too_fast'] else ''}.</p>")
        reasons = list(v.get("notes", [])) + list(v.get("desk_differs_because", []))
        if reasons:
            parts.append("<ul>" + "".join(f"<li>{_e(r)}</li>" for r in reasons) + "</ul>")
    grid = verdicts.get("grid") or {}
    parts.append("<h2>Grid and network</h2><table>" + "".join(
        f"<tr><th>{_e(k)}</th><td>{_e(_quantity(k, val))}</td></tr>" for k, val in grid.items()) + "</table>")
    if verdicts.get("network"):
        net = verdicts["network"]
        parts.append("<table>" + "".join(
            f"<tr><th>{_e(k)}</th><td>{_e(val)}</td></tr>" for k, val in net.items()) + "</table>")
    parts.append("<h2>Plots</h2>")
    for name, caption in PLOTS:
        png = run_dir / name
        if png.is_file():
            data = base64.b64encode(png.read_bytes()).decode()
            parts.append(f'<figure class="plot"><img alt="{_e(caption)}" src="data:image/png;base64,{data}">'
                         f"<figcaption>{_e(caption)}</figcaption></figure>")
    parts.append(f"<h2>Scenario as run</h2><details><summary>scenario.resolved.yaml</summary><pre>{_e(resolved_text)}</pre></details>")
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>v2g-testbed report: {_e(verdicts['scenario'])}</title><style>{CSS}</style></head><body>"
            + "\n".join(parts) + "</body></html>\n")


def render_offer(offer_dir: Path) -> str:
    """The page of a ``v2g offer`` result: per window the MW offered, its P(eligible) and interval, the headroom
    present and what binds, and the plot."""
    offer_dir = Path(offer_dir)
    data = json.loads((offer_dir / "offer.json").read_text())
    rows = "".join(
        f"<tr><td>{_e(' '.join(x for x in (w.get('day'), w['window']) if x))}</td><td>{_e(w['offered_mw'])}</td>"
        f"<td>{_e(w['p_eligible'])}</td>"
        f"<td>[{_e(w['ci95'][0])}, {_e(w['ci95'][1])}]</td><td>{_e(w['runs'])}</td>"
        f"<td>{_e(' / '.join(str(v) for v in w['headroom_mw'].values()))}</td><td>{_e(w['binds'])}</td></tr>"
        for w in data["windows"])
    parts = [f"<h1>v2g-testbed offer: {_e(data['service'])}</h1>",
             f"<p>The largest contracted MW per window whose P(eligible) reaches {_e(data['confidence'])}, judged by "
             "the co-simulation at sampled moments of each window (v2g offer).</p>",
             "<table id=\"offer\"><tr><th>window</th><th>MW offered</th><th>P(eligible)</th><th>95 % interval</th>"
             "<th>runs</th><th>headroom MW p5 / p50 / p95</th><th>binds</th></tr>" + rows + "</table>"]
    png = offer_dir / "offer.png"
    if png.is_file():
        data64 = base64.b64encode(png.read_bytes()).decode()
        parts.append(f'<figure class="plot"><img alt="MW offered per window" src="data:image/png;base64,{data64}">'
                     "</figure>")
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>v2g-testbed offer: {_e(data['service'])}</title><style>{CSS}</style></head><body>"
            + "\n".join(parts) + "</body></html>\n")


def write(run_dir: Path, out: Path | None = None) -> Path:
    run_dir = Path(run_dir)
    if (run_dir / "offer.json").is_file():  # the result of `v2g offer`
        out = Path(out) if out else run_dir / "report.html"
        write_whole(out, render_offer(run_dir))
        return out
    for needed in ("verdicts.json", "scenario.resolved.yaml"):
        if not (run_dir / needed).is_file():
            raise FileNotFoundError(f"{run_dir}: no {needed}: not the output directory of a finished `v2g run`")
    out = Path(out) if out else run_dir / "report.html"
    ensure_plots(run_dir)
    write_whole(out, render(run_dir))  # a full disk leaves the earlier report (or none), never a truncated one
    return out


def ensure_plots(run_dir: Path) -> list[Path]:
    """Draw a run's plots if it has none yet (`v2g run` leaves them to `--plots` or to the report), from its
    record and what its resolved scenario says the run resolved."""
    if any((run_dir / name).is_file() for name, _ in PLOTS) or not (run_dir / "timeseries.h5").is_file():
        return []
    scenario = yaml.safe_load((run_dir / "scenario.resolved.yaml").read_text())
    resolved = (scenario.get("provenance") or {}).get("resolved")
    if not resolved:
        return []
    from v2g_testbed.analysis import plots
    from v2g_testbed.sims import catalog

    return plots.write_all(run_dir, resolved["services"], resolved["network_profile"], catalog.nominal_hz(),
                           scenario["grid"]["limits"])
