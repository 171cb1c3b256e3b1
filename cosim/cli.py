"""The ``v2g`` command line.

    v2g run SCENARIO [--out DIR] [--seed N] [--set dotted.path=VALUE ...]
    v2g validate SCENARIO... [--set dotted.path=VALUE ...]
    v2g catalog [vehicles|services|networks]
    v2g screen [--charger-kw KW] [--json]
    v2g report RESULTS_DIR [--out FILE]
    v2g check SCENARIO... --baseline FILE [--update] [--junit FILE] [--set dotted.path=VALUE ...]
    v2g hosting-capacity SCENARIO [--placements N] [--workers N | --scheduler ADDRESS] [--out DIR]
    v2g sweep SWEEP.yaml [--workers N] [--scheduler tcp://host:8786] [--out DIR]
    v2g schema [--out FILE]
    v2g calibrate LOG... --out CATALOG.csv [--model NAME] [--battery-kwh KWH]
    v2g offer SCENARIO [--windows efa|hourly|HH-HH,...] [--days N] [--confidence 0.95] [--samples N] [--replicates N] [--out DIR]

Exit codes: 0 success, 2 bad input (one line on stderr naming file, field and problem),
1 a run that failed for another reason (also one line), 130 interrupted.
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from pathlib import Path

from v2g_testbed.cosim.api import COUNTS
from v2g_testbed.cosim.log import LOG
from v2g_testbed.cosim.scenario import ScenarioError

EXIT_BAD_INPUT = 2


def bounded(kind, low, high):
    """An argparse type: a finite ``kind`` (int or float) within [low, high], else a one-line error."""
    def parse(text: str):
        try:
            value = kind(text)
        except (ValueError, OverflowError):
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text[:40]!r}")
        if not math.isfinite(value) or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low:,} and {high:,}, got {text[:40]}")
        return value
    parse.__name__ = kind.__name__
    return parse


def address(text: str) -> str:
    """An argparse type: a Dask scheduler's address, not blank (an unset variable in `--scheduler "$ADDR"` must not
    quietly run everything here instead)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a Dask scheduler's address (e.g. tcp://host:8786), got nothing")
    return text.strip()


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line (no usage block) and exit 2, as every other bad input."""

    def error(self, message):
        LOG.error(f"{self.prog}: {message} (v2g {self.prog.split()[-1] if ' ' in self.prog else ''} --help lists the options)"
                  .replace("v2g  --help", "v2g --help"))
        raise SystemExit(EXIT_BAD_INPUT)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="v2g", description="Can this EV fleet deliver this grid service, on time, "
                                "through this network and this feeder?")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a scenario through the co-simulation and judge eligibility")
    run.add_argument("scenario", type=Path, help="scenario YAML file (or a run's scenario.resolved.yaml)")
    run.add_argument("--out", type=Path, help="output directory (default results/<scenario name>)")
    run.add_argument("--seed", type=bounded(int, 0, 2**63 - 1), help="override the scenario's seed")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
                     help="override a field, VALUE parsed as YAML (repeatable), e.g. --set network.profile=4g")
    run.add_argument("--quiet", action="store_true", help="no progress or status lines (warnings and errors still)")
    run.add_argument("--wide", action="store_true", help="every column of the verdict table (default: fits 100 columns)")
    run.add_argument("--plots", action="store_true",
                     help="also write the PNG plots now (default: `v2g report` draws them when wanted)")
    run.add_argument("--workers", type=bounded(int, *COUNTS["workers"]), default=1, metavar="N",
                     help="with --replicates: run N seeds at a time in worker processes (default 1)")
    run.add_argument("--scheduler", type=address, metavar="ADDRESS",
                     help="with --replicates: run the seeds on this Dask cluster (e.g. tcp://host:8786), as sweeps do")
    run.add_argument("--replicates", type=bounded(int, *COUNTS["replicates"]), default=1, metavar="N",
                     help="run N consecutive seeds and report P(eligible) with a 95 %% interval")
    val = sub.add_parser("validate", help="check scenario files without running them")
    val.add_argument("scenarios", type=Path, nargs="+", metavar="SCENARIO", help="scenario YAML files")
    val.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
                     help="check with this override applied, as `run --set` (repeatable)")
    cat = sub.add_parser("catalog", help="list the vehicle, service and network catalogs")
    cat.add_argument("what", nargs="?", choices=["vehicles", "services", "networks"],
                     help="one catalog only (default: all three)")
    cat.add_argument("--vehicles-file", type=Path, action="append", default=[],
                     help="also list the vehicles of this CSV (same columns as the built-in catalog)")
    scr = sub.add_parser("screen", help="the desk method, no simulation: every catalog vehicle x service")
    scr.add_argument("--charger-kw", type=bounded(float, 0.1, 5000), default=10.0, help="charger rating (default 10 kW)")
    scr.add_argument("--services", nargs="+", help="service ids (default: all)")
    scr.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    chk = sub.add_parser("check", help="run scenarios and compare their verdicts with a baseline (exit 1 on change)")
    chk.add_argument("scenarios", type=Path, nargs="+", metavar="SCENARIO", help="scenario YAML files")
    chk.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
                     help="apply this override to every scenario, as `run --set` (repeatable)")
    chk.add_argument("--baseline", type=Path, required=True, help="baseline YAML (created by --update)")
    chk.add_argument("--update", action="store_true", help="rewrite the baseline with these results")
    chk.add_argument("--junit", type=Path, help="also write JUnit XML: one test case per scenario x service")
    hc = sub.add_parser("hosting-capacity", help="chargers each feeder of the scenario's grid takes before a limit breaks")
    hc.add_argument("scenario", type=Path, help="scenario YAML file: its grid, limits and first fleet group")
    hc.add_argument("--placements", type=bounded(int, *COUNTS["placements"]), help="random placements per feeder and direction (20; 1 with --times)")
    hc.add_argument("--out", type=Path, help="output directory (default results/<scenario name>/hosting-capacity)")
    hc.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
                    help="override a scenario field, as `run --set` (repeatable)")
    hc.add_argument("--quiet", action="store_true", help="no progress output")
    hc.add_argument("--max-chargers", type=bounded(int, *COUNTS["max_chargers"]), default=5000, help="search no further than this per feeder")
    hc.add_argument("--method", choices=["auto", "subnetwork", "whole-network"], default="auto",
                    help="subnetwork: each feeder's substation group solved alone, placements together (auto: where "
                         "the network allows, balanced power flow); whole-network: a pandapower power flow per check")
    hc.add_argument("--times", metavar="year|START..END",
                    help="time series on a SimBench grid: every quarter-hour of the year, or of START..END "
                         "(ISO dates, END excluded)")
    hc.add_argument("--every", type=bounded(int, *COUNTS["every"]), default=1, help="with --times: every N-th quarter-hour (1)")
    hc.add_argument("--feeders", nargs="+", metavar="NAME", help="study only these feeders (names as listed)")
    hc.add_argument("--workers", type=bounded(int, *COUNTS["workers"]), default=1,
                    help="worker processes, each given whole supply groups (default 1)")
    hc.add_argument("--scheduler", type=address, metavar="ADDRESS", help="run the supply groups on this Dask cluster (tcp://host:8786)")
    hc.add_argument("--service", metavar="ID",
                    help="service hosting capacity: the largest contracted MW of this service the scenario's fleet, at "
                         "its buses, can deliver in one synchronised response before a grid limit breaks")
    hc.add_argument("--at", choices=["loads", "all"], default="loads",
                    help="candidate buses: those with a load, the customers (default), or every bus of the feeder")
    swp = sub.add_parser("sweep", help="a base scenario over parameters and seeds; one table of verdicts")
    swp.add_argument("sweep", type=Path, help="sweep YAML file: base scenario, parameters, seeds")
    swp.add_argument("--quiet", action="store_true", help="no progress output")
    swp.add_argument("--workers", type=bounded(int, *COUNTS["workers"]), default=1, help="local worker processes (default 1)")
    swp.add_argument("--scheduler", type=address, help="a Dask distributed scheduler address, e.g. tcp://host:8786")
    swp.add_argument("--out", type=Path, help="output directory (default results/sweeps/<name>)")
    rep = sub.add_parser("report", help="one self-contained HTML report of a finished run")
    rep.add_argument("results", type=Path, help="a run's output directory (as `v2g run` left it)")
    off = sub.add_parser("offer", help="the MW of a service the fleet can offer per market window, at a confidence")
    off.add_argument("scenario", type=Path, help="scenario YAML file whose fleet groups have sessions")
    off.add_argument("--windows", default="efa", help="efa (GB EFA blocks), hourly, or HH-HH,HH-HH (default efa)")
    off.add_argument("--confidence", type=bounded(float, 0.5, 0.999), default=0.95,
                     help="P(eligible) the offer must reach (default 0.95)")
    off.add_argument("--samples", type=bounded(int, 1, 96), default=2, help="moments per window (default 2)")
    off.add_argument("--replicates", type=bounded(int, 1, 10_000), default=10, help="seeds per moment (default 10)")
    off.add_argument("--steps", type=bounded(int, 1, 20), default=6, help="bisection steps on the MW (default 6)")
    off.add_argument("--days", type=bounded(int, 1, 28), default=1,
                     help="days to offer for, from the scenario's own (fleet.weekday or grid.profile_time; default 1)")
    off.add_argument("--service-index", type=bounded(int, 0, 100), default=0, help="which of the scenario's services")
    off.add_argument("--out", type=Path, help="output directory (default results/<scenario name>/offer)")
    off.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
                     help="override a scenario field, as `run --set` (repeatable)")
    off.add_argument("--workers", type=bounded(int, *COUNTS["workers"]), default=1, help="runs at a time in worker processes")
    off.add_argument("--scheduler", type=address, metavar="ADDRESS", help="run on this Dask cluster (e.g. tcp://host:8786)")
    off.add_argument("--baseline", type=Path, help="hold the offer against this baseline (exit 1 on a change), as "
                     "`v2g check` holds verdicts")
    off.add_argument("--update", action="store_true", help="with --baseline: write this offer into it")
    off.add_argument("--quiet", action="store_true", help="no progress output")
    cal = sub.add_parser("calibrate", help="fit the charger response model to your own step-test logs: a vehicle catalog")
    cal.add_argument("logs", type=Path, nargs="+", metavar="LOG",
                     help="long CSV (time_s, vehicle, setpoint_kw, power_kw[, model]) or OCPP message log (.jsonl)")
    cal.add_argument("--out", type=Path, required=True, help="the vehicle catalog CSV to write (fleet.catalogs takes it)")
    cal.add_argument("--model", help="the vehicle model, where the logs have no model column (OCPP logs never do)")
    cal.add_argument("--ocpp-version", choices=["2.0.1", "1.6"], default="2.0.1",
                     help="the OCPP version of .jsonl message logs (validated against its JSON schemas)")
    cal.add_argument("--report", type=Path, metavar="DIR",
                     help="also write, per model, every step overlaid with its fit (PNG) and the parameter and step tables")
    cal.add_argument("--phase-voltage", type=bounded(float, 100, 1000), default=230.0,
                     help="V per phase, for charging profiles in A (default 230)")
    cal.add_argument("--battery-kwh", type=bounded(float, 0.5, 2000), help="battery size (default: the built-in "
                     "catalog's for a model of the same name)")
    sch = sub.add_parser("schema", help="print the scenario file's JSON Schema (for editors and validators)")
    sch.add_argument("--out", type=Path, help="write it to this file instead of printing it")
    sch.add_argument("--verdicts", action="store_true", help="the JSON Schema of verdicts.json instead")
    rep.add_argument("--out", type=Path, help="default RESULTS/report.html")
    return p


def cmd_run(args) -> int:
    from v2g_testbed.analysis.table import verdict_table
    from v2g_testbed.cosim import api
    from v2g_testbed.cosim.outputs import check_output_dir, output_lock

    if args.plots:
        args.overrides = [*args.overrides, "outputs.plots=true"]
    loaded = api.load_scenario(args.scenario, args.overrides, args.seed)
    out = args.out or Path("results") / loaded.scenario.name
    if args.replicates < 1:
        raise ScenarioError(f"--replicates: must be at least 1, got {args.replicates}")
    check_output_dir(out, kind="replicates" if args.replicates > 1 else "run")
    for w in loaded.warnings:
        LOG.warning(w)
    if args.replicates > 1:
        return _run_replicates(args, out)
    profile = loaded.scenario.network.profile
    with output_lock(out):
        LOG.info(f"running {loaded.scenario.name}: {sum(g['count'] for g in loaded.groups)} vehicles, "
                 f"{loaded.scenario.duration_s:g} s, network {profile if isinstance(profile, str) else 'inline'}, "
                 f"seed {loaded.scenario.seed}")
        verdicts = api.run_locked(loaded, out, loaded.scenario.outputs.plots,
                                  progress=not args.quiet and sys.stderr.isatty())
    print(verdict_table(verdicts, wide=args.wide))
    print(f"results in {out}/ (verdicts.json, timeseries.h5, scenario.resolved.yaml{', plots' if loaded.scenario.outputs.plots else ''}); "
          f"`v2g report {out}` makes an HTML report" + ("" if loaded.scenario.outputs.plots else " with the plots"))
    return 0


def _run_replicates(args, out) -> int:
    from v2g_testbed.analysis.table import render, seconds
    from v2g_testbed.cosim import api
    from v2g_testbed.cosim.progress import Progress

    with Progress("replicates", "runs", quiet=args.quiet) as progress:
        result = api.run_replicates(args.scenario, args.replicates, args.overrides, args.seed, out, progress,
                                    workers=args.workers, scheduler=args.scheduler)
    rows = []
    for s in result.summary["services"]:
        times = {f: s[f] and f"{seconds(s[f]['median'])} s [{seconds(s[f]['p5'])}, {seconds(s[f]['p95'])}]"
                 for f in ("initiation_s", "full_delivery_s")}
        rows.append([s["service"], f"{s['eligible_runs']}/{s['runs_judged']}",
                     None if s["p_eligible"] is None else f"{s['p_eligible']:.2f}",
                     f"[{s['ci95'][0]:.2f}, {s['ci95'][1]:.2f}]", times["initiation_s"], times["full_delivery_s"],
                     ", ".join(f"{r} {c}" for r, c in s["failed_rule_counts"].items())])
    print(render(["service", "eligible runs", "P(eligible)", "95 % interval", "initiation median [p5, p95]",
                  "full delivery median [p5, p95]", "rules failed (runs)"], rows))
    print(f"results in {out}/ (replicates.json, seed-*/)")
    return 0


def cmd_validate(args) -> int:
    from v2g_testbed.cosim import scenario

    status = 0
    for path in args.scenarios:
        try:
            loaded = scenario.load(path, args.overrides)
            loaded.check_grid()
            print(f"{path}: ok")
            for w in loaded.warnings:
                LOG.warning(f"{path}: {w}")
        except ScenarioError as exc:  # every problem of the file, one line each
            for problem in exc.problems:
                LOG.error(problem)
            status = EXIT_BAD_INPUT
    return status


def cmd_catalog(args) -> int:
    from v2g_testbed.analysis.table import render
    from v2g_testbed.sims import catalog

    sections = [args.what] if args.what else ["vehicles", "services", "networks"]
    src = catalog.sources()
    used: list[str] = []
    if "vehicles" in sections:
        vehicles = dict(catalog.builtin_vehicles())
        for path in args.vehicles_file:
            vehicles.update(catalog.read_vehicle_csv(path))
        rows = [[v.model, v.year, v.battery_kwh, v.t_a_s, v.t_b_s, v.t_c_s, v.t_d_s, v.ramp_up_kw_per_s,
                 v.ramp_down_kw_per_s, v.source_key, "yes" if v.v2g_capable else "no", v.dc_inlet, v.v2g_source]
                for v in vehicles.values()]
        used += [k for v in vehicles.values() for k in (v.source_key, v.v2g_source)]
        print("Vehicles (t_a start delay, t_b rise time, t_c ramp-down delay, t_d fall time; ramps in kW/s; measured "
              "on the onboard charger, charging)")
        print(render(["model", "year", "kWh", "t_a s", "t_b s", "t_c s", "t_d s", "ramp up", "ramp down", "source",
                      "V2G", "DC inlet", "V2G source"], rows, "lrrrrrrrrllll"))
        print()
        chargers = catalog.dc_chargers()
        print("Bidirectional DC chargers (measured with a vehicle, both directions; fleet.groups[].dc_charger)")
        print(render(["charger", "protocol", "kW", "t_a s", "t_c s", "ramp up", "ramp down", "measured with", "source",
                      "verify"],
                     [[c.name, c.protocol, c.rated_kw, c.t_a_s, c.t_c_s, c.ramp_up_kw_per_s, c.ramp_down_kw_per_s,
                       c.measured_with, c.source_key, "yes" if c.verify else ""] for c in chargers.values()],
                     "llrrrrrlll"))
        used += [c.source_key for c in chargers.values()]
        print()
    if "services" in sections:
        rows = []
        for s in catalog.services().values():
            curve = s["curve"]
            shape = (f"trigger at {curve['trigger_deviation_hz']} Hz" if "trigger_deviation_hz" in curve else
                     " ".join(f"{hz}Hz:{pu:g}" for hz, pu in curve["points_hz_pu"]))
            rows.append([s["id"], s["name"], s["initiation_max_s"], s["full_delivery_max_s"],
                         s["delivery_duration_min"], s["min_volume_mw"], s["metering_hz"], shape,
                         "yes" if s["verify"] else "", ",".join(s["sources"])])
            used += s["sources"]
        print("Services (deadlines from the moment frequency leaves the deadband)")
        print(render(["id", "name", "init s", "full s", "dur min", "min MW", "meter Hz", "curve", "verify",
                      "sources"], rows))
        print()
    if "networks" in sections:
        rows = []
        for name, prof in catalog.network_profiles().items():
            rows.append([name, prof["description"], prof["measurement_delay_ms"], len(prof["hops"]),
                         "yes" if prof.get("verify") else "", ",".join(prof["sources"])])
            used += prof["sources"]
        print("Network profiles")
        print(render(["profile", "description", "measure ms", "hops", "verify", "sources"], rows))
        print()
    print("Sources")
    for key in dict.fromkeys(used):
        print(f"  {key}: {src.get(key, key)}")
    return 0


def cmd_screen(args) -> int:
    import json

    from v2g_testbed.analysis.screen import screen_vehicle
    from v2g_testbed.analysis.table import render
    from v2g_testbed.sims import catalog

    services = catalog.services()
    chosen = args.services or list(services)
    unknown = [s for s in chosen if s not in services]
    if unknown:
        raise ScenarioError(f"--services: unknown service {unknown[0]!r} (known: {', '.join(services)})")
    if args.charger_kw <= 0:
        raise ScenarioError(f"--charger-kw: must be > 0, got {args.charger_kw}")
    rows = [screen_vehicle(v, services[sid], args.charger_kw) for v in catalog.builtin_vehicles().values()
            for sid in chosen]
    for row, v_sid in zip(rows, [(v, sid) for v in catalog.builtin_vehicles().values() for sid in chosen]):
        row["consistent"] = {k: x for k, x in screen_vehicle(v_sid[0], services[v_sid[1]], args.charger_kw,
                                                                "consistent").items()
                             if k in ("eligible", "failed", "power_at_deadline_kw", "vehicles_needed")}
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(f"Desk method on {args.charger_kw:g} kW chargers, vehicles fully charged: published (ramp over the "
              "whole window) and with t_a counted inside the window")
        print(render(["vehicle", "service", "eligible", "failed", "kW at deadline", "vehicles needed",
                      "eligible, t_a counted", "kW", "vehicles needed"],
                     [[r["vehicle"], r["service"], "yes" if r["eligible"] else "no", ", ".join(r["failed"]),
                       r["power_at_deadline_kw"], r["vehicles_needed"], "yes" if r["consistent"]["eligible"] else "no",
                       r["consistent"]["power_at_deadline_kw"], r["consistent"]["vehicles_needed"]] for r in rows],
                     "llllrrlrr"))
    return 0


def cmd_check(args) -> int:
    import tempfile

    import yaml

    from v2g_testbed.analysis import regression
    from v2g_testbed.cosim import run as runner
    from v2g_testbed.cosim import scenario
    from v2g_testbed.cosim.outputs import check_output_file, check_output_file_writable
    from v2g_testbed.sims.files import write_whole

    baseline = {"tolerances": dict(regression.DEFAULT_TOLERANCES), "scenarios": {}}
    if args.baseline.exists() or args.baseline.is_symlink():
        try:
            baseline = regression.load_baseline(args.baseline)
        except regression.BaselineError as exc:
            raise ScenarioError(f"{args.baseline}: not a v2g check baseline: {exc}") from None
    elif not args.update:
        raise ScenarioError(f"{args.baseline}: no such baseline (create it with --update)")
    # every place this command will write, checked before any scenario runs (exit 2 or 1 now, not after)
    if args.update:
        if args.baseline.exists():  # a valid baseline (checked above) is v2g's to rewrite
            check_output_file_writable(args.baseline, "--baseline")
        else:
            check_output_file(args.baseline, "--baseline")
    if args.junit:
        check_output_file(args.junit, "--junit")
    # all inputs first: bad input exits 2 before any run
    loaded = [scenario.load(path, args.overrides) for path in args.scenarios]
    for one in loaded:
        one.check_grid()
    names = [one.scenario.name for one in loaded]
    if len(set(names)) != len(names):
        raise ScenarioError(f"{args.scenarios[0]}: name: two scenarios are both named {max(names, key=names.count)!r}")
    results, errors = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for one in loaded:
            one.scenario.outputs.plots = False
            LOG.info(f"checking {one.scenario.name} ...")
            try:
                results[one.scenario.name] = regression.snapshot(runner.run(one, Path(tmp) / one.scenario.name))
            except Exception as exc:  # one broken scenario must not hide the others' results
                errors[one.scenario.name] = f"{type(exc).__name__}: {exc}"
    differences = [] if args.update else [
        d for name, snap in results.items()
        for d in regression.compare(name, baseline["scenarios"].get(name), snap, baseline["tolerances"])]
    if args.junit:
        write_whole(args.junit, regression.junit_xml(results, differences, errors))
    for name, message in errors.items():
        LOG.error(f"{name}: the run failed: {message}")
    if args.update:
        baseline["scenarios"].update(results)
        header = ("# v2g check baseline (v2g-testbed): verdicts of these scenarios. Booleans and rule lists must match exactly,\n"
                  "# numbers within the tolerances below. Rewrite deliberately: v2g check ... --update\n")
        write_whole(args.baseline, header + yaml.safe_dump(baseline, sort_keys=True))
        print(f"baseline {args.baseline} updated: {len(results)} scenario(s)")
        return 1 if errors else 0
    for d in differences:
        print(regression.format_difference(d))
    n_cases = sum(len(r["services"]) for r in results.values())
    print(f"v2g check: {len(results)} scenario(s), {n_cases} verdict(s): "
          + (f"{len(differences)} change(s)" if differences else "no change"))
    return 1 if differences or errors else 0


def cmd_hosting(args) -> int:
    from v2g_testbed.analysis.table import render
    from v2g_testbed.cosim import api
    from v2g_testbed.cosim.progress import Progress

    loaded = api.load_scenario(args.scenario, args.overrides)
    out = args.out or Path("results") / loaded.scenario.name / "hosting-capacity"
    unit = "parts of the supply groups" if args.service else "feeder directions"
    with Progress("hosting capacity", unit, quiet=args.quiet) as progress:
        result = api.hosting_capacity(loaded, args.placements, args.max_chargers, args.at, out, progress=progress,
                                      method=args.method, times=args.times, every=args.every, feeders=args.feeders,
                                      service=args.service, workers=args.workers, scheduler=args.scheduler)
    from v2g_testbed.analysis.limits import Limits

    results, sc = result.results, loaded.scenario
    lim = Limits.of(sc.grid.limits.model_dump())
    unbalance = f", unbalance {lim.unbalance_pct:g} %" if loaded.power_flow == "unbalanced" else ""
    band = f"{lim.name} {lim.describe(result.bus_kv)}" if result.bus_kv else lim.name
    if args.service:
        return _print_service(result, args, sc, out)
    if result.timeseries is not None:
        frame = result.timeseries
        print(f"Hosting capacity of {sc.grid.network} for {results['charger_kw']:g} kW chargers at buses with a load, "
              f"{results['steps']} quarter-hours of {args.times} ({results['placements']} placement(s) each; limits "
              f"{band}, {lim.loading_pct:g} %)")
        worst = frame.loc[frame.groupby(["feeder", "direction"], sort=True)["chargers"].idxmin()]
        times = {int(s): str(t) for s, t in zip(frame.step, api.step_times(frame.step))}
        print(render(["feeder", "direction", "worst", "at", "binds", "where", "median", "best"],
                     [[r.feeder, r.direction, r.chargers, times[int(r.step)], r.binding_limit, r.binding_element,
                       int(frame[(frame.feeder == r.feeder) & (frame.direction == r.direction)].chargers.median()),
                       int(frame[(frame.feeder == r.feeder) & (frame.direction == r.direction)].chargers.max())]
                      for r in worst.itertuples()], "llrllllr"))
        print(f"{len(frame)} rows; results in {out}/")
        return 0
    print(f"Hosting capacity of {sc.grid.network} for {results['charger_kw']:g} kW {results['charger_phases']} chargers "
          f"at buses {results['buses']}, {loaded.power_flow} power flow ({results['placements']} placements per feeder; "
          f"limits {band}, {lim.loading_pct:g} %{unbalance}; {results['method']})")
    if sc.grid.profile_time is not None:
        print(f"base loads and generation: the grid's profiles at {sc.grid.profile_time}")
    if loaded.power_flow_note:
        print(f"note: {loaded.power_flow_note}")
    print(render(["feeder", "direction", "p5", "p50", "p95", "MW at p50", "binds first", "where"],
                 [[f["feeder"], f["direction"], f["chargers_p5"], f["chargers_p50"], f["chargers_p95"],
                   f"{f['kw_p50'] / 1000:.2f}", f["binding_limit"], f["binding_element"]] for f in results["feeders"]],
                 "llrrrrll"))
    print(f"{results['power_flows']} power flows; results in {out}/")
    return 0


def _print_service(result, args, sc, out) -> int:
    from v2g_testbed.analysis.table import render

    res, frame = result.results, result.service
    fleet = f"fleet headroom {res['fleet_mw']:.3f} MW"
    if args.times is None:
        print(f"{args.service} from the fleet of {sc.name} on {sc.grid.network}: up to {res['service_mw']:.3f} MW in one "
              f"synchronised response ({fleet}); binds: {res['binding_limit']} {res['binding_element']}")
    else:
        worst = frame.loc[frame.service_mw.idxmin()]
        print(f"{args.service} from the fleet of {sc.name} on {sc.grid.network}, {len(frame)} quarter-hours of "
              f"{args.times} ({fleet}): median {frame.service_mw.median():.3f} MW, worst {worst.service_mw:.3f} MW at "
              f"{worst.time} ({worst.binding_limit} {worst.binding_element})")
        if res.get("share_deliverable") is not None:
            print(f"the contracted {res['contracted_mw']:g} MW is deliverable in {100 * res['share_deliverable']:.1f} % "
                  "of the quarter-hours")
        print(render(["binds first", "share of quarter-hours"],
                     [[k, f"{100 * v:.1f} %"] for k, v in res["binding_share"].items()], "lr"))
    print(f"{res['power_flows']} power flows; results in {out}/")
    return 0


def cmd_sweep(args) -> int:
    from v2g_testbed.cosim import api
    from v2g_testbed.cosim.progress import Progress

    with Progress("sweep", "runs", quiet=args.quiet) as progress:
        table = api.run_sweep(args.sweep, args.out, args.workers, args.scheduler,
                              lambda done, failed, total: progress(done, total, failed))
    out = table.attrs["out_dir"]
    bad = table[table["status"] != "ok"]
    print(f"{len(table)} runs, {len(bad)} failed; table in {out}/results.csv and results.parquet, plot eligibility.png")
    for run, row in bad.iterrows():
        print(f"  {run}: {row['status']}")
    return 1 if len(bad) else 0


def cmd_offer(args) -> int:
    from v2g_testbed.analysis.table import render
    from v2g_testbed.cosim import api, offer
    from v2g_testbed.cosim.outputs import atomic_directory, check_output_dir, output_lock
    from v2g_testbed.cosim.progress import Progress

    loaded = api.load_scenario(args.scenario, args.overrides)
    out = args.out or Path("results") / loaded.scenario.name / "offer"
    check_output_dir(out, kind="offer")
    baseline = _offer_baseline(args) if args.baseline else None
    service = loaded.services[min(args.service_index, len(loaded.services) - 1)]["id"]
    with Progress("offer", "windows", quiet=args.quiet) as progress:
        rows = offer.offer(args.scenario, args.windows, args.confidence, args.samples, args.replicates, args.steps,
                           args.overrides, args.service_index, progress, args.workers, args.scheduler, args.days)
    with output_lock(out), atomic_directory(out, "offer") as tmp:
        offer.write(rows, tmp, service, args.confidence)
    print(f"{service} offered per window at P(eligible) >= {args.confidence:g} ({args.samples} moment(s) x "
          f"{args.replicates} seed(s) a window):")
    print(render(["window", "MW offered", "P(eligible)", "95 % interval", "vehicles p5/p50/p95", "headroom MW", "binds",
                  "grid MW"],
                 [[offer.label(r), f"{r['offered_mw']:g}", f"{r['p_eligible']:.2f}",
                   f"[{r['ci95'][0]:.2f}, {r['ci95'][1]:.2f}]",
                   "/".join(str(v) for v in r["vehicles_present"].values()),
                   "/".join(f"{v:g}" for v in r["headroom_mw"].values()), r["binds"],
                   "-" if (r.get("grid") or {}).get("service_mw") is None else f"{r['grid']['service_mw']:g}"]
                  for r in rows], "lrrrrrlr"))
    print(f"results in {out}/ (offer.csv, offer.json, offer.png)")
    if baseline is None:
        return 0
    import yaml

    from v2g_testbed.sims.files import write_whole

    name, snap = loaded.scenario.name, offer.snapshot(rows, service, args.confidence)
    if args.update:
        baseline.setdefault("offers", {})[name] = snap
        write_whole(args.baseline, "# v2g offer baseline (v2g-testbed): offered MW within the tolerance, binds exactly. "
                   "Rewrite deliberately: v2g offer ... --baseline FILE --update\n" + yaml.safe_dump(baseline, sort_keys=True))
        print(f"baseline {args.baseline} updated")
        return 0
    changes = offer.compare(name, baseline.get("offers", {}).get(name), snap, baseline.get("tolerance_mw",
                                                                                           offer.OFFER_TOLERANCE_MW))
    for line in changes:
        print(line)
    print(f"v2g offer --baseline: {len(changes)} change(s)" if changes else "v2g offer --baseline: no change")
    return 1 if changes else 0


def _offer_baseline(args) -> dict:
    """The offer baseline, checked before any run: a v2g offer baseline, or nothing yet (with --update)."""
    from v2g_testbed.cosim.outputs import check_output_file
    from v2g_testbed.sims.files import InputFileError, load_yaml, read_text

    if not args.baseline.exists():
        if not args.update:
            raise ScenarioError(f"{args.baseline}: no such baseline (create it with --update)")
        check_output_file(args.baseline, "--baseline")
        return {"tolerance_mw": 0.05, "offers": {}}
    try:
        data = load_yaml(read_text(args.baseline, "baseline"))
    except (OSError, InputFileError) as exc:
        raise ScenarioError(f"{args.baseline}: not a v2g offer baseline: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("offers"), dict):
        raise ScenarioError(f"{args.baseline}: not a v2g offer baseline: it has no `offers` mapping")
    return data


def cmd_calibrate(args) -> int:
    from v2g_testbed.analysis.calibration import CalibrationError, calibrate, write_catalog
    from v2g_testbed.analysis.calibration.catalog import PARAMETERS, source_key
    from v2g_testbed.analysis.table import render
    from v2g_testbed.cosim.outputs import atomic_directory, check_output_dir, check_output_file

    check_output_file(args.out, "--out")
    if args.report is not None:
        check_output_dir(args.report, "--report", kind="calibration")
    try:
        fits, models = calibrate(args.logs, args.model, args.ocpp_version, args.phase_voltage)
        kwh = {m.model: args.battery_kwh for m in models} if args.battery_kwh else {}
        write_catalog(models, args.out, source_key(args.logs), kwh)
    except CalibrationError as exc:
        raise ScenarioError(str(exc)) from None
    fitted = [f for f in fits if f.rejected is None]
    print(f"{len(fitted)} of {len(fits)} steps fitted from {len(args.logs)} log(s)")
    rows = []
    for m in models:
        for column in PARAMETERS:
            v = m.values.get(column)
            if v:
                ci = "" if v["ci95"] is None else f"+/- {v['ci95']:.3g}"
                rows.append([m.model, column, f"{v['mean']:.4g}", ci, f"{v['sd']:.3g}", v["n"],
                             "" if v["resolved"] else "lower bound (sampling)"])
    print(render(["model", "parameter", "mean", "95 % interval", "spread (sd)", "steps", "note"], rows, "llrrrrl"))
    for f in fits:
        if f.rejected:
            print(f"not fitted: {f.source} vehicle {f.vehicle} step at {f.at_s:g} s: {f.rejected}")
    print(f"catalog written to {args.out} (list it in fleet.catalogs)")
    if args.report is not None:
        from v2g_testbed.analysis.calibration import report

        with atomic_directory(args.report, "calibration") as tmp:
            report.write(tmp, fits, models)
        print(f"report in {args.report}/ (a plot per model, parameters.csv, steps.csv)")
    return 0


def cmd_schema(args) -> int:
    import json

    from v2g_testbed.analysis.verdict import verdicts_schema
    from v2g_testbed.cosim.scenario import json_schema

    text = json.dumps(verdicts_schema() if args.verdicts else json_schema(), indent=2) + "\n"
    if args.out is None:
        sys.stdout.write(text)
        return 0
    from v2g_testbed.cosim.outputs import check_output_file
    from v2g_testbed.sims.files import write_whole

    check_output_file(args.out, "--out")
    write_whole(args.out, text)
    LOG.info(f"scenario JSON Schema written to {args.out}")
    return 0


def cmd_report(args) -> int:
    from v2g_testbed.analysis import report
    from v2g_testbed.cosim.outputs import check_output_file, recording, writing_to

    if args.out is not None:
        check_output_file(args.out, "--out")
    elif (args.results / "report.html").exists():
        check_output_file(args.results / "report.html", "report")
    try:
        with recording(args.results), writing_to(args.out or args.results / "report.html"):
            path = report.write(args.results, args.out)  # the report (and plots drawn for it) join the manifest
    except FileNotFoundError as exc:
        LOG.error(str(exc))
        return EXIT_BAD_INPUT
    print(path)
    return 0


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: the run stops, its partial results are removed."""


def _on_sigterm(signum, frame):
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    import logging
    import signal

    from v2g_testbed.cosim.log import command_line_handler

    with command_line_handler():
        try:
            args = _parser().parse_args(argv)
        except SystemExit as exc:  # --help (0) or a bad argument (2, one line)
            return exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
    warnings.filterwarnings("ignore", category=FutureWarning)
    # an interrupted mosaik run leaves asyncio tasks behind; their "Task was destroyed" messages are noise
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    previous = signal.getsignal(signal.SIGTERM)
    if previous is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        with command_line_handler(quiet=getattr(args, "quiet", False)):
            return _main(args)
    finally:
        if previous is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, previous)


def _main(args) -> int:
    from v2g_testbed.cosim.outputs import WriteFailure, machine_fault

    try:
        commands = {"run": cmd_run, "validate": cmd_validate, "catalog": cmd_catalog, "screen": cmd_screen,
                    "report": cmd_report, "check": cmd_check, "hosting-capacity": cmd_hosting, "sweep": cmd_sweep,
                    "schema": cmd_schema, "calibrate": cmd_calibrate, "offer": cmd_offer}
        code = commands[args.command](args)
        sys.stdout.flush()  # a reader that went away (`v2g catalog | head -1`) shows here, not at exit
        return code
    except ScenarioError as exc:
        LOG.error(str(exc))
        return EXIT_BAD_INPUT
    except WriteFailure as exc:  # the machine, not the input: one line, exit 1
        LOG.error(str(exc))
        return 1
    except BrokenPipeError:  # the reader of our output went away: nothing to say, and no one to say it to
        _silence_stdout()
        return 0
    except KeyboardInterrupt as exc:
        LOG.warning(f"{'terminated' if isinstance(exc, Terminated) else 'interrupted'}: no results written")
        return 143 if isinstance(exc, Terminated) else 130
    except RecursionError:
        LOG.error("an input is nested too deeply to read")
        return EXIT_BAD_INPUT
    except Exception as exc:  # a last line of defence: one line, not a traceback
        from v2g_testbed.sims.catalog import CatalogError
        from v2g_testbed.sims.grid import GridError

        if isinstance(exc, (CatalogError, GridError)):
            LOG.error(str(exc))
            return EXIT_BAD_INPUT
        fault = machine_fault(exc)
        if fault:
            LOG.error(f"{fault} (no results kept)")
            return 1
        LOG.error(f"the run failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
                  "(no results written; rerun with V2G_DEBUG=1 for a traceback)")
        import os

        if os.environ.get("V2G_DEBUG"):
            raise
        return 1


def _silence_stdout():
    """After a broken pipe: point stdout at the null device, so that the interpreter's final flush at exit
    does not raise (and print) the same error again (Python's documented recipe)."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # in-process callers whose stdout has no file descriptor
        pass


def script() -> None:
    """The ``v2g`` console script: ``main``, then out without Python's teardown of every module. When ``main``
    returns, every file the command writes is written, closed and moved into place; the exit handlers (logging,
    multiprocessing, Dask) run here as at any exit and the standard streams are flushed. What is skipped is the
    interpreter freeing every object of every module one by one: 0.56 s once pandapower is imported (measured,
    ``python -c "import pandapower"`` after its last exit handler), a quarter of a shipped scenario's `v2g run`.
    A failure inside ``main`` that escapes it (``V2G_DEBUG=1``) leaves the usual way, with its traceback."""
    import atexit
    import os

    code = main()
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)  # what the interpreter itself calls at exit
    if run_exit_handlers is None:  # an interpreter without it: the usual exit
        sys.exit(code)
    run_exit_handlers()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a reader that went away, a closed stream: nothing more to say
            pass
    os._exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    script()
