"""The `v2g` command line: exit codes, one-line errors, overrides, atomic results."""

import json
import subprocess
import sys

import pytest
import yaml

from conftest import ROOT, console_script, make_scenario, v2g_cli
from v2g_testbed.cosim import cli, run as runner
from v2g_testbed.cosim.scenario import ScenarioError, apply_override, load


def v2g(*args, cwd=None):
    return v2g_cli(*args, cwd=cwd or ROOT)


@pytest.mark.parametrize("change, field, words", [
    ({"fleet__groups": [{"model": "VW ID.3 Pro", "count": -1, "charger_kw": 10, "bus": "Bus 5"}]},
     "fleet.groups[0].count", "greater than or equal to 1"),
    ({"fleet__groups": [{"model": "Trabant", "count": 1, "charger_kw": 10, "bus": "Bus 5"}]},
     "fleet.groups[0].model", "unknown vehicle model 'Trabant'"),
    ({"services": [{"id": "DC-X", "contracted_mw": 1}]}, "services[0].id", "unknown service 'DC-X'"),
    ({"network": {"profile": "6g"}}, "network.profile", "unknown network profile '6g'"),
    ({"frequency": {"events": [{"type": "jump", "at_s": 1, "to_hz": 49}]}}, "frequency.events[0]", "type"),
    ({"duration_s": "long"}, "duration_s", "valid number"),
    ({"fleet__groups": [{"model": "VW ID.3 Pro", "count": 1, "charger_kw": 10, "bus": "Bus 99"}]},
     "fleet.groups[0].bus", "no bus 'Bus 99'"),
    ({"grid": {"network": "missing.json"}}, "grid.network", "no such file"),
    ({"fleet__spread": 5}, "fleet", "unknown field `spread`; did you mean `spread_pct`?"),
    ({"frequency": {"events": [{"type": "trace", "at_s": 0}]}}, "frequency.events[0].file", "Field required"),
    ({"frequency": {"events": [{"type": "ou", "duration_s": -1}]}}, "frequency.events[0].duration_s", "greater than 0"),
])
def test_bad_scenario_exits_2_with_one_line(tmp_path, capsys, change, field, words):
    """In-process (what the `v2g` script calls); the entry point itself is exercised by the other tests."""
    path = make_scenario(tmp_path, **change)
    for command in (["validate", path], ["run", path, "--out", tmp_path / "out"]):
        code = cli.main([str(c) for c in command])
        err = capsys.readouterr().err
        assert code == 2, err
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert str(path) in lines[0] and field in lines[0] and words in lines[0]
        assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_unreadable_and_invalid_yaml(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    for path, words in ((bad, "not valid YAML"), (tmp_path / "nope.yaml", "cannot read")):
        result = v2g("validate", path)
        assert result.returncode == 2 and words in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_validate_shipped_scenarios():
    result = v2g("validate", *sorted((ROOT / "scenarios").glob("*.yaml")))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(": ok") == len(list((ROOT / "scenarios").glob("*.yaml")))


def test_set_overrides_parse_yaml_values(tmp_path):
    path = make_scenario(tmp_path)
    loaded = load(path, ["network.profile=4g",
                         "fleet.groups=[{model: Renault Zoe 40, count: 100, charger_kw: 10, bus: Bus 5}]",
                         "services.0.contracted_mw=1.5"])
    assert loaded.scenario.network.profile == "4g"
    assert loaded.groups[0]["vehicle"].model == "Renault Zoe 40" and loaded.groups[0]["count"] == 100
    assert loaded.services[0]["contracted_kw"] == 1500.0
    with pytest.raises(ScenarioError, match=r"services.5: no list item 5"):
        apply_override({"services": []}, "services.5.id=DC-L")
    with pytest.raises(ScenarioError, match="expected dotted.path=VALUE"):
        apply_override({}, "network.profile")


def test_run_prints_table_and_writes_default_dir(tmp_path):
    path = make_scenario(tmp_path)
    result = v2g("run", path, "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "DC-L" in result.stdout and "NOT ELIGIBLE" in result.stdout  # 10 kW cannot sell 1 MW
    assert (tmp_path / "results" / "test" / "verdicts.json").is_file()


def test_failed_run_leaves_no_results(tmp_path, monkeypatch):
    path = make_scenario(tmp_path)

    def broken(*args, **kwargs):
        raise RuntimeError("analysis exploded")

    monkeypatch.setattr(runner, "evaluate", broken)
    code = cli.main(["run", str(path), "--out", str(tmp_path / "out"), "--quiet"])
    assert code == 1
    assert list(tmp_path.iterdir()) == [path]  # no output dir, no leftover partial dir


def test_catalog_lists_vehicles_services_and_sources(tmp_path):
    extra = tmp_path / "mine.csv"
    extra.write_text("model,battery_kwh,t_a_s,t_b_s,t_c_s,t_d_s,ramp_up_kw_per_s,ramp_down_kw_per_s\n"
                     "Test Car,50,1,2,0.1,0.2,5,50\n")
    result = v2g("catalog", "--vehicles-file", extra)
    assert result.returncode == 0
    for words in ("Tesla Model 3 LR dual motor", "Test Car", "DC-L", "SFFR-L", "4g", "sevdari2024:", str(extra)):
        assert words in result.stdout


def test_console_script_runs_every_command(tmp_path):
    """The one place the suite starts the installed `v2g` script: each command once, from another folder
    (every other CLI test calls it in-process). `run --quiet` prints nothing but the table."""
    v2g_script = console_script()
    assert v2g_script, "no `v2g` console script: pip install -e ."
    path = make_scenario(tmp_path, duration_s=3)

    def script(*args):
        done = subprocess.run([v2g_script, *map(str, args)], capture_output=True, text=True, cwd=tmp_path)
        assert done.returncode == 0, (args, done.stderr)
        return done

    assert ": ok" in script("validate", path).stdout
    ran = script("run", path, "--out", tmp_path / "out", "--quiet")
    assert "DC-L" in ran.stdout and ran.stderr == ""
    assert (tmp_path / "out" / "verdicts.json").is_file()
    assert script("report", tmp_path / "out", "--out", tmp_path / "r.html").stdout.strip().endswith("r.html")
    assert "DC-L" in script("catalog", "services").stdout
    assert json.loads(script("screen", "--services", "DC-L", "--json").stdout)
    assert json.loads(script("schema").stdout)["$schema"]
    script("check", path, "--baseline", tmp_path / "b.yaml", "--update")
    assert "test" in yaml.safe_load((tmp_path / "b.yaml").read_text())["scenarios"]
    script("hosting-capacity", path, "--placements", "1", "--max-chargers", "40", "--out", tmp_path / "hc", "--quiet")
    assert (tmp_path / "hc" / "hosting_capacity.json").is_file()
    # sweep: tests/test_sweep.py::test_killed_sweep_resumes... starts and kills the script itself


def test_the_run_path_needs_no_posix_only_module(tmp_path):
    """Windows has no fcntl: with it hidden, a run still takes its output lock (filelock) and finishes."""
    path = make_scenario(tmp_path, duration_s=2)
    code = ("import sys; sys.modules['fcntl'] = None\n"
            "from v2g_testbed.cosim.cli import main\n"
            f"sys.exit(main(['run', {str(path)!r}, '--out', {str(tmp_path / 'out')!r}, '--quiet']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "verdicts.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "test.yaml"]  # no lock file left behind


def test_validate_lists_every_problem_and_run_counts_them(tmp_path, capsys):
    path = make_scenario(tmp_path, duration_s=-1, seed=-5, fleet__spread_pct=-3)
    assert cli.main(["validate", str(path)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3 and all(ln.startswith(f"error: {path}: ") for ln in lines)
    assert {"duration_s", "seed", "fleet.spread_pct"} == {ln.split(": ")[2] for ln in lines}
    assert cli.main(["run", str(path), "--out", str(tmp_path / "out")]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "(+2 more: `v2g validate" in line


def test_default_table_fits_100_columns_and_wide_shows_every_column(shipped):
    from v2g_testbed.analysis.table import verdict_table

    _, verdicts = shipped("hub-dc-4g")
    narrow, wide = verdict_table(verdicts), verdict_table(verdicts, wide=True)
    assert max(len(line) for line in narrow.splitlines()) <= 100
    assert "desk method" in wide and "desk method" not in narrow.splitlines()[1]
    assert "NOT ELIGIBLE" in narrow and "initiation" in narrow


def test_messages_go_through_logging(tmp_path, caplog):
    """A notebook or CI handler receives what the CLI prints: the logger is `v2g_testbed`."""
    import logging

    from v2g_testbed.cosim import log

    with caplog.at_level(logging.INFO, logger="v2g_testbed"):
        log.LOG.warning("a plausibility warning")
    assert [r.getMessage() for r in caplog.records] == ["a plausibility warning"]


def test_every_source_folder_is_a_package_of_the_wheel():
    """pyproject.toml lists the packages the wheel installs: a new folder under sims/, analysis/ or cosim/ that
    is not listed would be missing from a plain (non-editable) install."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {"v2g_testbed." + ".".join(p.relative_to(ROOT).parts[:-1]) for top in ("sims", "analysis", "cosim")
             for p in (ROOT / top).rglob("__init__.py")}
    data = {"v2g_testbed.sims.data", "v2g_testbed.analysis.data"}
    assert found | data == listed
