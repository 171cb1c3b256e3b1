"""The Python API, provenance and reruns of a resolved scenario, the JSON Schema, the documented examples,
progress output and the mosaik-reuse helpers: what a researcher's tools touch."""

import hashlib
import io
import json
import subprocess
import sys

import jsonschema
import numpy as np
import pytest
import yaml

from conftest import ROOT, SCENARIOS, make_scenario
from v2g_testbed.cosim import cli, run_scenario
from v2g_testbed.cosim import scenario as scenario_module
from v2g_testbed.cosim.api import RunResult
from v2g_testbed.cosim.progress import Progress
from v2g_testbed.cosim.scenario import ScenarioError, json_schema
from v2g_testbed.cosim.world import sample_fleet
from v2g_testbed.sims import record
from v2g_testbed.sims.fleet import fleet_parameters

SCHEMA_FILE = ROOT / "docs" / "scenario.schema.json"
EXAMPLES = sorted((ROOT / "docs" / "examples").glob("*.py"))


def small(tmp_path, **changes):
    changes.setdefault("fleet__groups", [{"model": "VW ID.3 Pro", "count": 6, "charger_kw": 10, "bus": "Bus 5"}])
    return make_scenario(tmp_path, **changes)


def test_run_scenario_gives_the_verdicts_and_the_record_as_pandas(tmp_path, capsys):
    path = small(tmp_path)
    with run_scenario(path, seed=4) as r:
        out = r.out_dir
        verdicts = json.loads((out / "verdicts.json").read_text())
        assert r.verdicts == verdicts and verdicts["seed"] == 4
        assert r.eligible == {"DC-L": verdicts["services"][0]["eligible"]}
        assert list(r.table().index) == ["DC-L"]
        assert set(r.rules().loc["DC-L"].index) == set(verdicts["services"][0]["rules"])
        power = r.series("fleet_power")
        assert power.equals(r.series("fleet/p_kw")) and power.attrs["unit"] == "kW"
        assert power.index.name == "time_s" and power.index[1] - power.index[0] == pytest.approx(0.01)
        assert r.series("vehicle_power").shape[1] == 6
        voltage = r.series("voltage")
        assert list(voltage.columns) == r.series("bus_names")["bus_names"].tolist() and len(voltage.columns) > 5
        assert set(r.series("setpoints").columns) >= {"time_s", "vehicle", "kw", "seq"}
        vehicles = r.vehicles()
        assert len(vehicles) == 6 and (vehicles["model"] == "VW ID.3 Pro").all()
        assert set(r.names) <= set(record.SERIES) and "fleet_power" in r.names
        with pytest.raises(KeyError, match="no such recorded output"):
            r.series("fleet/power")
        assert not list(out.glob("*.png"))  # plots on demand only
        assert {p.name for p in r.plots()} >= {"response.png", "grid.png"}
        # the same run through the command line: the same verdicts, byte for byte
        assert cli.main(["run", str(path), "--seed", "4", "--out", str(tmp_path / "cli"), "--quiet"]) == 0
        assert (tmp_path / "cli" / "verdicts.json").read_bytes() == (out / "verdicts.json").read_bytes()
        # a failed rule fed by a default value says so: the scenario leaves telemetry at 1 Hz
        metering = r.verdicts["services"][0]["rules"]["metering"]
        assert not metering["passed"]
        assert any("fleet.telemetry_hz = 1 is the default" in n for n in r.verdicts["services"][0]["notes"])
        assert "fleet.telemetry_hz = 1 is the default" in capsys.readouterr().out
    assert not out.exists()  # a temporary run is removed with its result
    reopened = RunResult.open(tmp_path / "cli")
    assert reopened.verdicts == verdicts and reopened.series("fleet_power").equals(power)


def test_api_errors_are_the_command_lines(tmp_path):
    path = small(tmp_path)
    with pytest.raises(ScenarioError, match=r"fleet\.groups\[0\]\.count"):
        run_scenario(path, overrides=["fleet.groups.0.count=-2"])
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(ScenarioError, match="holds files this tool did not write"):
        run_scenario(path, out=tmp_path / "mine")
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"


def test_resolved_scenario_reruns_byte_identical_with_input_hashes(tmp_path):
    """The resolved scenario is itself a scenario: its rerun gives the same verdicts, byte for byte, even
    with the original input files gone (they are copied beside it), and it names each input by SHA-256."""
    traces = tmp_path / "traces"
    traces.mkdir()
    trace = traces / "dip.csv"
    trace.write_text("time_s,hz\n0,50\n1,50\n1.5,49.6\n4,49.7\n6,50\n")
    path = small(tmp_path, frequency={"events": [{"type": "trace", "at_s": 0.5, "file": "traces/dip.csv"}]},
                 services=[{"id": "DR-L", "contracted_mw": 0.05}], network={"profile": "4g"}, fleet__spread_pct=15)
    first = tmp_path / "first"
    assert cli.main(["run", str(path), "--out", str(first), "--seed", "9", "--set", "fleet.groups.0.soc=0.6",
                     "--quiet"]) == 0
    resolved = first / "scenario.resolved.yaml"
    data = yaml.safe_load(resolved.read_text())
    inputs = data["provenance"]["inputs"]
    assert inputs["scenario"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert inputs["frequency.events[0].file"]["sha256"] == hashlib.sha256(trace.read_bytes()).hexdigest()
    assert all(len(h) == 64 for h in data["provenance"]["catalogs"].values())
    assert "sims/data/vehicles.csv" in data["provenance"]["catalogs"]
    prov = data["provenance"]
    assert prov["python"] and prov["platform"] and prov["version"] and "git" in prov
    assert data["seed"] == 9 and data["fleet"]["groups"][0]["soc"] == 0.6
    trace.unlink()  # the rerun reads the copy beside the resolved scenario
    again = tmp_path / "again"
    assert cli.main(["run", str(resolved), "--out", str(again), "--quiet"]) == 0
    assert (again / "verdicts.json").read_bytes() == (first / "verdicts.json").read_bytes()
    rerun = yaml.safe_load((again / "scenario.resolved.yaml").read_text())
    assert rerun["provenance"]["inputs"]["frequency.events[0].file"]["sha256"] == inputs["frequency.events[0].file"]["sha256"]
    # the rerun's copy keeps the file's name: inputs/0-dip.csv, not inputs/0-0-dip.csv
    assert data["frequency"]["events"][0]["file"] == rerun["frequency"]["events"][0]["file"] == "inputs/0-dip.csv"
    assert (again / "inputs" / "0-dip.csv").is_file()


def test_schema_command_matches_the_committed_file_and_validates_every_shipped_scenario(capsys):
    assert cli.main(["schema"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(SCHEMA_FILE.read_text()), "docs/scenario.schema.json is stale: v2g schema --out it"
    validator = jsonschema.Draft202012Validator(printed)
    for path in SCENARIOS:
        assert path.read_text().startswith("# yaml-language-server: $schema=../docs/scenario.schema.json\n"), path
        data = yaml.safe_load(path.read_text())
        assert not list(validator.iter_errors(data)), path
        # a mutated scenario is rejected, where the loader rejects it too
        for mutate in (lambda d: d["fleet"]["groups"][0].update(count=-1),
                       lambda d: d["fleet"].update(grups=[]),
                       lambda d: d.update(duration_s="long"),
                       lambda d: d["services"][0].update(contracted_mw=0)):
            bad = yaml.safe_load(path.read_text())
            mutate(bad)
            assert list(validator.iter_errors(bad)), path
    # every field says what it means, and a dimensioned one its unit
    props = [(name, p) for d in [printed, *printed["$defs"].values()] if d.get("title") != "VehicleModel"
             for name, p in d.get("properties", {}).items()]
    assert all(p.get("description") for _, p in props), [n for n, p in props if not p.get("description")]
    assert printed["$defs"]["FleetGroup"]["properties"]["charger_kw"]["unit"] == "kW"
    assert printed["properties"]["duration_s"]["unit"] == "s"


def test_schema_out_refuses_a_users_file(tmp_path, capsys):
    mine = tmp_path / "notes.json"
    mine.write_text("{}")
    assert cli.main(["schema", "--out", str(mine)]) == 2
    assert "was not written by v2g" in capsys.readouterr().err and mine.read_text() == "{}"
    assert cli.main(["schema", "--out", str(tmp_path / "s.json")]) == 0
    assert cli.main(["schema", "--out", str(tmp_path / "s.json")]) == 0  # its own file: rewritten
    assert json.loads((tmp_path / "s.json").read_text()) == json_schema()


def test_validate_and_check_take_set(tmp_path, capsys):
    path = small(tmp_path)
    assert cli.main(["validate", str(path), "--set", "fleet.groups.0.count=0"]) == 2
    assert "fleet.groups[0].count" in capsys.readouterr().err
    assert cli.main(["validate", str(path), "--set", "fleet.groups.0.count=3"]) == 0
    base = tmp_path / "base.yaml"
    assert cli.main(["check", str(path), "--baseline", str(base), "--update", "--set", "fleet.groups.0.count=3"]) == 0
    assert cli.main(["check", str(path), "--baseline", str(base), "--set", "fleet.groups.0.count=3"]) == 0
    assert cli.main(["check", str(path), "--baseline", str(base), "--set", "services.0.contracted_mw=5"]) == 1
    assert "DC-L" in capsys.readouterr().out


def test_every_argument_has_help():
    parser = cli._parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, command in sub.choices.items():
        for action in command._actions:
            if action.dest != "help":
                assert action.help, f"v2g {name} {action.dest}: no help"


def test_progress_is_a_line_per_tenth_off_a_terminal():
    stream = io.StringIO()
    with Progress("replicates", "runs", stream=stream) as progress:
        for k in range(1, 21):
            progress(k, 20)
    lines = stream.getvalue().splitlines()
    assert lines[-1] == "replicates: 20/20 runs" and len(lines) == 11 and "\r" not in stream.getvalue()
    quiet = io.StringIO()
    Progress("x", quiet=True, stream=quiet)(1, 2)
    assert quiet.getvalue() == ""


def test_fleet_parameters_from_catalog_names_is_the_fleet_a_scenario_builds(tmp_path):
    groups = [{"model": "VW ID.3 Pro", "count": 7, "charger_kw": 10, "bus": "Bus 5", "soc": 0.5},
              {"model": "Nissan Ariya", "count": 4, "charger_kw": 7, "bus": ["Bus 6", "Bus 7"], "placement": "random"}]
    loaded = scenario_module.load(small(tmp_path, fleet__groups=groups, fleet__spread_pct=12))
    loaded.check_grid()
    by_hand = fleet_parameters(groups, seed=loaded.scenario.seed, spread_pct=12, assume_v2g=True)
    assert by_hand == sample_fleet(loaded)
    with pytest.raises(ValueError, match="unknown vehicle model 'Trabant'"):
        fleet_parameters([{"model": "Trabant", "count": 1, "charger_kw": 10, "bus": "x"}])
    with pytest.raises(ValueError, match="Nissan Ariya is not V2G-capable"):
        fleet_parameters([{"model": "Nissan Ariya", "count": 1, "charger_kw": 10, "bus": "x"}])
    assert fleet_parameters([{"model": "Nissan Ariya", "count": 1, "charger_kw": 10, "bus": "x",
                              "bidirectional": False}])["p_min_kw"] == [0.0]
    with pytest.raises(ValueError, match="unknown field 'sco'"):
        fleet_parameters([{"model": "Nissan Ariya", "count": 1, "charger_kw": 10, "bus": "x", "sco": 1}])


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_documented_examples_run(example, tmp_path):
    """Every script under docs/examples runs as the README shows it (the API example on a small scenario:
    each shipped scenario runs once per suite, in test_run.py)."""
    args = [str(small(tmp_path))] if example.stem == "python_api" else []
    result = subprocess.run([sys.executable, str(example), *args], capture_output=True, text=True, cwd=tmp_path,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    if example.stem == "mosaik_world":
        # the hand-built world: the fleet delivers its 1 MW, all of it through the grid's two charging buses
        assert "fleet power at 10 s: -1000.0 kW" in result.stdout
        assert "lowest voltage on the grid: 0.9" in result.stdout
    else:
        assert result.stdout.count("NOT ELIGIBLE") + result.stdout.count("ELIGIBLE") >= 2
        assert "  4g:" in result.stdout or "   4g:" in result.stdout


def test_children_share_their_bus_reference_as_entity_id():
    from v2g_testbed.sims.fleet import FleetSim
    from v2g_testbed.sims.grid import GridSim

    vehicles = fleet_parameters([{"model": "Nissan Ariya", "count": 3, "charger_kw": 10, "bus": ["Bus 5", 6]}],
                                assume_v2g=True)
    fleet = FleetSim()
    fleet.init("F")
    fleet_children = {c["eid"] for c in fleet.create(1, "Fleet", vehicles=vehicles)[0]["children"]}
    grid = GridSim()
    grid.init("G", network="cigre_mv")
    grid_children = {c["eid"] for c in grid.create(1, "Grid", ev_buses=["Bus 5", 6])[0]["children"]}
    assert fleet_children == grid_children == {"Bus 5", "6"}
    with pytest.raises(ValueError, match="milliseconds: start the world with time_resolution=0.001"):
        FleetSim().init("F", time_resolution=1.0)
    assert np.isclose(sum(vehicles["p_max_kw"]), 30)


def test_verdicts_json_has_a_schema_every_shipped_run_meets(shipped, capsys):
    """verdicts.json is defined once (analysis.verdict.RunVerdicts, typed dicts pydantic validates before a run
    writes them); `v2g schema --verdicts` publishes it (docs/verdicts.schema.json) and shipped runs meet it."""
    from v2g_testbed.analysis.verdict import check_verdicts

    assert cli.main(["schema", "--verdicts"]) == 0
    printed = json.loads(capsys.readouterr().out)
    committed = json.loads((ROOT / "docs" / "verdicts.schema.json").read_text())
    assert printed == committed, "docs/verdicts.schema.json is stale: v2g schema --verdicts --out it"
    validator = jsonschema.Draft202012Validator(committed)
    for stem in ("hub-dc-4g", "gb-2019-08-09-dc", "lv-homes-fcrd"):
        _, verdicts = shipped(stem)
        validator.validate(json.loads(json.dumps(verdicts)))
    leaked = json.loads(json.dumps(shipped("hub-dc-4g")[1]))
    leaked["services"][0]["_context"] = {"trace": []}  # private working state must never reach the file
    with pytest.raises(ValueError, match=r"services.0._context: Extra inputs are not permitted"):
        check_verdicts(leaked)
