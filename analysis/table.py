"""Plain-text tables for the terminal."""

from __future__ import annotations


def render(headers: list[str], rows: list[list], align: str | None = None) -> str:
    cells = [[("-" if v is None else str(v)) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    align = align or "l" * len(headers)

    def line(values):
        return "  ".join(v.ljust(w) if a == "l" else v.rjust(w) for v, w, a in zip(values, widths, align)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def _fmt(value, unit=""):
    if value is None:
        return None
    return f"{value:g}{unit}"


def verdict_table(verdicts: dict) -> str:
    rows = []
    for v in verdicts["services"]:
        rules = v.get("rules", {})
        verdict = {True: "ELIGIBLE", False: "NOT ELIGIBLE", None: "not tested"}[v["eligible"]]
        rows.append([
            v["service"], verdict,
            ", ".join(v["failed"]) or ("-" if v["eligible"] is not None else v.get("note", "")),
            _fmt(v.get("initiation_s"), " s") and (f"{v['initiation_s']:g} s / {rules['initiation']['limit']:g} s"
                                                   if rules["initiation"]["limit"] is not None else f"{v['initiation_s']:g} s"),
            _fmt(v.get("full_delivery_s"), " s") and f"{v['full_delivery_s']:g} s / {rules['full_delivery']['limit']:g} s",
            _fmt(v.get("delivered_mw")) and f"{v['delivered_mw']:.3f} of {v['contracted_mw']:g}",
            _fmt(v.get("available_mw")),
            "unlimited" if rules and rules["duration"]["value"] is None else
            (f"{rules['duration']['value']:.1f} / {rules['duration']['limit']:g}" if rules else None),
            None if not v.get("desk") else ("eligible" if v["desk"]["eligible"] else "not eligible"),
        ])
    headers = ["service", "verdict", "failed", "initiation", "full delivery", "MW at deadline",
               "MW available", "sustain min", "desk method"]
    out = [render(headers, rows)]
    for v in verdicts["services"]:
        for reason in v.get("notes", []) + v.get("desk_differs_because", []):
            out.append(f"{v['service']}: {reason}")
    grid = verdicts.get("grid") or {}
    if grid:
        unbalance = f", max unbalance {grid['max_unbalance_pct']} %" if grid.get("max_unbalance_pct") is not None else ""
        out.append(f"grid ({grid.get('power_flow', 'balanced')} power flow): voltage {grid['v_min_pu']}-{grid['v_max_pu']} pu"
                   f"{unbalance}, max line loading {grid['max_line_loading_pct']} %, max transformer loading "
                   f"{grid['max_trafo_loading_pct']} %, {grid['power_flows']} power flows ({grid['non_converged']} not converged)")
        if grid.get("note"):
            out.append(f"grid: {grid['note']}")
    net = verdicts.get("network")
    if net:
        lat = net["latency_s"]
        out.append(f"network: {net['messages_delivered']} setpoints delivered, {net['messages_lost']} lost, "
                   f"latency median {lat['median']} s, p95 {lat['p95']} s, max {lat['max']} s")
    return "\n".join(out)
