"""`v2g check`: regression of verdicts against a committed baseline."""

from pathlib import Path

import yaml

from conftest import BASE, ROOT, SCENARIOS, v2g_cli

BASELINE = ROOT / "tests" / "verdicts_baseline.yaml"


v2g = v2g_cli  # in-process (test_cli.py proves the console script)


# Every shipped scenario is held against the baseline once, in test_run.py (each runs once per suite); here
# the command itself, on two of them.
CHECKED = [p for p in SCENARIOS if p.stem in ("hub-dc-local", "hub-dr-local-fast")]


def test_shipped_scenarios_match_the_committed_baseline(tmp_path):
    result = v2g("check", *CHECKED, "--baseline", BASELINE, "--junit", tmp_path / "junit.xml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no change" in result.stdout
    assert (tmp_path / "junit.xml").read_text().count("<testcase") == len(CHECKED)


def _scenario_with_own_catalog(tmp_path: Path, t_a_s: float) -> Path:
    (tmp_path / "cars.csv").write_text(
        "model,battery_kwh,t_a_s,t_b_s,t_c_s,t_d_s,ramp_up_kw_per_s,ramp_down_kw_per_s\n"
        f"Quick Car,60,{t_a_s},1.0,0.05,0.1,40,100\n")
    data = dict(BASE, name="own-catalog", fleet={
        "catalogs": ["cars.csv"], "telemetry_hz": 20,
        "groups": [{"model": "Quick Car", "count": 100, "charger_kw": 10, "bus": "Bus 5"}]},
        services=[{"id": "DC-L", "contracted_mw": 1.0}], outputs={"plots": False})
    path = tmp_path / "own.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_changing_one_catalog_number_flips_the_verdict_and_update_accepts_it(tmp_path):
    scenario = _scenario_with_own_catalog(tmp_path, t_a_s=0.2)
    baseline = tmp_path / "baseline.yaml"
    assert v2g("check", scenario, "--baseline", baseline, "--update").returncode == 0
    assert v2g("check", scenario, "--baseline", baseline).returncode == 0
    _scenario_with_own_catalog(tmp_path, t_a_s=0.6)  # the start delay now misses DC's 0.5 s
    changed = v2g("check", scenario, "--baseline", baseline, "--junit", tmp_path / "j.xml")
    assert changed.returncode == 1, changed.stdout + changed.stderr
    assert "own-catalog / DC-L / eligible: True -> False" in changed.stdout
    assert "own-catalog / DC-L / failed:" in changed.stdout and "initiation" in changed.stdout
    assert '<failure message="own-catalog / DC-L / eligible: True -&gt; False' in (tmp_path / "j.xml").read_text()
    assert v2g("check", scenario, "--baseline", baseline, "--update").returncode == 0
    assert v2g("check", scenario, "--baseline", baseline).returncode == 0


def test_bad_baseline_or_missing_one_is_bad_input(tmp_path):
    scenario = _scenario_with_own_catalog(tmp_path, 0.2)
    missing = v2g("check", scenario, "--baseline", tmp_path / "none.yaml")
    assert missing.returncode == 2 and "no such baseline" in missing.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("tolerances: {time_s: fast}\n")
    result = v2g("check", scenario, "--baseline", bad)
    assert result.returncode == 2 and "not a v2g check baseline" in result.stderr


def test_scenario_missing_from_the_baseline_is_a_change(tmp_path):
    scenario = _scenario_with_own_catalog(tmp_path, 0.2)
    baseline = tmp_path / "b.yaml"
    baseline.write_text("tolerances: {time_s: 0.02, power_mw: 0.005}\nscenarios: {}\n")
    result = v2g("check", scenario, "--baseline", baseline)
    assert result.returncode == 1 and "not in baseline" in result.stdout
