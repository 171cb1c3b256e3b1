"""The Python API: what the ``v2g`` commands do, for notebooks and scripts.

    from v2g_testbed.cosim import run_scenario

    r = run_scenario("scenarios/hub-dc-local.yaml", overrides=["network.profile=4g"], seed=3)
    r.eligible                       # {"DC-L": True, ...}
    r.table()                        # one row per service (pandas)
    r.series("fleet_power")          # a recorded output as a DataFrame (or by its path: "fleet/p_kw")
    r.vehicles()                     # the per-vehicle table
    r.plots()                        # PNGs on demand; r.report() the HTML report

``out=None`` runs into a temporary directory that lives as long as the result (``with run_scenario(...)
as r:`` removes it at the end of the block); give ``out`` to keep the files, as ``v2g run --out`` does.
The command line calls these same functions, so a result here is the one ``v2g`` prints.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from v2g_testbed.cosim import scenario as scenario_module
from v2g_testbed.cosim.scenario import LoadedScenario, ScenarioError

if TYPE_CHECKING:
    import pandas as pd
    import numpy as np

    from v2g_testbed.analysis.verdict import RunVerdicts

__all__ = ["load_scenario", "run_scenario", "run_replicates", "run_sweep", "hosting_capacity", "RunResult",
           "ReplicatesResult", "HostingResult", "ScenarioError"]


def load_scenario(scenario: str | Path | LoadedScenario, overrides: Iterable[str] = (),
                  seed: int | None = None) -> LoadedScenario:
    """Read and check a scenario file (``overrides`` as ``--set``: ``"fleet.groups.0.count=40"``), its grid
    included. A ``LoadedScenario`` is returned as it is (then ``overrides`` and ``seed`` must be empty).
    Raises ``ScenarioError`` with the one-line message the command line prints."""
    if isinstance(scenario, LoadedScenario):
        if list(overrides) or seed is not None:
            raise ScenarioError("overrides and seed apply to a scenario file, not to a loaded scenario")
        return scenario
    loaded = scenario_module.load(scenario, list(overrides), seed)
    loaded.check_grid()
    return loaded


class _Output:
    """An output directory: the caller's, or a temporary one removed with the result."""

    def __init__(self, out: str | Path | None):
        self._tmp = None if out is not None else tempfile.TemporaryDirectory(prefix="v2g-")
        self.path = Path(out) if out is not None else Path(self._tmp.name) / "run"

    def close(self):
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


class _Owned:
    """A result that may own a temporary output directory: ``close()`` (or leaving ``with``) removes it."""

    _output: "_Output | None" = None

    def close(self):
        """Remove the temporary directory of a result made with ``out=None`` (nothing otherwise)."""
        if self._output is not None:
            self._output.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class RunResult(_Owned):
    """One finished run: its verdicts, and its record read by the names of ``sims/record.py``."""

    def __init__(self, loaded: LoadedScenario, out_dir: Path, verdicts: "RunVerdicts", output: _Output | None = None):
        self.scenario = loaded
        self.out_dir = Path(out_dir)
        self.verdicts: RunVerdicts = verdicts
        self._output = output

    @classmethod
    def open(cls, out_dir: str | Path) -> "RunResult":
        """A finished run's directory (as ``v2g run`` leaves it), read back."""
        out_dir = Path(out_dir)
        if not (out_dir / "verdicts.json").is_file():
            raise ScenarioError(f"{out_dir}: not a finished run (no verdicts.json)")
        loaded = scenario_module.load(out_dir / "scenario.resolved.yaml")
        return cls(loaded, out_dir, json.loads((out_dir / "verdicts.json").read_text()))

    # -- verdicts --------------------------------------------------------------------------------
    @property
    def eligible(self) -> dict[str, bool | None]:
        """Service id -> eligible (None: the event never asked for the service)."""
        return {v["service"]: v["eligible"] for v in self.verdicts["services"]}

    def table(self) -> "pd.DataFrame":
        """One row per service: the verdict, the regimes that judged it, failed rules and their causes, key figures."""
        import pandas as pd

        from v2g_testbed.analysis import regression

        rows = []
        for v in self.verdicts["services"]:
            rows.append({
                "service": v["service"], "eligible": v["eligible"],
                "judged_by": regression.judged_by(v),
                "failed": list(v["failed"]),
                "causes": {name: r["cause"] for name, r in (v.get("rules") or {}).items() if "cause" in r},
                "initiation_s": v.get("initiation_s"), "full_delivery_s": v.get("full_delivery_s"),
                "delivered_mw": v.get("delivered_mw"), "available_mw": v.get("available_mw"),
                "contracted_mw": v.get("contracted_mw"), "notes": list(v.get("notes", []))})
        return pd.DataFrame(rows).set_index("service")

    def rules(self) -> "pd.DataFrame":
        """One row per service and rule: passed, value, limit, margin, unit, regime."""
        import pandas as pd

        rows = [{"service": v["service"], "rule": name, **rule}
                for v in self.verdicts["services"] for name, rule in (v.get("rules") or {}).items()]
        return pd.DataFrame(rows).set_index(["service", "rule"])

    # -- the record -----------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        """The outputs this run recorded (keys of ``v2g_testbed.sims.record.SERIES``)."""
        from v2g_testbed.analysis.timeseries import RunRecord

        with RunRecord.open(self.out_dir / "timeseries.h5") as rec:
            return [name for name in _record().SERIES if rec.has(name)]

    def series(self, name: str) -> "pd.DataFrame":
        """A recorded output as a DataFrame indexed by time in seconds. ``name`` is a key of
        ``v2g_testbed.sims.record.SERIES`` (``"fleet_power"``) or its path in ``timeseries.h5`` (``"fleet/p_kw"``).
        A series has one column (its name, with the unit in ``df.attrs``); a matrix one column per vehicle,
        bus, line or transformer; a table (setpoints, messages) one row per entry."""
        import pandas as pd

        from v2g_testbed.analysis.timeseries import RunRecord

        record = _record()
        key = _series_key(name)
        rec_def = record.SERIES[key]
        with RunRecord.open(self.out_dir / "timeseries.h5") as rec:
            if not rec.has(key):
                raise KeyError(f"{name}: this run did not record it (recorded: {', '.join(self.names)})")
            if rec_def.kind == "labels":
                frame = pd.DataFrame({key: rec.labels(key)})
            elif rec_def.kind == "table":
                frame = pd.DataFrame(rec.table(key))
                if "time_s" in frame:
                    frame.insert(0, "time_s", frame.pop("time_s"))
            else:
                s = rec.series(key)
                index = pd.Index(s.time_ms / 1000.0, name="time_s")
                if rec_def.kind == "matrix":
                    columns = (range(s.value.shape[1]) if rec_def.columns == record.VEHICLES
                               else rec.labels(rec_def.columns))
                    frame = pd.DataFrame(s.value, index=index, columns=list(columns))
                    frame.columns.name = "vehicle" if rec_def.columns == record.VEHICLES else rec_def.columns[:-6]
                else:
                    frame = pd.DataFrame({key: s.value}, index=index)
        frame.attrs.update(unit=rec_def.unit, path=rec_def.path, name=key)
        return frame

    def vehicles(self) -> "pd.DataFrame":
        """The per-vehicle table as the fleet simulator was given it (one row per vehicle)."""
        import numpy as np
        import pandas as pd

        from v2g_testbed.analysis.timeseries import RunRecord

        with RunRecord.open(self.out_dir / "timeseries.h5") as rec:
            table = rec.vehicles()
        frame = pd.DataFrame(table)
        for col in ("departure_ms",):  # stored as inf for "never"
            if col in frame:
                frame[col] = frame[col].replace(np.inf, np.nan)
        frame.index.name = "vehicle"
        return frame

    # -- pictures -------------------------------------------------------------------------------
    def plots(self) -> list[Path]:
        """Write the run's PNG plots into its directory (as ``v2g run`` does when ``outputs.plots``) and list them."""
        from v2g_testbed.analysis import plots
        from v2g_testbed.cosim.outputs import recording
        from v2g_testbed.sims import catalog

        loaded = self.scenario
        with recording(self.out_dir):
            return plots.write_all(self.out_dir, loaded.services, loaded.network_profile, catalog.nominal_hz(),
                                   loaded.scenario.grid.limits.model_dump())

    def report(self, out: str | Path | None = None) -> Path:
        """The self-contained HTML report (``v2g report``)."""
        from v2g_testbed.analysis import report

        from v2g_testbed.cosim.outputs import recording

        with recording(self.out_dir):
            return report.write(self.out_dir, Path(out) if out is not None else None)

    def __repr__(self):
        verdicts = ", ".join(f"{s}: {'ELIGIBLE' if e else 'NOT ELIGIBLE' if e is False else 'not tested'}"
                             for s, e in self.eligible.items())
        return f"<RunResult {self.verdicts['scenario']} seed {self.verdicts['seed']}: {verdicts}>"


def _record():
    from v2g_testbed.sims import record

    return record


def _series_key(name: str) -> str:
    record = _record()
    if name in record.SERIES:
        return name
    by_path = {r.path: key for key, r in record.SERIES.items()}
    if name in by_path:
        return by_path[name]
    raise KeyError(f"{name}: no such recorded output (names: {', '.join(record.SERIES)}; or their paths, "
                   "e.g. fleet/p_kw)")


def run_scenario(scenario: str | Path | LoadedScenario, overrides: Iterable[str] = (), seed: int | None = None,
                 out: str | Path | None = None, plots: bool = False, progress: bool = False) -> RunResult:
    """Run a scenario through the co-simulation and judge it (``v2g run``).

    ``plots``: write the PNG plots with the run (default off here: ``RunResult.plots()`` makes them when
    wanted). ``out``: the output directory; one that holds files v2g did not write is refused."""
    from v2g_testbed.cosim.outputs import check_output_dir, output_lock

    loaded = load_scenario(scenario, overrides, seed)
    output = _Output(out)
    if out is not None:
        check_output_dir(output.path)
    try:
        with output_lock(output.path):
            verdicts = run_locked(loaded, output.path, plots, progress)
    except BaseException:
        output.close()
        raise
    return RunResult(loaded, output.path, verdicts, output if out is None else None)


def run_locked(loaded: LoadedScenario, out: Path, plots: bool = False, progress: bool = False) -> "RunVerdicts":
    """The run itself, for a caller that already checked ``out`` and holds its lock (``v2g_testbed.cosim.outputs``)."""
    from v2g_testbed.cosim import run as runner

    loaded.scenario.outputs.plots = bool(plots)
    return runner.run(loaded, Path(out), progress=progress)


class ReplicatesResult(_Owned):
    """``n`` runs of one scenario with consecutive seeds: P(eligible) per service and each run."""

    def __init__(self, summary: dict, out_dir: Path, output: _Output | None):
        self.summary = summary
        self.out_dir = out_dir
        self._output = output

    @property
    def runs(self) -> list[RunResult]:
        return [RunResult.open(self.out_dir / f"seed-{seed}") for seed in self.summary["seeds"]]

    def table(self) -> "pd.DataFrame":
        """One row per service: eligible runs, P(eligible), its 95 % interval, times' median and spread."""
        import pandas as pd

        rows = []
        for s in self.summary["services"]:
            row = {k: s[k] for k in ("service", "runs_judged", "eligible_runs", "p_eligible")}
            row["ci95_low"], row["ci95_high"] = s["ci95"]
            for field in ("initiation_s", "full_delivery_s"):
                for stat in ("median", "p5", "p95"):
                    row[f"{field}_{stat}"] = s[field][stat] if s[field] else None
            row["failed_rule_counts"] = s["failed_rule_counts"]
            rows.append(row)
        return pd.DataFrame(rows).set_index("service")


def run_replicates(scenario: str | Path, n: int, overrides: Iterable[str] = (), seed: int | None = None,
                   out: str | Path | None = None, progress=None, workers: int = 1,
                   scheduler: str | None = None) -> ReplicatesResult:
    """``v2g run --replicates N``: the scenario with seeds seed, seed+1, ..., no plots, ``workers`` at a time
    (worker processes). ``progress(done, total)`` is called after each run."""
    from v2g_testbed.cosim import run as runner
    from v2g_testbed.cosim.outputs import check_output_dir, output_lock

    _whole_number("replicates", n)
    _whole_number("workers", workers)
    overrides = [*overrides, "outputs.plots=false"]
    first = load_scenario(scenario, overrides, seed)
    output = _Output(out)
    check_output_dir(output.path, kind="replicates")

    def load(s):
        return first if s is None else load_scenario(scenario, overrides, s)

    try:
        with output_lock(output.path):
            source = (Path(scenario), overrides) if not isinstance(scenario, LoadedScenario) else None
            summary = runner.run_replicates(load, n, output.path, progress, workers, source, scheduler)
    except BaseException:
        output.close()
        raise
    return ReplicatesResult(summary, output.path, output if out is None else None)


def run_sweep(sweep_file: str | Path, out: str | Path | None = None, workers: int = 1, scheduler: str | None = None,
              progress=None) -> "pd.DataFrame":
    """``v2g sweep``: every run of a sweep file; the table (``results.csv``) as a DataFrame, one row per run.
    ``progress(done, failed, total)`` is called as runs finish."""
    import pandas as pd

    from v2g_testbed.cosim import sweep

    if workers < 1:
        raise ScenarioError(f"--workers: must be at least 1, got {workers}")
    spec = sweep.expand(Path(sweep_file))
    target = sweep.output_dir(spec, Path(out) if out is not None else None)
    rows = sweep.sweep(Path(sweep_file), target, workers, scheduler, progress, spec=spec)
    frame = pd.DataFrame(rows).set_index("run")
    frame.attrs["out_dir"] = str(target)
    return frame


class HostingResult:
    """Hosting capacity per feeder and direction: the results dict ``hosting_capacity.json`` holds; with
    ``times``, ``timeseries`` (one row per feeder x direction x quarter-hour)."""

    def __init__(self, results: dict, loaded: LoadedScenario, out_dir: Path | None, timeseries=None, bus_kv=None):
        self.results = results
        self.bus_kv = bus_kv  # nominal voltage of the network's buses (the limit set's levels)
        self.scenario = loaded
        self.out_dir = out_dir
        self.timeseries = timeseries

    def table(self) -> "pd.DataFrame":
        import pandas as pd

        keep = ("feeder", "direction", "chargers_p5", "chargers_p50", "chargers_p95", "kw_p50", "binding_limit",
                "binding_element")
        return pd.DataFrame([{k: f.get(k) for k in keep} for f in self.results["feeders"]]).set_index(
            ["feeder", "direction"])


def step_times(steps) -> list:
    """The SimBench timestamp of each 15-minute step."""
    from v2g_testbed.sims.grid import profile_step_times

    return list(profile_step_times(steps))


def profile_steps(times: str, every: int, n_steps: int) -> "np.ndarray":
    """The 15-minute steps of ``times``: ``year`` (all), or ``START..END`` (ISO dates or date-times in the
    SimBench year, END excluded), every ``every``-th. ScenarioError when malformed."""
    from datetime import datetime

    import numpy as np

    from v2g_testbed.sims.grid import PROFILE_MS, SIMBENCH_YEAR_START

    if every < 1:
        raise ScenarioError(f"--every: must be at least 1, got {every}")
    if times == "year":
        return np.arange(0, n_steps, every)
    first, sep, last = times.partition("..")
    if not sep:
        raise ScenarioError(f"--times: 'year' or START..END (e.g. 2016-01-01..2016-01-08), got {times!r}")
    origin = datetime.fromisoformat(SIMBENCH_YEAR_START)
    try:
        a, b = (int((datetime.fromisoformat(t) - origin).total_seconds() * 1000 // PROFILE_MS) for t in (first, last))
    except ValueError:
        raise ScenarioError(f"--times: not ISO dates: {times!r}") from None
    if not 0 <= a < b <= n_steps:
        raise ScenarioError(f"--times: {times} must run forwards inside the SimBench year 2016")
    return np.arange(a, b, every)


def _timeseries_steps(loaded: LoadedScenario, times: str | None, every: int):
    """The profile steps ``--times``/``--every`` ask for (None without ``times``), checked before any work."""
    from v2g_testbed.sims.grid import SIMBENCH_YEAR_STEPS

    if times is None:
        return None
    if not loaded.scenario.grid.network.startswith("simbench:"):
        raise ScenarioError(f"{loaded.path}: grid.network: --times needs a SimBench grid (its profiles), "
                            f"got {loaded.scenario.grid.network!r}")
    return profile_steps(times, every, SIMBENCH_YEAR_STEPS)


# the bounds of every count the API and the command line take (the CLI's options use the same)
COUNTS = {"placements": (1, 10_000), "max_chargers": (1, 10_000_000), "every": (1, 35_136),
          "replicates": (1, 1_000_000), "workers": (1, 1024)}


def _whole_number(name: str, value, optional: bool = False) -> None:
    """The API's counts as the command line checks them: an int (not a bool, not text) within ``COUNTS``."""
    if value is None and optional:
        return
    low, high = COUNTS[name]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ScenarioError(f"{name}: expected a whole number from {low:,} to {high:,}, got {value!r}")


def hosting_capacity(scenario: str | Path | LoadedScenario, placements: int | None = None, max_chargers: int = 5000,
                     at: str = "loads", out: str | Path | None = None, overrides: Iterable[str] = (),
                     progress=None, method: str = "auto", times: str | None = None, every: int = 1,
                     feeders: Iterable[str] | None = None, service: str | None = None, workers: int = 1,
                     scheduler: str | None = None) -> HostingResult:
    """``v2g hosting-capacity``: chargers of the scenario's first fleet group each feeder takes before a
    limit breaks, over random placements (default 20; 1 for a time series). Writes the tables and plots
    into ``out`` when given. ``method``: auto, subnetwork or whole-network (see analysis/hosting/);
    ``times``: ``year`` or ``START..END`` on a SimBench grid, a time series of every ``every``-th quarter-hour;
    ``feeders``: study only these. ``service``: instead of chargers, the scenario's fleet at its buses answering
    this service all at once: the largest contracted MW before a grid limit breaks (``result.service``, a
    frame; see ``v2g_testbed.analysis.hosting.service_hosting``). ``progress(done, total)`` is called as the work goes.
    ``workers``: worker processes, or ``scheduler``: a Dask cluster, each given whole supply groups (the feeders of
    one substation busbar are never split) and building only their subnetworks; the answer is the one process's."""
    from v2g_testbed.analysis import hosting
    from v2g_testbed.cosim.outputs import atomic_directory, check_output_dir, output_lock
    from v2g_testbed.sims.fleet import charger_power, single_phase

    _whole_number("placements", placements, optional=True)
    _whole_number("max_chargers", max_chargers)
    _whole_number("every", every)
    _whole_number("workers", workers)
    loaded = load_scenario(scenario, overrides)
    if service is not None:
        return _service_hosting(loaded, service, times, every, out, progress, workers, scheduler)
    if placements is None:
        placements = 1 if times else 20
    if at not in ("loads", "all"):
        raise ScenarioError(f"--at: loads or all, got {at!r}")
    if method not in ("auto", "subnetwork", "whole-network"):
        raise ScenarioError(f"--method: auto, subnetwork or whole-network, got {method!r}")
    sc = loaded.scenario
    group = loaded.groups[0]
    steps = _timeseries_steps(loaded, times, every)
    if times is not None and (loaded.power_flow == "unbalanced" or method == "whole-network" or single_phase(group)):
        raise ScenarioError("--times: a time series is studied by subnetwork with a balanced power flow and "
                            "three-phase chargers (set grid.power_flow: balanced)")
    if out is not None:
        check_output_dir(Path(out), kind="hosting-capacity")
    charger_kw = charger_power(group)[0]
    directions = ["import", "export"] if group["bidirectional"] else ["import"]
    net, profiles = _study_network(loaded, times is not None)
    names = list(hosting.feeders(net, at))
    if feeders is not None and (unknown := sorted(set(feeders) - set(names))):
        raise ScenarioError(f"--feeders: no feeder {unknown[0]!r} in {sc.grid.network} (e.g. {', '.join(sorted(names)[:5])})")
    timeseries = None
    if times is not None:
        steps = steps[steps < len(next(iter(profiles.values())))]
    study = {"charger_kw": charger_kw, "directions": directions, "placements": placements, "max_chargers": max_chargers,
             "at": at, "method": method, "times": times, "steps": steps}
    try:
        if workers > 1 or scheduler:
            chosen = [name for name in names if feeders is None or name in set(feeders)]
            profiles = None  # the workers read their own; this process keeps only the network, for the map
            found = _hosting_in_parallel(loaded, study, net, chosen, len(directions), progress, workers, scheduler)
        else:
            found = _hosting_study(loaded, study, feeders, progress, net, profiles)
    except ValueError as exc:
        raise ScenarioError(f"{loaded.path}: grid: {exc}") from None
    if times is None:
        results = found
    else:
        timeseries = found
        results = {"charger_kw": charger_kw, "limits": sc.grid.limits.model_dump(), "placements": placements,
                   "times": times, "every": every, "steps": int(len(steps)), "method": "subnetwork"}
    if out is not None:
        with output_lock(Path(out)), atomic_directory(Path(out), "hosting-capacity") as tmp:
            if timeseries is None:
                hosting.write(results, tmp)
                rows = [f for f in results["feeders"] if f["direction"] == directions[0]]
                mw = {f["feeder"]: f["kw_p50"] / 1000 for f in rows}
                binding = {f["feeder"]: f["binding_element"] for f in rows}
                what = f"median placement, {directions[0]}"
            else:
                hosting.write_timeseries(timeseries, tmp, charger_kw)
                first = timeseries[timeseries.direction == directions[0]]
                worst = first.loc[first.groupby("feeder")["chargers"].idxmin()]
                mw = dict(zip(worst.feeder, worst.kw / 1000))
                binding = dict(zip(worst.feeder, worst.binding_element))
                what = f"worst quarter-hour, {directions[0]}"
                (tmp / "hosting_capacity_timeseries.json").write_text(json.dumps(results, indent=2) + "\n")
            hosting.draw_map(net, mw, binding, f"Hosting capacity of {sc.grid.network} by feeder\n({what}; x: what binds)",
                             tmp / "hosting_capacity_map.png")
    return HostingResult(results, loaded, Path(out) if out is not None else None, timeseries,
                         sorted(set(net.bus.vn_kv.astype(float))))


def _hosting_study(loaded: LoadedScenario, study: dict, only, progress=None, net=None, profiles=None):
    """One hosting-capacity study of ``only`` (feeder names; None: all) of the scenario's network: the results dict
    (a snapshot) or the frame (``study["times"]``: a time series). In this process, or a worker's (``net`` None:
    it loads the network, and builds only the supply groups of its feeders)."""
    from v2g_testbed.analysis import hosting
    from v2g_testbed.sims.fleet import single_phase
    from v2g_testbed.sims.reactive import resolve as resolve_reactive

    sc, group = loaded.scenario, loaded.groups[0]
    if net is None:
        net, profiles = _study_network(loaded, study["times"] is not None)
    reactive = resolve_reactive(group.get("reactive"))
    if study["times"] is None:
        return hosting.hosting_capacity(net, sc.grid.limits.model_dump(), study["charger_kw"], study["directions"],
                                        study["placements"], sc.seed, study["max_chargers"], progress,
                                        phase=group["phase"] if single_phase(group) else None,
                                        unbalanced=loaded.power_flow == "unbalanced", at=study["at"],
                                        solver=loaded.solver, method=study["method"], only=only, reactive=reactive)
    return hosting.hosting_timeseries(net, profiles, study["steps"], sc.grid.limits.model_dump(), study["charger_kw"],
                                      study["directions"], study["placements"], sc.seed, study["max_chargers"],
                                      progress, study["at"], only, reactive)


def _supply_parts(net, names: list[str], parts: int) -> list[list[str]]:
    """``names`` (feeders) in at most ``parts`` parts that never split a supply group (the feeders of one substation
    busbar share a subnetwork), of about equal numbers of feeders (largest groups first, each to the smallest
    part). Each part loads the network once: as many parts as there are workers, not one per group."""
    from v2g_testbed.sims.topology import feeder_table, supply_groups

    table = feeder_table(net)
    busbar_of = {name: table[name][0] for name in names}
    members = supply_groups(net, set(busbar_of.values()))
    groups: dict[tuple, list[str]] = {}
    for name in names:
        groups.setdefault(tuple(members[busbar_of[name]]), []).append(name)
    ordered = sorted(groups.values(), key=lambda g: (-len(g), g[0]))
    out: list[list[str]] = [[] for _ in range(min(parts, len(ordered)))]
    for group in ordered:
        min(out, key=len).extend(group)
    return [part for part in out if part]


def _hosting_in_parallel(loaded: LoadedScenario, study: dict, net, chosen: list[str], per_feeder: int, progress,
                         workers: int, scheduler: str | None):
    """``_hosting_study`` of parts of ``chosen`` (whole supply groups, one part per worker) on worker processes or
    a Dask cluster, put back in the one process's order (feeders as the network lists them, then directions, then
    steps): the same answer."""
    import pandas as pd

    from v2g_testbed.cosim.pool import executor as executor_for

    done = 0
    total = len(chosen) * per_feeder
    found = []
    if not scheduler:
        parts = _supply_parts(net, chosen, workers)
        workers = min(workers, len(parts))
    executor, extra, as_completed = executor_for(workers, scheduler)
    with executor:
        if scheduler:  # a part per worker thread of the cluster
            parts = _supply_parts(net, chosen, max(1, sum(executor.nthreads().values())))
        futures = {executor.submit(_hosting_study, loaded, study, part, **extra): part for part in parts}
        for future in as_completed(futures):
            found.append(future.result())
            done += len(futures[future]) * per_feeder
            if progress:
                progress(done, total)
    # the one process's order: feeders by name (as hosting.feeders lists them), then directions, then steps
    rank = {name: k for k, name in enumerate(sorted(n for part in parts for n in part))}
    if study["times"] is not None:
        frame = pd.concat(found, ignore_index=True)
        frame["_order"] = frame.feeder.map(rank)
        frame["_direction"] = frame.direction.map({d: k for k, d in enumerate(study["directions"])})
        return frame.sort_values(["_order", "_direction", "step"], kind="stable").drop(
            columns=["_order", "_direction"]).reset_index(drop=True)
    results = dict(found[0], feeders=[f for part in found for f in part["feeders"]],
                   power_flows=sum(part["power_flows"] for part in found))
    directions = {d: k for k, d in enumerate(study["directions"])}
    results["feeders"].sort(key=lambda f: (rank[f["feeder"]], directions[f["direction"]]))
    return results


def _study_network(loaded: LoadedScenario, time_series: bool = False):
    """The scenario's network as hosting capacity studies it (base loads scaled; on SimBench grids the loads and
    generation at ``grid.profile_time``) and, for a time series or a profile_time, its SimBench profiles (a year of
    every load and generator: 8 GB for the 9,099-bus MV/LV grid, so only when asked for)."""
    from v2g_testbed.sims.grid import (PROFILE_MS, apply_profiles, load_network, simbench_profile_at,
                                       simbench_profiles)

    sc = loaded.scenario
    net = load_network(sc.grid.network, loaded.base_dir)
    for table in ("load", "asymmetric_load"):
        net[table]["scaling"] = net[table]["scaling"] * sc.grid.base_load_scale
    simbench = sc.grid.network.startswith("simbench:")
    profiles = simbench_profiles(net, sc.grid.network) if time_series and simbench else None
    if sc.grid.profile_time is not None:  # SimBench: the loads and generation at the scenario's start
        index = sc.grid.profile_start_ms() // PROFILE_MS
        if profiles is not None:
            apply_profiles(net, profiles, index)
        else:  # one moment: that row of the profiles alone, not the year
            apply_profiles(net, simbench_profile_at(net, index), 0)
    return net, profiles


def _service_inputs(loaded: LoadedScenario, times: str | None, every: int):
    """What a service hosting study searches: the network and its profiles, the steps, the fleet, its reactive
    settings (the same in the parent and in every worker: the fleet is drawn from the scenario's seed)."""
    from v2g_testbed.cosim.world import sample_fleet
    from v2g_testbed.sims.fleet import bus_reactive

    steps = _timeseries_steps(loaded, times, every)
    net, profiles = _study_network(loaded, times is not None)
    if steps is not None:
        steps = steps[steps < len(next(iter(profiles.values())))]
    vehicles = sample_fleet(loaded)
    return net, profiles, steps, vehicles, bus_reactive(loaded.groups, vehicles)


def _service_part(loaded: LoadedScenario, service: str, times: str | None, every: int, part: tuple[int, int]):
    """One worker's share of a service hosting study: every ``part[1]``-th supply group from the ``part[0]``-th."""
    from v2g_testbed.analysis import hosting
    from v2g_testbed.sims import catalog
    from v2g_testbed.sims.services import direction_sign

    net, profiles, steps, vehicles, reactive = _service_inputs(loaded, times, every)
    found = hosting.service_hosting(net, vehicles, direction_sign(catalog.services()[service]),
                                    loaded.scenario.grid.limits.model_dump(), profiles=profiles, steps=steps,
                                    reactive_of_bus=reactive, part=part)
    return dict(found, steps=None if steps is None else [int(k) for k in steps])


def _service_hosting(loaded: LoadedScenario, service: str, times: str | None, every: int, out, progress,
                     workers: int = 1, scheduler: str | None = None) -> HostingResult:
    """``hosting_capacity(..., service=...)``; over ``workers`` processes or a Dask cluster, the fleet's supply
    groups shared out (each part searched on its own, the least taken: the one process's answer)."""
    import numpy as np

    from v2g_testbed.analysis import hosting
    from v2g_testbed.cosim.outputs import atomic_directory, check_output_dir, output_lock
    from v2g_testbed.sims import catalog
    from v2g_testbed.sims.services import direction_sign

    known = catalog.services()
    if service not in known:
        raise ScenarioError(f"--service: unknown service {service!r} (known: {', '.join(sorted(known))})")
    sc = loaded.scenario
    if loaded.power_flow == "unbalanced":
        raise ScenarioError(f"{loaded.path}: grid.power_flow: service hosting capacity solves balanced power flows "
                            "(set grid.power_flow: balanced)")
    _timeseries_steps(loaded, times, every)  # a bad --times is refused before anything is built
    if out is not None:
        check_output_dir(Path(out), kind="hosting-capacity")
    try:
        if workers > 1 or scheduler:
            steps, frame = _service_in_parallel(loaded, service, times, every, workers, scheduler, progress)
        else:
            net, profiles, steps, vehicles, reactive = _service_inputs(loaded, times, every)
            frame = hosting.service_hosting(net, vehicles, direction_sign(known[service]), sc.grid.limits.model_dump(),
                                            profiles=profiles, steps=steps, reactive_of_bus=reactive)
    except ValueError as exc:
        raise ScenarioError(f"{loaded.path}: grid: {exc}") from None
    contracted = next((s.contracted_mw for s in sc.services if s.id == service), None)
    results = {"service": service, "contracted_mw": contracted, "fleet_mw": float(frame.fleet_mw.iloc[0]),
               "power_flows": frame.attrs["power_flows"], "times": times, "every": every,
               "limits": sc.grid.limits.model_dump()}
    if steps is not None:
        frame.insert(1, "time", step_times(frame.step))
        if contracted is not None:
            results["share_deliverable"] = float(np.mean(frame.service_mw >= contracted))
        results["binding_share"] = frame.binding_limit.value_counts(normalize=True).round(4).to_dict()
    else:
        results.update({k: frame.iloc[0][k] for k in ("service_mw", "binding_limit", "binding_element")})
    if out is not None:
        with output_lock(Path(out)), atomic_directory(Path(out), "hosting-capacity") as tmp:
            (tmp / "service_hosting.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
            if steps is None:
                frame.to_csv(tmp / "service_hosting.csv", index=False)
            else:
                hosting.write_service_timeseries(frame, tmp, service, contracted)
    result = HostingResult(results, loaded, Path(out) if out is not None else None)
    result.service = frame
    return result


def _service_in_parallel(loaded: LoadedScenario, service: str, times: str | None, every: int, workers: int,
                         scheduler: str | None, progress):
    """The supply groups of a service hosting study in ``workers`` parts on worker processes, or one part per
    worker thread of a Dask cluster; combined as the one process combines them."""
    import numpy as np

    from v2g_testbed.analysis import hosting
    from v2g_testbed.cosim.pool import executor as executor_for

    executor, extra, as_completed = executor_for(workers, scheduler)
    found = []
    with executor:
        parts = max(1, sum(executor.nthreads().values())) if scheduler else workers
        futures = [executor.submit(_service_part, loaded, service, times, every, (k, parts), **extra)
                   for k in range(parts)]
        for future in as_completed(futures):
            found.append(future.result())
            if progress:
                progress(len(found), parts)
    steps = found[0]["steps"]  # as the workers trimmed them to the profiles' length (not read here)
    return (None if steps is None else np.asarray(steps)), hosting.combine_service(found, steps)
