"""Plain-text tables for the terminal."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from v2g_testbed.analysis.verdict import RunVerdicts


def render(headers: list[str], rows: list[list], align: str | None = None) -> str:
    cells = [[("-" if v is None else str(v)) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    align = align or "l" * len(headers)

    def line(values):
        return "  ".join(v.ljust(w) if a == "l" else v.rjust(w) for v, w, a in zip(values, widths, align)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in cells)])


# one precision per quantity, everywhere a number is printed: times to the millisecond the simulation
# resolves, power in MW to the kW, per-unit voltage to 0.001 pu, loadings and shares to 0.1 %
def fixed(value, digits: int) -> str | None:
    """``value`` to ``digits`` decimals without trailing zeros (None stays None)."""
    if value is None:
        return None
    text = f"{value:.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def seconds(value) -> str | None:
    return fixed(value, 3)


def mw(value) -> str | None:
    return fixed(value, 3)


def pu(value) -> str | None:
    return "-" if value is None else f"{value:.3f}"


def pct(value) -> str | None:
    return "-" if value is None else f"{value:.1f}"


def _timed(v: dict, field: str, rule: str) -> str | None:
    """"0.66 s / 0.5 s" where the rule judged it; "3.67 s (not judged)" where no regime times it."""
    value, judged = v.get(field), v.get("rules", {}).get(rule)
    if value is None:
        return None
    if judged is None or judged.get("limit") is None:
        return f"{seconds(value)} s (not judged)" if judged is None else f"{seconds(value)} s"
    return f"{seconds(value)} s / {seconds(judged['limit'])} s"


def _tracking(v: dict) -> str | None:
    """The continuous rule: envelope or linear activation, worst error against its tolerance (pu)."""
    for name in ("envelope", "activation"):
        rule = v.get("rules", {}).get(name)
        if rule is not None:
            return f"{name} {rule['value']:.3f} / {rule['limit']:g} pu"
    return None


def verdict_table(verdicts: "RunVerdicts") -> str:
    rows = []
    for v in verdicts["services"]:
        rules = v.get("rules", {})
        verdict = {True: "ELIGIBLE", False: "NOT ELIGIBLE", None: "not tested"}[v["eligible"]]
        judged_by = [name.replace("_", " ") for name, r in (v.get("regimes") or {}).items() if r["applies"]]
        rows.append([
            v["service"], verdict, ", ".join(judged_by) or None,
            ", ".join(v["failed"]) or ("-" if v["eligible"] is not None else v.get("note", "")),
            _timed(v, "initiation_s", "initiation"), _timed(v, "full_delivery_s", "full_delivery"), _tracking(v),
            None if v.get("delivered_mw") is None else f"{mw(v['delivered_mw'])} of {mw(v['contracted_mw'])}",
            mw(v.get("available_mw")),
            "unlimited" if rules and rules["duration"]["value"] is None else
            (f"{rules['duration']['value']:.1f} / {rules['duration']['limit']:g}" if rules else None),
            None if not v.get("desk") else ("eligible" if v["desk"]["eligible"] else "not eligible"),
        ])
    headers = ["service", "verdict", "judged by", "failed", "initiation", "full delivery", "tracking",
               "MW at deadline", "MW available", "sustain min", "desk method"]
    out = [render(headers, rows)]
    for v in verdicts["services"]:
        for reason in v.get("notes", []) + v.get("desk_differs_because", []):
            out.append(f"{v['service']}: {reason}")
    grid = verdicts.get("grid") or {}
    if grid:
        unbalance = f", max unbalance {pct(grid['max_unbalance_pct'])} %" if grid.get("max_unbalance_pct") is not None else ""
        out.append(f"grid ({grid.get('power_flow', 'balanced')} power flow): voltage {pu(grid['v_min_pu'])}-"
                   f"{pu(grid['v_max_pu'])} pu{unbalance}, max line loading {pct(grid['max_line_loading_pct'])} %, "
                   f"max transformer loading {pct(grid['max_trafo_loading_pct'])} %, {grid['power_flows']} power "
                   f"flows ({grid['non_converged']} not converged)")
        if grid.get("note"):
            out.append(f"grid: {grid['note']}")
    net = verdicts.get("network")
    if net:
        lat = net["latency_s"]
        out.append(f"network: {net['messages_delivered']} setpoints delivered, {net['messages_lost']} lost, "
                   f"latency median {seconds(lat['median'])} s, p95 {seconds(lat['p95'])} s, max {seconds(lat['max'])} s")
    return "\n".join(out)
