"""What a hosting-capacity study writes: tables, plots, the network map."""

from __future__ import annotations

import numpy as np

from v2g_testbed.analysis.limits import Limits
from v2g_testbed.sims.grid import profile_step_times
from v2g_testbed.sims.topology import feeder_table


PLOTTED = 12  # feeder-directions drawn in the placement and voltage-profile plots


def write(results: dict, out_dir) -> list:
    """hosting_capacity.json, hosting_capacity.csv and two plots into ``out_dir``."""
    import csv
    import json
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    (out_dir / "hosting_capacity.json").write_text(json.dumps(results, indent=2) + "\n")
    with open(out_dir / "hosting_capacity.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["feeder", "direction", "placement", "chargers", "kw", "binding_limit", "binding_element", "value"])
        for fd in results["feeders"]:
            for r in fd["runs"]:
                b = r["binding"] or {}
                w.writerow([fd["feeder"], fd["direction"], r["placement"], r["chargers"],
                            r["chargers"] * results["charger_kw"], b.get("limit", "none"), b.get("element", "-"),
                            b.get("value", "")])
    # a network of hundreds of feeders: the plots show the PLOTTED with the least room (the tables hold all)
    shown = sorted(results["feeders"], key=lambda f: (f["chargers_p50"], f["feeder"], f["direction"]))[:PLOTTED]
    shown = [f for f in results["feeders"] if any(f is g for g in shown)]
    fewer = "" if len(shown) == len(results["feeders"]) else f"; the {len(shown)} with the least room of {len(results['feeders'])}"
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for fd in shown:
        n = np.sort([r["chargers"] for r in fd["runs"]])
        pct = (np.arange(n.size) + 0.5) / n.size * 100
        ax.step(pct, n, where="mid", label=f"{fd['feeder']}, {fd['direction']} (binds: {fd['binding_limit']})")
    ax.set_xlabel("placement percentile (%)")
    ax.set_ylabel(f"chargers of {results['charger_kw']:g} kW before the first limit")
    ax.set_title(f"Hosting capacity over {results['placements']} random placements per feeder "
                 f"({results['charger_phases']} chargers, {results['power_flow']} power flow{fewer})", fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "hosting_capacity.png", dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, fd in enumerate(shown):  # a colour per feeder and direction, a line style per phase
        prof = fd["voltage_profile_at_limit"] or {}
        for key, style in zip((k for k in prof if k.startswith("vm")), ("-", "--", ":")):
            phase = "" if key == "vm_pu" else f", phase {key[3]}"
            ax.plot(range(len(prof["bus"])), prof[key], marker="o", ms=3, lw=1, ls=style, color=colors[i % len(colors)],
                    label=f"{fd['feeder']}, {fd['direction']}, {fd['chargers_p50']} chargers{phase}")
    for lim in sorted({v for level in Limits.of(results["limits"]).levels for v in level[1:]}):
        ax.axhline(lim, color="tab:red", lw=1)
    ax.set_xlabel("bus along the feeder (network order)")
    ax.set_ylabel("voltage (pu)")
    ax.set_title(f"Bus voltages at the hosting capacity (median placement{fewer})", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "voltage_profile.png", dpi=110)
    plt.close(fig)
    return [out_dir / n for n in ("hosting_capacity.json", "hosting_capacity.csv", "hosting_capacity.png",
                                  "voltage_profile.png")]


def write_timeseries(frame, out_dir, charger_kw: float, worst: int = 5) -> list:
    """hosting_capacity_timeseries.parquet, worst_moments.csv, duration_curve.png and a day x hour heatmap per
    feeder and direction (heatmaps/), each step at its time in the SimBench year."""
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    frame = frame.copy()
    frame.insert(3, "time", profile_step_times(frame["step"]))
    frame.to_parquet(out_dir / "hosting_capacity_timeseries.parquet", index=False)
    moments = (frame.sort_values(["feeder", "direction", "chargers", "step"], kind="stable")
               .groupby(["feeder", "direction"], sort=True).head(worst))
    moments.to_csv(out_dir / "worst_moments.csv", index=False)
    written = [out_dir / "hosting_capacity_timeseries.parquet", out_dir / "worst_moments.csv"]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for (name, direction), part in frame.groupby(["feeder", "direction"], sort=True):
        n = np.sort(part["chargers"].to_numpy())[::-1]
        ax.plot((np.arange(n.size) + 0.5) / n.size * 100, n * charger_kw / 1000, lw=1, label=f"{name}, {direction}")
    ax.set_xlabel("share of the studied quarter-hours (%)")
    ax.set_ylabel("hosting capacity (MW of chargers)")
    ax.set_title("Hosting capacity duration curve (median placement per quarter-hour)", fontsize=9)
    if frame[["feeder", "direction"]].drop_duplicates().shape[0] <= 20:
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out_dir / "duration_curve.png", dpi=110)
    plt.close(fig)
    written.append(out_dir / "duration_curve.png")
    (out_dir / "heatmaps").mkdir(exist_ok=True)
    for (name, direction), part in frame.groupby(["feeder", "direction"], sort=True):
        fig, ax = plt.subplots(figsize=(9, 3.6))
        _day_hour_map(fig, ax, part["time"], part["chargers"].to_numpy() * charger_kw / 1000, "MW of chargers")
        ax.set_xlabel("day of year")
        ax.set_ylabel("hour of day")
        ax.set_title(f"Hosting capacity of {name}, {direction}", fontsize=9)
        fig.tight_layout()
        path = out_dir / "heatmaps" / f"{_file_name(name)}_{direction}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written


def _day_hour_map(fig, ax, times, values: np.ndarray, label: str) -> None:
    """``values`` at quarter-hour ``times`` as a day-of-year x hour-of-day image on ``ax``."""
    day = times.dt.dayofyear.to_numpy()
    quarter = (times.dt.hour * 4 + times.dt.minute // 15).to_numpy()
    days = np.unique(day)
    grid = np.full((96, days.size), np.nan)
    grid[quarter, np.searchsorted(days, day)] = values
    image = ax.imshow(grid, aspect="auto", origin="lower", cmap="viridis", interpolation="nearest",
                      extent=(days[0] - 0.5, days[-1] + 0.5, 0, 24))
    fig.colorbar(image, ax=ax, label=label)


def _file_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def bus_coordinates(net) -> dict[int, tuple[float, float]] | None:
    """Bus index -> (x, y) from the network's geodata (pandapower 3 ``bus.geo`` GeoJSON, or ``bus_geodata``)."""
    import json

    out = {}
    if "geo" in net.bus and net.bus.geo.notna().any():
        for bus, geo in net.bus.geo.items():
            if isinstance(geo, str) and geo:
                x, y = json.loads(geo)["coordinates"][:2]
                out[int(bus)] = (float(x), float(y))
    elif "bus_geodata" in net and len(net.bus_geodata):
        out = {int(b): (float(r.x), float(r.y)) for b, r in net.bus_geodata.iterrows()}
    return out or None


def draw_map(net, mw: dict[str, float], binding: dict[str, str], title: str, path) -> bool:
    """The network drawn from its bus coordinates, each feeder's lines coloured by ``mw`` (its hosting capacity),
    the element that binds it marked. False (nothing drawn) when the network has no coordinates."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    xy = bus_coordinates(net)
    if xy is None:
        return False
    table = feeder_table(net, "all")
    feeder_of = {b: name for name, (_, buses) in table.items() for b in buses}
    names = {str(net.bus.at[b, "name"]): b for b in net.bus.index}
    values = np.array(list(mw.values()), float)
    norm = matplotlib.colors.Normalize(vmin=float(np.nanmin(values)) if values.size else 0,
                                       vmax=float(np.nanmax(values)) if values.size else 1)
    cmap = matplotlib.colormaps["viridis"]
    fig, ax = plt.subplots(figsize=(8.5, 7))
    grey, coloured, colours = [], [], []
    for _, line in net.line.iterrows():
        a, b = int(line.from_bus), int(line.to_bus)
        if a not in xy or b not in xy:
            continue
        feeder = feeder_of.get(a) or feeder_of.get(b)
        if feeder in mw:
            coloured.append([xy[a], xy[b]])
            colours.append(cmap(norm(mw[feeder])))
        else:
            grey.append([xy[a], xy[b]])
    ax.add_collection(LineCollection(grey, colors="0.8", linewidths=0.6))
    ax.add_collection(LineCollection(coloured, colors=colours, linewidths=1.6))
    marked = []
    for feeder, element in binding.items():
        kind, _, label = element.partition(" ")
        if kind == "bus" and label in names and names[label] in xy:
            marked.append(xy[names[label]])
        elif kind == "line":
            hit = net.line[net.line.name.astype(str) == label]
            if len(hit) and int(hit.iloc[0].to_bus) in xy:
                marked.append(xy[int(hit.iloc[0].to_bus)])
        elif kind == "transformer":
            hit = net.trafo[net.trafo.name.astype(str) == label]
            if len(hit) and int(hit.iloc[0].lv_bus) in xy:
                marked.append(xy[int(hit.iloc[0].lv_bus)])
    if marked:
        ax.scatter(*np.array(marked).T, marker="x", color="tab:red", s=40, zorder=3, label="binding element")
        ax.legend(fontsize=8, loc="best")
    ax.autoscale()
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xticks([])
    ax.set_yticks([])
    fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="hosting capacity (MW of chargers)",
                 shrink=0.7)
    ax.set_title(title, fontsize=8, wrap=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_service_timeseries(frame, out_dir, service: str, contracted_mw: float | None) -> list:
    """service_hosting.parquet, a duration curve and a day x hour heatmap of the deliverable MW."""
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    frame.to_parquet(out_dir / "service_hosting.parquet", index=False)
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4), gridspec_kw={"width_ratios": [1, 2]})
    mw = np.sort(frame.service_mw.to_numpy())[::-1]
    a.plot((np.arange(mw.size) + 0.5) / mw.size * 100, mw, lw=1.2, label="deliverable before a grid limit")
    a.axhline(frame.fleet_mw.iloc[0], color="0.5", lw=1, ls="--", label="the fleet's headroom")
    if contracted_mw is not None:
        a.axhline(contracted_mw, color="tab:red", lw=1, label=f"contracted {contracted_mw:g} MW")
    a.set_xlabel("share of the studied quarter-hours (%)")
    a.set_ylabel(f"{service} (MW)")
    a.legend(fontsize=7)
    _day_hour_map(fig, b, frame["time"], frame.service_mw.to_numpy(), f"{service} deliverable (MW)")
    b.set_xlabel("day of year")
    b.set_ylabel("hour of day")
    fig.suptitle(f"Service hosting capacity: the fleet's synchronised {service} response the grid takes", fontsize=9)
    fig.tight_layout()
    fig.savefig(out_dir / "service_hosting.png", dpi=110)
    plt.close(fig)
    return [out_dir / "service_hosting.parquet", out_dir / "service_hosting.png"]
