"""Hosting capacity: how many chargers a feeder takes before a voltage or loading limit breaks.

For each feeder (the part of the grid below a substation busbar, reached through one line) and each
direction (all chargers importing at full power; all exporting, for V2G), a Monte Carlo of placements:
in placement m, charger k sits at a bus drawn at random from the feeder's buses, so the first N
chargers of a placement are a fixed set and a larger N only adds chargers. For each placement the
largest N that keeps every bus voltage inside [v_min, v_max] and every line and transformer at or
below the loading limit is found by doubling then bisection (O(log N) power flows, not N). A power
flow that does not converge counts as a violation (voltage collapse).
"""

from __future__ import annotations

import importlib.util
import warnings

import numpy as np


def feeders(net) -> dict[str, list[int]]:
    """Feeder name (the first line's name) -> its buses. Busbars: the LV side of each transformer, or
    the external grid's bus if there is no transformer."""
    import networkx as nx
    import pandapower.topology as top

    busbars = set(net.trafo.lv_bus.tolist()) or set(net.ext_grid.bus.tolist())
    graph = top.create_nxgraph(net, include_trafos=False)
    graph.remove_nodes_from(busbars | set(net.trafo.hv_bus.tolist()) | set(net.ext_grid.bus.tolist()))
    out = {}
    for component in nx.connected_components(graph):
        buses = sorted(component)
        first = net.line[(net.line.from_bus.isin(busbars) & net.line.to_bus.isin(component))
                         | (net.line.to_bus.isin(busbars) & net.line.from_bus.isin(component))]
        if first.empty:
            continue  # not fed from a busbar through a line (e.g. an isolated island)
        name = str(first.iloc[0]["name"] or f"line {first.index[0]}")
        out[name] = buses
    return dict(sorted(out.items()))


class Feeder:
    """Power flows for one feeder with chargers added at given buses (one load per bus, reused)."""

    def __init__(self, net, buses: list[int], limits: dict):
        import pandapower as pp

        self.pp, self.net, self.limits = pp, net, limits
        self.buses = np.asarray(buses)
        self.loads = np.array([pp.create_load(net, bus=int(b), p_mw=0.0, name=f"hc-{b}") for b in buses])
        self.flows = 0
        self._recycle = False
        self.numba = importlib.util.find_spec("numba") is not None

    def check(self, kw_per_bus: np.ndarray) -> dict | None:
        """None if every limit holds with these charger powers (kW, + import); else the first violation."""
        self.net.load.loc[self.loads, "p_mw"] = kw_per_bus / 1000.0
        self.flows += 1
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if self._recycle:
                    self.pp.runpp(self.net, lightsim2grid=False, numba=self.numba, init="results",
                                  recycle=dict(bus_pq=True, trafo=False, gen=False))
                else:
                    self.pp.runpp(self.net, lightsim2grid=False, numba=self.numba)
            self._recycle = True
        except self.pp.powerflow.LoadflowNotConverged:
            self._recycle = False
            return {"limit": "convergence", "element": "-", "value": None}
        lim, net = self.limits, self.net
        vm = net.res_bus.vm_pu
        worst = []
        if (vm > lim["v_max_pu"]).any():
            worst.append((float(vm.max() - lim["v_max_pu"]), "voltage above", f"bus {net.bus.at[vm.idxmax(), 'name']}", float(vm.max())))
        if (vm < lim["v_min_pu"]).any():
            worst.append((float(lim["v_min_pu"] - vm.min()), "voltage below", f"bus {net.bus.at[vm.idxmin(), 'name']}", float(vm.min())))
        for table, res, label in ((net.line, net.res_line, "line"), (net.trafo, net.res_trafo, "transformer")):
            if len(table) and (res.loading_percent > lim["loading_pct"]).any():
                i = res.loading_percent.idxmax()
                worst.append((float(res.loading_percent[i] - lim["loading_pct"]) / 100, f"{label} loading",
                              f"{label} {table.at[i, 'name']}", float(res.loading_percent[i])))
        if not worst:
            return None
        _, limit, element, value = max(worst)
        return {"limit": limit, "element": element, "value": round(value, 4)}

    def reset(self):
        self.net.load.loc[self.loads, "p_mw"] = 0.0


def capacity(feeder: Feeder, order: np.ndarray, charger_kw: float, sign: int, n_max: int) -> dict:
    """Largest N (chargers 0..N-1 of ``order``, indices into the feeder's buses) within limits."""
    def powers(n):
        return sign * charger_kw * np.bincount(order[:n], minlength=len(feeder.buses)).astype(float)

    base = feeder.check(powers(0))
    if base is not None:
        return {"chargers": 0, "binding": base, "note": "limits already broken with no chargers"}
    lo, hi, bad = 0, 1, None
    while hi <= n_max and (bad := feeder.check(powers(hi))) is None:
        lo, hi = hi, hi * 2
    if hi > n_max:
        hi = n_max + 1
        if (bad := feeder.check(powers(n_max))) is None:
            return {"chargers": n_max, "binding": None, "note": f"no limit reached up to {n_max} chargers"}
    while hi - lo > 1:
        mid = (lo + hi) // 2
        found = feeder.check(powers(mid))
        lo, hi, bad = (mid, hi, bad) if found is None else (lo, mid, found)
    return {"chargers": lo, "binding": bad}


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
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for fd in results["feeders"]:
        n = np.sort([r["chargers"] for r in fd["runs"]])
        pct = (np.arange(n.size) + 0.5) / n.size * 100
        ax.step(pct, n, where="mid", label=f"{fd['feeder']}, {fd['direction']} (binds: {fd['binding_limit']})")
    ax.set_xlabel("placement percentile (%)")
    ax.set_ylabel(f"chargers of {results['charger_kw']:g} kW before the first limit")
    ax.set_title(f"Hosting capacity over {results['placements']} random placements per feeder")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "hosting_capacity.png", dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for fd in results["feeders"]:
        prof = fd["voltage_profile_at_limit"]
        if prof:
            ax.plot(range(len(prof["bus"])), prof["vm_pu"], marker="o", ms=3,
                    label=f"{fd['feeder']}, {fd['direction']}, {fd['chargers_p50']} chargers")
    for lim in (results["limits"]["v_min_pu"], results["limits"]["v_max_pu"]):
        ax.axhline(lim, color="tab:red", lw=1)
    ax.set_xlabel("bus along the feeder (network order)")
    ax.set_ylabel("voltage (pu)")
    ax.set_title("Bus voltages at the hosting capacity (median placement)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "voltage_profile.png", dpi=110)
    plt.close(fig)
    return [out_dir / n for n in ("hosting_capacity.json", "hosting_capacity.csv", "hosting_capacity.png",
                                  "voltage_profile.png")]


def hosting_capacity(net, limits: dict, charger_kw: float, directions: list[str], placements: int, seed: int,
                     n_max: int = 5000, progress=None) -> dict:
    """Per feeder and direction: capacity of every placement, its percentiles, and what binds."""
    rng = np.random.default_rng([seed, 7])
    results = {"charger_kw": charger_kw, "limits": limits, "placements": placements, "feeders": []}
    found = feeders(net)
    total = len(found) * len(directions) * placements
    done = 0
    for name, buses in found.items():
        feeder = Feeder(net, buses, limits)
        names = [str(net.bus.at[b, "name"]) for b in buses]
        for direction in directions:
            sign = 1 if direction == "import" else -1
            runs, orders = [], []
            for m in range(placements):
                order = rng.integers(0, len(buses), n_max)
                orders.append(order)
                runs.append(dict(capacity(feeder, order, charger_kw, sign, n_max), placement=m))
                done += 1
                if progress:
                    progress(done, total)
            n = np.array([r["chargers"] for r in runs])
            median_run = int(np.argsort(n)[len(n) // 2])
            profile = None
            if n[median_run] > 0:  # bus voltages of the median placement at its capacity
                kw = sign * charger_kw * np.bincount(orders[median_run][:n[median_run]], minlength=len(buses))
                if feeder.check(kw.astype(float)) is None:
                    profile = {"bus": names, "vm_pu": [round(float(net.res_bus.vm_pu[b]), 6) for b in buses],
                               "chargers_at_bus": (np.abs(kw) / charger_kw).round().astype(int).tolist()}
            feeder.reset()
            binding = [r["binding"]["limit"] if r["binding"] else "none" for r in runs]
            where = [r["binding"]["element"] if r["binding"] else "-" for r in runs]
            common = max(set(binding), key=binding.count)
            results["feeders"].append({
                "feeder": name, "direction": direction, "buses": names,
                "chargers_p5": int(np.percentile(n, 5)), "chargers_p50": int(np.percentile(n, 50)),
                "chargers_p95": int(np.percentile(n, 95)),
                "kw_p50": float(np.percentile(n, 50) * charger_kw),
                "binding_limit": common, "binding_element": max(set(where), key=where.count),
                "voltage_profile_at_limit": profile, "runs": runs})
        results["power_flows"] = results.get("power_flows", 0) + feeder.flows
    return results
