"""Plain-text tables for the terminal."""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

from v2g_testbed.analysis import regression

if TYPE_CHECKING:
    from v2g_testbed.analysis.verdict import RunVerdicts


def render(headers: list[str], rows: list[list], align: str | None = None) -> str:
    """A plain-text table. A header or cell may hold line breaks: its row is then as tall as its tallest cell,
    and rows are separated by a blank line so that each reads as one."""
    cells = [[("-" if v is None else str(v)).split("\n") for v in row] for row in rows]
    heads = [h.split("\n") for h in headers]
    widths = [max(len(x) for cell in [heads[i], *(r[i] for r in cells)] for x in cell) for i in range(len(headers))]
    align = align or "l" * len(headers)

    def lines(row):
        height = max(len(c) for c in row)
        top = row is heads  # headers sit on their last line; cells start on their first
        padded = [([""] * (height - len(c)) + c) if top else (c + [""] * (height - len(c))) for c in row]
        return ["  ".join(v.ljust(w) if a == "l" else v.rjust(w) for v, w, a in zip(values, widths, align)).rstrip()
                for values in zip(*padded)]

    tall = any(len(c) > 1 for row in cells for c in row)
    body = []
    for i, row in enumerate(cells):
        body += ([""] if tall and i else []) + lines(row)
    return "\n".join([*lines(heads), "  ".join("-" * w for w in widths), *body])


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


WIDTH = 100  # the terminal width the default table and its notes fit


def verdict_table(verdicts: "RunVerdicts", wide: bool = False) -> str:
    """The verdicts as a table. By default the columns that say whether and why (service, verdict, failed
    rules, deadlines, tracking, MW at deadline) and notes wrapped to ``WIDTH`` columns; ``wide``: every
    column (judged by, MW available, sustained minutes, the desk method) and notes on one line each."""
    rows = []
    for v in verdicts["services"]:
        rules = v.get("rules", {})
        verdict = {True: "ELIGIBLE", False: "NOT ELIGIBLE", None: "not tested"}[v["eligible"]]
        if v.get("decided_by"):  # an assumption of the testbed's decided it (the note says which)
            verdict += "*"
        judged_by = [name.replace("_", " ") for name in regression.judged_by(v)]
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
    if wide:
        out = [render(headers, rows)]
    else:  # the columns that say whether and why, long cells broken over lines: fits WIDTH columns
        keep = [0, 1, 3, 4, 5, 6, 7]
        narrow = [[row[i] for i in keep] for row in rows]
        for row in narrow:
            row[2] = row[2] and textwrap.fill(row[2], 15, break_long_words=False, break_on_hyphens=False)
            for i in (3, 4):
                row[i] = row[i] and row[i].replace(" (not judged)", "\n(not judged)")
            row[5] = row[5] and row[5].replace(" ", "\n", 1)
        out = [render(["service", "verdict", "failed", "initiation", "full\ndelivery", "tracking", "MW at\ndeadline"],
                      narrow)]
    notes = [f"{v['service']}: {reason}" for v in verdicts["services"]
             for reason in v.get("notes", []) + v.get("desk_differs_because", [])]
    out += notes
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
    if not wide:  # the lines under the table too
        out[1:] = [textwrap.fill(line, WIDTH, subsequent_indent="  ", break_on_hyphens=False) for line in out[1:]]
    return "\n".join(out)
