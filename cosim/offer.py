"""What a fleet can offer per market window (issue 29): the largest contracted MW of one service such that the
co-simulation judges it eligible with probability at least ``confidence``, per window of the day.

For each window (GB EFA blocks, hours, or windows of one's own), the scenario is run at ``samples`` moments inside
it (``fleet.time_of_day``: the groups' sessions decide who is plugged in then, with what charge and baseline) and
``replicates`` seeds each; P(eligible) at a contracted MW is the share of those runs the verdict calls eligible,
with its Wilson interval. The MW offered is found by bisection between the market's minimum volume and the
most plugged-in headroom any run had in the service's direction (P is not assumed smooth: each MW's runs are the same moments and seeds, so P is
judged on the same draws everywhere). What binds is read from the runs at the first MW above the offer that
fails: each failing run's first cause (availability, then energy, grid, timing, metering: too little plugged-in
headroom fails every timing rule too), the most common of them. Availability is the ``volume`` rule (the
plugged-in headroom below the contract), energy ``duration``, timing the initiation, delivery, envelope and
activation rules.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from v2g_testbed.cosim.scenario import ScenarioError
from v2g_testbed.sims.fleet import WEEKDAYS

EFA = [(23, 3), (3, 7), (7, 11), (11, 15), (15, 19), (19, 23)]  # GB EFA blocks, local time
BINDS = {"volume": "availability", "duration": "energy", "initiation": "timing", "partial_delivery": "timing",
         "full_delivery": "timing", "envelope": "timing", "activation": "timing", "grid": "grid",
         "metering": "metering"}


# what binds, first causes first: no plugged-in headroom makes every timing rule fail too; an empty battery
# the response; the feeder's limit a response that was on time
PRIORITY = ("availability", "energy", "grid", "timing", "metering")


def _priority(category: str) -> int:
    return PRIORITY.index(category) if category in PRIORITY else len(PRIORITY)


def windows(spec: str) -> list[tuple[int, int]]:
    """``efa``, ``hourly`` or ``HH-HH,HH-HH,...`` as (start hour, end hour) pairs (an end before its start: the
    next day)."""
    if spec == "efa":
        return list(EFA)
    if spec == "hourly":
        return [(h, (h + 1) % 24) for h in range(24)]
    out = []
    for part in spec.split(","):
        try:
            a, b = (int(x) for x in part.split("-"))
        except ValueError:
            raise ScenarioError(f"--windows {spec}: expected efa, hourly or HH-HH,HH-HH (e.g. 11-15,19-23)") from None
        if not (0 <= a <= 23 and 0 <= b <= 24 and a != b % 24):
            raise ScenarioError(f"--windows {spec}: {part} is not a window of the day")
        out.append((a, b % 24))
    return out


def moments(window: tuple[int, int], samples: int) -> list[str]:
    """``samples`` moments spread evenly inside the window (HH:MM)."""
    a, b = window
    length = (b - a) % 24 or 24
    out = []
    for k in range(samples):
        minutes = round((a + length * (k + 0.5) / samples) * 60) % (24 * 60)
        out.append(f"{minutes // 60:02d}:{minutes % 60:02d}")
    return out


def _judge_one(scenario: str, overrides: list[str], service_index: int, mw: float, t: str, seed: int,
               work: str, code=None) -> dict:
    """One run (in this process, a worker process or a Dask worker): the verdict on the service. ``overrides``
    already set the moment ``t`` (``_moment``)."""
    from v2g_testbed.cosim import run as runner
    from v2g_testbed.cosim import scenario as scenario_module

    loaded = scenario_module.load(scenario, [*overrides, "outputs.plots=false",
                                             f"services.{service_index}.contracted_mw={mw!r}"], seed)
    loaded.check_grid()
    v = runner.run(loaded, Path(work) / f"{t.replace(':', '')}-{seed}-{mw:.6f}", code=code)["services"][service_index]
    from v2g_testbed.cosim.world import sample_fleet

    present = int(sum(sample_fleet(loaded)["plugged"]))  # the run's own draw (same seed, same sessions)
    return {"time": t, "seed": seed, "eligible": bool(v["eligible"]), "failed": list(v["failed"]),
            "available_mw": v.get("available_mw"), "present": present}


def _moment(t: str, profile_time: str | None) -> list[str]:
    """The overrides that put a run at time of day ``t``: the fleet's sessions, and a SimBench grid's loads and
    generation at that time of the scenario's day (``profile_time``'s date)."""
    out = [f"fleet.time_of_day='{t}'"]
    if profile_time is not None:
        out.append(f"grid.profile_time='{profile_time[:10]}T{t}'")
    return out


def days_of(loaded, days: int) -> list[dict]:
    """The ``days`` days an offer covers, from the scenario's own (``fleet.weekday``, else ``grid.profile_time``'s
    date): ``{"label", "weekday", "date"}`` each (``date``: the SimBench profile day, or None). More than one day
    needs something that changes with the day: sessions by weekday, or a grid's profiles by date."""
    from datetime import date, timedelta

    from v2g_testbed.cosim.world import weekday_of

    scenario = loaded.scenario
    first = weekday_of(scenario)
    start = None if scenario.grid.profile_time is None else date.fromisoformat(scenario.grid.profile_time[:10])
    by_weekday = any((g.get("sessions_table") or {}).get("weekday") is not None for g in loaded.groups)
    if days > 1 and not by_weekday and start is None:
        raise ScenarioError(f"--days {days}: nothing in this scenario changes with the day (no sessions file with a "
                            "weekday column, no grid.profile_time): every day's offer would be the first's")
    if days > 1 and by_weekday and first is None:
        raise ScenarioError(f"--days {days}: say which day the offer starts on (fleet.weekday, e.g. --set "
                            "fleet.weekday=Mon)")
    out = []
    for k in range(days):
        day = None if start is None else start + timedelta(days=k)
        weekday = None if first is None else (first + k) % 7
        if day is not None and scenario.fleet.weekday is None:
            weekday = day.weekday()
        label = " ".join(x for x in (None if weekday is None else WEEKDAYS[weekday],
                                     None if day is None else day.isoformat()) if x)
        out.append({"label": label, "weekday": weekday, "date": None if day is None else day.isoformat()})
    return out


def grid_capacity(scenario: Path, overrides: list[str], service_index: int, times: list[str],
                  profile_time: str | None, seed: int) -> dict:
    """The grid's service hosting capacity at the window's moments (``v2g hosting-capacity --service``: the most
    MW of the service the fleet present then can deliver at once, from its baseline, before a grid limit breaks;
    on SimBench grids with the profiles of that moment): the least over the moments, and what binds there. A
    planner's static answer beside the runs' own grid rule."""
    from v2g_testbed.cosim import api

    found = []
    for t in times:
        loaded = api.load_scenario(scenario, [*overrides, *_moment(t, profile_time)], seed)
        service = loaded.services[service_index]["id"]
        try:
            found.append((api.hosting_capacity(loaded, service=service).results, t))
        except ScenarioError as exc:  # a network the study cannot represent: the runs' grid rule still judges
            return {"service_mw": None, "at": t, "note": str(exc).split(": ", 1)[-1]}
    least, at = min(found, key=lambda f: f[0]["service_mw"])
    return {"service_mw": round(float(least["service_mw"]), 3), "at": at, "binding_limit": least["binding_limit"],
            "binding_element": least["binding_element"]}


def judge(scenario: Path, overrides: list[str], service_index: int, mw: float, times: list[str], seeds: list[int],
          work: Path, pool=None, profile_time: str | None = None, code=None) -> list[dict]:
    """Run the scenario at ``mw`` for every moment x seed (on ``pool``, an executor or a Dask client, if given);
    the runs' verdicts on the service, in moment and seed order. ``code``: the offer's ``cosim.run.CodeVersion``
    (None: each run reads its own)."""
    tasks = [(str(scenario), [*overrides, *_moment(t, profile_time)], service_index, mw, t, seed, str(work), code)
             for t in times for seed in seeds]
    if pool is None:
        return [_judge_one(*task) for task in tasks]
    if hasattr(pool, "gather"):  # a Dask client
        return pool.gather([pool.submit(_judge_one, *task, pure=False) for task in tasks])
    return list(pool.map(_judge_one, *zip(*tasks)))


def offer(scenario: str | Path, spec: str = "efa", confidence: float = 0.95, samples: int = 2, replicates: int = 10,
          steps: int = 6, overrides=(), service_index: int = 0, progress=None, workers: int = 1,
          scheduler: str | None = None, days: int = 1) -> list[dict]:
    """One row per window (of each of ``days`` days: ``day`` names it): the MW offered, its P(eligible) with the
    Wilson interval, the plugged-in headroom over the runs (p5/p50/p95 MW) and what binds. The runs of one MW go
    ``workers`` at a time in worker processes, or on a Dask cluster (``scheduler``); the answer is the same."""
    args = (scenario, spec, confidence, samples, replicates, steps, overrides, service_index, progress)
    if scheduler:
        from dask.distributed import Client

        with Client(scheduler) as client:
            return _offer(*args, client, days)
    if workers > 1:
        from v2g_testbed.cosim.pool import process_pool

        with process_pool(workers) as pool:
            return _offer(*args, pool, days)
    return _offer(*args, None, days)


def _offer(scenario, spec, confidence, samples, replicates, steps, overrides, service_index, progress, pool, days=1):
    import numpy as np

    from v2g_testbed.cosim import run as runner
    from v2g_testbed.cosim import scenario as scenario_module

    if not 0 < confidence < 1:
        raise ScenarioError(f"--confidence: between 0 and 1, got {confidence}")
    loaded = scenario_module.load(scenario, list(overrides))
    loaded.check_grid()  # the grid resolved (its power flow): bad grid input refused before any run
    services = loaded.services
    if not 0 <= service_index < len(services):
        raise ScenarioError(f"--service: the scenario has {len(services)} service(s)")
    if not any(g.get("sessions") for g in loaded.groups):
        raise ScenarioError(f"{scenario}: fleet.groups: no group has sessions: an offer per window needs to know who "
                            "is plugged in when (fleet.groups[].sessions)")
    minimum = float(services[service_index]["min_volume_mw"])
    seeds = [loaded.scenario.seed + k for k in range(replicates)]
    code = runner.CodeVersion.for_runs(on_dask=hasattr(pool, "gather"))  # one reading for all the offer's runs
    rows = []
    wins = windows(spec)
    calendar = days_of(loaded, days)
    profile_time = loaded.scenario.grid.profile_time
    with tempfile.TemporaryDirectory() as tmp:
        for n, (day, window) in enumerate((d, w) for d in calendar for w in wins):
            times = moments(window, samples)
            work = Path(tmp) / f"w{n}"
            on_day = list(overrides) + ([] if day["weekday"] is None else [f"fleet.weekday={WEEKDAYS[day['weekday']]}"])
            day_profile = None if profile_time is None else f"{day['date']}{profile_time[10:]}"

            def p_at(mw):
                runs = judge(Path(scenario), on_day, service_index, mw, times, seeds, work, pool, day_profile, code)
                return sum(r["eligible"] for r in runs) / len(runs), runs

            p_min, runs_min = p_at(minimum)
            headroom = np.array([r["available_mw"] or 0.0 for r in runs_min])
            best, best_runs, failing = 0.0, None, runs_min
            if p_min >= confidence:
                best, best_runs = minimum, runs_min
                # the most any run had plugged in, in the service's direction (V2G: stop charging, then export)
                low, high = minimum, max(float(headroom.max()), minimum)
                p_high, runs_high = p_at(high)
                if p_high >= confidence:
                    best, best_runs, failing = high, runs_high, None
                else:
                    failing = runs_high
                    for _ in range(steps):
                        mid = (low + high) / 2
                        p_mid, runs_mid = p_at(mid)
                        if p_mid >= confidence:
                            low, best, best_runs = mid, mid, runs_mid
                        else:
                            high, failing = mid, runs_mid
            judged = best_runs if best_runs is not None else runs_min
            k = sum(r["eligible"] for r in judged)
            low_ci, high_ci = runner.wilson_interval(k, len(judged))
            counts: dict[str, int] = {}
            for r in failing or []:  # each failing run's first cause: a later one is often its consequence
                found = sorted({BINDS.get(rule, rule) for rule in r["failed"]}, key=_priority)
                if found:
                    counts[found[0]] = counts.get(found[0], 0) + 1
            rows.append({**({"day": day["label"]} if len(calendar) > 1 else {}),
                         "window": f"{window[0]:02d}-{window[1]:02d}", "offered_mw": round(best, 3),
                         "minimum_mw": minimum,
                         "p_eligible": round(k / len(judged), 3), "ci95": [round(low_ci, 3), round(high_ci, 3)],
                         "runs": len(judged), "moments": times,
                         "headroom_mw": {q: round(float(np.percentile(headroom, p)), 3)
                                         for q, p in (("p5", 5), ("p50", 50), ("p95", 95))},
                         "vehicles_present": {q: int(np.percentile([r["present"] for r in runs_min], p))
                                              for q, p in (("p5", 5), ("p50", 50), ("p95", 95))},
                         "binds": max(counts, key=counts.get) if counts else "headroom (all of it offered)",
                         "grid": grid_capacity(Path(scenario), on_day, service_index, times, day_profile,
                                               loaded.scenario.seed) if loaded.power_flow == "balanced" else None})
            if progress:
                progress(n + 1, len(wins) * len(calendar))
    return rows


def write(rows: list[dict], out: Path, service: str, confidence: float) -> list[Path]:
    import csv

    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    (out / "offer.json").write_text(json.dumps({"service": service, "confidence": confidence, "windows": rows},
                                               indent=2) + "\n")
    with open(out / "offer.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["day", "window", "offered_mw", "p_eligible", "ci95_low", "ci95_high", "runs", "headroom_p5_mw",
                    "headroom_p50_mw", "headroom_p95_mw", "vehicles_p5", "vehicles_p50", "vehicles_p95", "binds",
                    "grid_service_mw", "grid_binding"])
        for r in rows:
            w.writerow([r.get("day", ""), r["window"], r["offered_mw"], r["p_eligible"], *r["ci95"], r["runs"],
                        *r["headroom_mw"].values(), *r["vehicles_present"].values(), r["binds"],
                        "" if (r.get("grid") or {}).get("service_mw") is None else r["grid"]["service_mw"],
                        " ".join(str((r.get("grid") or {}).get(k, "")) for k in ("binding_limit", "binding_element")).strip()])
    fig, ax = plt.subplots(figsize=(9, 4.4))
    colours = {"availability": "tab:gray", "energy": "tab:orange", "timing": "tab:red", "grid": "tab:purple"}
    names = [label(r) for r in rows]
    head = np.array([r["headroom_mw"]["p50"] for r in rows])
    spread = np.array([[r["headroom_mw"]["p50"] - r["headroom_mw"]["p5"], r["headroom_mw"]["p95"] - r["headroom_mw"]["p50"]]
                       for r in rows]).T
    ax.bar(names, head, yerr=spread, color="0.88", edgecolor="0.6", capsize=3, label="plugged-in headroom (p50, p5-p95)")
    bars = ax.bar(names, [r["offered_mw"] for r in rows], width=0.5,
                  color=[colours.get(r["binds"], "tab:green") for r in rows], label="offered")
    for bar, r in zip(bars, rows):
        ax.annotate(r["binds"], (bar.get_x() + bar.get_width() / 2, max(bar.get_height(), 0)), ha="center",
                    va="bottom", fontsize=8, xytext=(0, 2), textcoords="offset points")
    grid = [(k, r["grid"]["service_mw"]) for k, r in enumerate(rows)
            if r.get("grid") and r["grid"]["service_mw"] is not None]
    if grid:
        ax.scatter([k for k, _ in grid], [mw for _, mw in grid], marker="_", s=400, color="tab:purple", zorder=3,
                   label="grid: service hosting capacity (least of the moments)")
    if rows:
        ax.axhline(rows[0]["minimum_mw"], color="k", ls="--", lw=0.8, label="market minimum")
    if any("day" in r for r in rows):
        ax.tick_params(axis="x", labelrotation=90, labelsize=7)
    ax.set(xlabel="window (local time)", ylabel=f"{service} MW",
           title=f"{service}: MW offered per window at P(eligible) >= {confidence:g}; label: what binds")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16 if any("day" in r for r in rows) else -0.13),
              ncol=3, frameon=False)
    fig.tight_layout()
    fig.savefig(out / "offer.png", dpi=100)
    plt.close(fig)
    return [out / "offer.json", out / "offer.csv", out / "offer.png"]


# -- regression: an offer table held against a baseline, as `v2g check` holds verdicts -----------------------
OFFER_TOLERANCE_MW = 0.05  # an offer found by bisection moves by its last step when a model changes slightly


def label(row: dict) -> str:
    """A window's name: ``19-23``, or ``Wed 2016-01-13 19-23`` in an offer over several days."""
    return f"{row['day']} {row['window']}" if row.get("day") else row["window"]


def snapshot(rows: list[dict], service: str, confidence: float) -> dict:
    return {"service": service, "confidence": confidence,
            "windows": {label(r): {"offered_mw": r["offered_mw"], "binds": r["binds"]} for r in rows}}


def compare(name: str, old: dict | None, new: dict, tolerance_mw: float = OFFER_TOLERANCE_MW) -> list[str]:
    """Differences between a baseline's offer and a new one, one line each (``name / window / field: old -> new``)."""
    if old is None:
        return [f"{name}: not in baseline"]
    out = [f"{name} / {key}: {old.get(key)} -> {new[key]}" for key in ("service", "confidence") if old.get(key) != new[key]]
    for window in dict.fromkeys([*old.get("windows", {}), *new["windows"]]):
        a, b = old.get("windows", {}).get(window), new["windows"].get(window)
        if a is None or b is None:
            out.append(f"{name} / {window}: {'absent' if a is None else 'present'} -> {'absent' if b is None else 'present'}")
            continue
        if abs(float(a["offered_mw"]) - float(b["offered_mw"])) > tolerance_mw + 1e-12:
            out.append(f"{name} / {window} / offered_mw: {a['offered_mw']} -> {b['offered_mw']} (tolerance "
                       f"{tolerance_mw} MW)")
        if a.get("binds") != b["binds"]:
            out.append(f"{name} / {window} / binds: {a.get('binds')} -> {b['binds']}")
    return out
