"""Never lose a user's files; every bad input a clean exit 2 before any work (issue 14).

Each numbered case of the issue is a test here. Most call the CLI in-process (`cli.main`), which is what
the `v2g` script runs; signals and concurrent runs need real processes."""

import copy
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, SCENARIOS, make_scenario, console_script, one_error_line, v2g
from v2g_testbed.cosim.outputs import MARKER, output_lock






def tree(path: Path) -> dict:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


# 1, 2, 5: output directories the tool did not write are never replaced, and are refused before any work
def test_a_users_folder_a_file_and_the_working_directory_are_refused(tmp_path, capsys):
    scenario = make_scenario(tmp_path)
    mine = tmp_path / "mydata"
    (mine / "thesis").mkdir(parents=True)
    (mine / "precious.txt").write_text("do not lose me")
    (mine / "thesis" / "ch1.tex").write_text("\\chapter{One}")
    afile = tmp_path / "afile"
    afile.write_text("mine")
    before = tree(tmp_path)
    cases = [(mine, "holds files this tool did not write"), (afile, "is a file"),
             (afile / "sub", "which is a file"), (Path("."), "current directory"), (Path(".."), "current directory")]
    for out, words in cases:
        started = time.perf_counter()
        code, _, err = v2g(capsys, "run", scenario, "--out", out, cwd=tmp_path)
        assert code == 2
        one_error_line(err, words)
        assert time.perf_counter() - started < 20  # refused before the simulation, not after it
    for out, words in cases[:3]:
        code, _, err = v2g(capsys, "hosting-capacity", scenario, "--out", out, cwd=tmp_path)
        assert code == 2, err
    assert tree(tmp_path) == before
    assert not list(tmp_path.glob(".*"))  # no hidden leftovers either


def test_report_and_junit_never_overwrite_a_file_the_tool_did_not_write(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "notes.html").write_text("<html>my notes</html>")
    code, _, err = v2g(capsys, "report", tmp_path / "run", "--out", tmp_path / "notes.html")
    assert code == 2 and "not written by v2g" in one_error_line(err)
    code, _, err = v2g(capsys, "check", make_scenario(tmp_path), "--baseline", tmp_path / "b.yaml", "--update",
                       "--junit", tmp_path / "notes.html")
    assert code == 2 and "not written by v2g" in one_error_line(err)
    (tmp_path / "mine.yaml").write_text("shopping: [milk]\n")
    code, _, err = v2g(capsys, "check", make_scenario(tmp_path), "--baseline", tmp_path / "mine.yaml", "--update")
    assert code == 2 and "not a v2g check baseline" in one_error_line(err)
    assert (tmp_path / "notes.html").read_text() == "<html>my notes</html>"
    assert (tmp_path / "mine.yaml").read_text() == "shopping: [milk]\n"


# 3: names that would leave the output root
def test_a_sweep_name_cannot_escape_the_results_directory(tmp_path, capsys):
    scenario = make_scenario(tmp_path)
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump({"base": scenario.name, "name": "../../../../escaped/ESCAPED",
                                     "parameters": {"network.profile": ["local"]}}))
    work = tmp_path / "work"
    work.mkdir()
    code, _, err = v2g(capsys, "sweep", sweep, cwd=work)
    assert code == 2 and "name" in one_error_line(err)
    assert not list(tmp_path.rglob("ESCAPED")) and not list(work.iterdir())


# 4: no hang, whatever the trace's times
def test_a_trace_spanning_1e300_seconds_is_refused_and_a_long_gap_costs_nothing(tmp_path, capsys):
    (tmp_path / "t.csv").write_text("time_s,hz\n0,50\n1e300,49.5\n")
    path = make_scenario(tmp_path, frequency={"events": [{"type": "trace", "file": "t.csv"}]}, duration_s=5)
    code, _, err = v2g(capsys, "validate", path)
    assert code == 2 and "spans" in one_error_line(err)
    from v2g_testbed.sims.frequency import build_profile

    started = time.perf_counter()  # a day-long gap, a 5 s run: nothing is prepared past the end
    profile = build_profile([{"type": "trace", "at_s": 0, "time_s": [0, 86_000], "hz": [50, 49]}], 50.0, 1, 5000)
    assert time.perf_counter() - started < 1 and profile[-1][0] <= 5000


# 5, 6, 10: every bad value exits 2 naming the field, before any work
@pytest.mark.parametrize("overrides, words", [
    (["services.0.contracted_mw=.inf"], "services[0].contracted_mw"),
    (["duration_s=.nan"], "duration_s"),
    (["fleet.groups.0.charger_kw=1e308"], "fleet.groups[0].charger_kw"),
    (["fleet.groups.0.charger_kw=10000"], "fleet.groups[0].charger_kw"),  # a 10 MW home charger
    (["name=" + "a" * 300], "name"),
    (["frequency.events.0.to_hz=0"], "frequency.events[0].to_hz"),
    (["fleet.grups=[]"], "unknown field `grups`; did you mean `groups`?"),
    (["execution.init_timeout_s=-1"], "execution.init_timeout_s"),
])
def test_bad_values_exit_2_naming_the_field(tmp_path, capsys, overrides, words):
    path = make_scenario(tmp_path)
    args = [a for o in overrides for a in ("--set", o)]
    code, _, err = v2g(capsys, "run", path, *args, "--out", tmp_path / "out")
    assert code == 2
    one_error_line(err, words)
    assert not (tmp_path / "out").exists()


def test_negative_seed_and_catalog_infinities_exit_2(tmp_path, capsys):
    path = make_scenario(tmp_path)
    code, _, err = v2g(capsys, "run", path, "--seed", "-1", "--out", tmp_path / "out")
    assert code == 2 and "seed" in one_error_line(err)
    header = "model,battery_kwh,t_a_s,t_b_s,t_c_s,t_d_s,ramp_up_kw_per_s,ramp_down_kw_per_s\n"
    for row, field in (("Car,60,inf,1,1,1,10,10", "t_a_s"), ("Car,60,1e308,1,1,1,10,10", "t_a_s"),
                       ("Car,60,1,1,1,1,inf,10", "ramp_up_kw_per_s")):
        (tmp_path / "cars.csv").write_text(header + row + "\n")
        scenario = make_scenario(tmp_path, fleet={"assume_v2g": True, "catalogs": ["cars.csv"], "groups": [
            {"model": "Car", "count": 1, "charger_kw": 10, "bus": "Bus 5"}]})
        code, _, err = v2g(capsys, "validate", scenario)
        assert code == 2 and field in one_error_line(err, "fleet.catalogs[0]")


@pytest.mark.parametrize("rows, words", [("0,50\n1,0\n", "0 Hz"), ("0,50\n1,49.5,7\n", "3 cells"),
                                         ("0,50\nnan,49.5\n", "finite")])
def test_bad_traces_exit_2(tmp_path, capsys, rows, words):
    (tmp_path / "t.csv").write_text("time_s,hz\n" + rows)
    path = make_scenario(tmp_path, frequency={"events": [{"type": "trace", "file": "t.csv"}]})
    code, _, err = v2g(capsys, "validate", path)
    assert code == 2
    one_error_line(err, "frequency.events[0].file", words)


def test_implausible_values_are_warned_about_in_the_verdict_notes(tmp_path, capsys):
    from v2g_testbed.cosim import scenario

    path = make_scenario(tmp_path, services=[{"id": "DC-L", "contracted_mw": 1000}],
                         fleet={"assume_v2g": True, "groups": [{"model": "VW ID.3 Pro", "count": 100, "charger_kw": 10, "bus": "Bus 5"}]})
    warnings = scenario.load(path).warnings
    assert any("contracted_mw = 1000 MW" in w for w in warnings)
    code, _, err = v2g(capsys, "validate", path)
    assert code == 0 and "contracted_mw = 1000 MW" in err


# 7, 8: concurrent runs, signals, stale partial directories (real processes)
def test_a_second_run_into_a_locked_directory_exits_2_naming_the_first(tmp_path, capsys):
    out = tmp_path / "same"
    with output_lock(out):
        code, _, err = v2g(capsys, "run", make_scenario(tmp_path), "--out", out)
    assert code == 2 and f"pid {os.getpid()}" in one_error_line(err, "is writing there now")
    assert not out.exists()


def test_sigterm_exits_143_leaves_nothing_partial_and_stale_partials_are_cleaned(tmp_path):
    results = tmp_path / "results"
    stale = results / ".long.999999999.x1y2.partial"  # a dead run's leftover (no such pid)
    stale.mkdir(parents=True)
    # two hours of a stochastic frequency: long enough on any machine to be stopped mid-run (600 s once was,
    # until the run itself got faster)
    path = make_scenario(tmp_path, name="long", duration_s=7200,
                         frequency={"events": [{"type": "ou", "duration_s": 7200}]})
    proc = subprocess.Popen([console_script(), "run", path, "--out", results / "long"],
                            cwd=ROOT, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not any(p.name.startswith(".long.") and str(proc.pid) in p.name
                                             for p in results.iterdir()):
        time.sleep(0.1)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "terminated: no results written" in err and "Task was destroyed" not in err and "Traceback" not in err
    assert sorted(p.name for p in results.iterdir()) == []  # no result, no partial, no lock, stale one gone


def test_rerun_replaces_only_a_marked_result_and_stays_byte_identical(tmp_path, capsys):
    path = make_scenario(tmp_path, duration_s=3)
    out = tmp_path / "out"
    assert v2g(capsys, "run", path, "--out", out)[0] == 0
    assert (out / MARKER).is_file()
    first = (out / "verdicts.json").read_bytes()
    assert v2g(capsys, "run", path, "--out", out)[0] == 0
    assert (out / "verdicts.json").read_bytes() == first
    (out / MARKER).unlink()  # no longer recognisably ours: refused
    code, _, err = v2g(capsys, "run", path, "--out", out)
    assert code == 2 and (out / "verdicts.json").read_bytes() == first


# 9: a slow separate process: a setting and a hint
def test_separate_process_init_timeout_is_a_setting_with_a_hint(tmp_path, capsys):
    path = make_scenario(tmp_path, duration_s=2, execution={"separate_processes": ["grid"], "init_timeout_s": 0.001})
    code, _, err = v2g(capsys, "run", path, "--out", tmp_path / "out")
    assert code == 1 and "execution.init_timeout_s" in err and len(err.strip().splitlines()) == 2  # + "running"
    assert not (tmp_path / "out").exists()


# fuzz: every leaf of every shipped scenario, mutated; validate answers 0 or 2 in one line
MUTATIONS = [None, -1, 0, 1e308, float("inf"), float("nan"), "", "x" * 300, [], {}, True, "../../etc"]


def _leaves(node, path=()):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaves(v, (*path, k))
        yield (*path, "unknown_key_xyz"), None
    elif isinstance(node, list) and node:
        for i, v in enumerate(node):
            yield from _leaves(v, (*path, i))
    else:
        yield path, node


def test_fuzz_every_leaf_of_every_shipped_scenario(tmp_path, capsys, monkeypatch):
    import functools

    import v2g_testbed.sims.grid

    monkeypatch.setattr(v2g_testbed.sims.grid, "load_network", functools.lru_cache(maxsize=None)(v2g_testbed.sims.grid.load_network))
    import shutil

    shutil.copytree(ROOT / "scenarios", tmp_path / "scenarios")  # with the traces the scenarios name
    seen = 0
    for source in SCENARIOS:
        data = yaml.safe_load(source.read_text())
        for n, (path, _) in enumerate(_leaves(data)):
            # each leaf gets 4 of the mutations, in rotation: every kind reaches every part of the schema
            chosen = [MUTATIONS[(n * 4 + k) % len(MUTATIONS)] for k in range(4)]
            for value in chosen if path[-1] != "unknown_key_xyz" else [1]:
                mutated = copy.deepcopy(data)
                node = mutated
                for key in path[:-1]:
                    node = node[key]
                node[path[-1]] = value
                target = tmp_path / "scenarios" / source.name
                target.write_text(yaml.safe_dump(mutated))
                code, _, err = v2g(capsys, "validate", target)
                assert code in (0, 2), (path, value, err)
                assert "Traceback" not in err, (path, value, err)
                errors = [ln for ln in err.strip().splitlines() if "warning:" not in ln]
                # validate lists every problem, one line each, each naming the file (one leaf changed: one place)
                assert len(errors) == (0 if code == 0 else 1), (path, value, err)
                assert all(ln.startswith(f"error: {target}: ") for ln in errors), (path, value, err)
                seen += 1
    assert seen > 400
