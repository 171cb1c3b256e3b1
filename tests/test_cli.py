"""The `v2g` command line: exit codes, one-line errors, overrides, atomic results."""

import subprocess
import sys

import pytest

from conftest import ROOT, make_scenario
from v2g_testbed.cosim import cli, run as runner
from v2g_testbed.cosim.scenario import ScenarioError, apply_override, load


def v2g(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "v2g_testbed.cosim.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd or ROOT)


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
