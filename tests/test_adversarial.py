"""The adversarial corpus (issue 25): what an adversarial tester found, kept as cases with the exit code and
the state of the files each must leave. Exit 2: bad input, before any work; exit 1: the machine failed us
(disk full, read-only, permission), one line naming the path and the cause, nothing partial left; never a
traceback, never a user's file lost.

Most cases call the CLI in-process (what the `v2g` script runs). A small or read-only file system is a real
tmpfs where the suite runs as root (CI does), else the same condition injected (a disk with no room, a folder
without write permission): the case runs either way."""

import contextlib
import os
import stat
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, console_script, make_scenario, one_error_line, v2g
from v2g_testbed.cosim.outputs import MARKER, read_manifest, write_marker






def files(path: Path) -> dict:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture
def scenario(tmp_path):
    return make_scenario(tmp_path, duration_s=2)


# -- file systems that fail us -----------------------------------------------------------------------------
@contextlib.contextmanager
def _tmpfs(size: str, read_only: bool = False):
    where = Path(f"/tmp/v2g-tmpfs-{uuid.uuid4().hex[:8]}")
    where.mkdir()
    opts = f"size={size}" + (",ro" if read_only else "")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(where)], capture_output=True)
    if done.returncode:
        where.rmdir()
        yield None
        return
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], capture_output=True)
        where.rmdir()


@pytest.fixture
def full_disk(tmp_path, monkeypatch):
    """A folder on a disk with (almost) no room: an 8 KiB tmpfs as root, else a disk that reports no room."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        with _tmpfs("8k") as where:
            if where is not None:
                yield where
                return
    import shutil

    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=4096))
    yield tmp_path / "disk"


@pytest.fixture
def read_only(tmp_path):
    """A folder nothing can be written in: a read-only tmpfs as root, else a folder without write permission."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        with _tmpfs("64k", read_only=True) as where:
            if where is not None:
                yield where
                return
        pytest.fail("running as root, but no tmpfs could be mounted")  # root ignores permission bits
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    yield folder
    folder.chmod(stat.S_IRWXU)


# -- lost data --------------------------------------------------------------------------------------------
def test_a_note_written_into_a_results_folder_is_never_deleted(tmp_path, scenario, capsys):
    out = tmp_path / "res1"
    assert v2g(capsys, "run", scenario, "--out", out, "--quiet")[0] == 0
    (out / "my-notes.md").write_text("x")
    (out / "plots").mkdir()
    (out / "plots" / "mine.png").write_bytes(b"png")
    before = files(out)
    code, _, err = v2g(capsys, "run", scenario, "--out", out, "--quiet")
    assert code == 2
    one_error_line(err, "my-notes.md", "plots/mine.png", "did not write")
    assert files(out) == before


def test_what_the_tool_adds_later_joins_the_manifest_and_a_rerun_keeps_a_nested_study(tmp_path, scenario, capsys):
    out = tmp_path / "res"
    assert v2g(capsys, "run", scenario, "--out", out, "--quiet")[0] == 0
    assert v2g(capsys, "report", out)[0] == 0  # report.html and the plots drawn for it
    listed = set(read_manifest(out)["files"])
    assert {"report.html", "verdicts.json", "timeseries.h5"} <= listed and any(f.endswith(".png") for f in listed)
    assert v2g(capsys, "hosting-capacity", scenario, "--placements", "1", "--max-chargers", "20",
               "--out", out / "hosting-capacity", "--quiet")[0] == 0
    assert v2g(capsys, "run", scenario, "--out", out, "--quiet")[0] == 0  # all of it ours: replaced
    assert (out / "hosting-capacity" / "hosting_capacity.json").is_file()  # the nested study kept


@pytest.mark.parametrize("first, second", [("sweep", "run"), ("run", "replicates"), ("hosting-capacity", "run")])
def test_a_result_of_one_kind_is_never_replaced_by_another(tmp_path, scenario, capsys, first, second):
    out = tmp_path / "K"
    out.mkdir()
    (out / "results.csv").write_text("run,status\n")
    write_marker(out, first)
    before = files(out)
    argv = {"run": ["run", scenario, "--out", out], "replicates": ["run", scenario, "--replicates", "2", "--out", out]}
    code, _, err = v2g(capsys, *argv[second], "--quiet")
    assert code == 2
    one_error_line(err, "never replaces")
    assert files(out) == before


def test_a_sweep_never_replaces_a_run(tmp_path, scenario, capsys):
    out = tmp_path / "R"
    assert v2g(capsys, "run", scenario, "--out", out, "--quiet")[0] == 0
    sweep = tmp_path / "s.yaml"
    sweep.write_text(yaml.safe_dump({"base": scenario.name, "parameters": {"network.profile": ["local"]}}))
    before = files(out)
    code, _, err = v2g(capsys, "sweep", sweep, "--out", out, "--quiet")
    assert code == 2
    one_error_line(err, "a run", "never replaces")
    assert files(out) == before


def test_out_at_a_symbolic_link_writes_where_it_points_and_leaves_nothing_behind(tmp_path, scenario, capsys):
    target = tmp_path / "real"
    target.mkdir()
    link = tmp_path / "link3"
    link.symlink_to(target, target_is_directory=True)
    for _ in range(2):  # the first run, and a rerun replacing its result
        assert v2g(capsys, "run", scenario, "--out", link, "--quiet")[0] == 0
        assert link.is_symlink() and (target / "verdicts.json").is_file()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["link3", "real", scenario.name]
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    code, _, err = v2g(capsys, "run", scenario, "--out", dangling, "--quiet")
    assert code == 2 and "does not exist" in one_error_line(err)


def test_results_folders_follow_the_umask(tmp_path, scenario, capsys):
    old = os.umask(0o022)
    try:
        assert v2g(capsys, "run", scenario, "--out", tmp_path / "shared", "--quiet")[0] == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "shared").stat().st_mode) == 0o755  # colleagues can read it


# -- the machine fails us: exit 1, one line, nothing partial ----------------------------------------------
def test_a_full_disk_is_one_line_exit_1_and_leaves_nothing(full_disk, scenario, capsys):
    out = full_disk / "r"
    code, _, err = v2g(capsys, "run", scenario, "--out", out, "--quiet")
    assert code == 1
    one_error_line(err, "No space left on device", str(out))
    assert not out.exists() and not [p for p in full_disk.glob(".*")] if full_disk.exists() else True


def test_a_report_on_a_full_disk_leaves_no_empty_file(tmp_path, full_disk, scenario, capsys):
    run = tmp_path / "run"
    assert v2g(capsys, "run", scenario, "--out", run, "--quiet", "--plots")[0] == 0
    full_disk.mkdir(exist_ok=True)
    code, _, err = v2g(capsys, "report", run, "--out", full_disk / "r.html")
    if code == 0:  # an injected full disk is only seen by the recorder: a report this small still fits
        assert (full_disk / "r.html").stat().st_size > 0
        return
    assert code == 1
    one_error_line(err, "No space left on device", "r.html")
    assert list(full_disk.iterdir()) == []


def test_read_only_and_forbidden_folders_fail_before_the_run(read_only, scenario, capsys):
    for argv in (["run", scenario, "--out", read_only / "r"],
                 ["check", scenario, "--baseline", read_only / "b.yaml", "--update"]):
        code, _, err = v2g(capsys, *argv, "--quiet") if argv[0] == "run" else v2g(capsys, *argv)
        assert code == 1, err
        line = one_error_line(err, str(read_only))
        assert "read-only file system" in line or "permission denied" in line
        assert "checking" not in err and "running" not in err  # before any scenario ran


# -- v2g check: the whole baseline and every output checked before any scenario runs ------------------------
@pytest.mark.parametrize("text, words", [
    ("scenarios: 5\n", "scenarios"),
    ("scenarios: null\n", "scenarios"),
    ("scenarios: {mini: hello}\n", "scenarios.mini"),
    ("scenarios: {mini: {seed: 1, services: {DC-L: {}}}}\n", "scenarios.mini.services.DC-L"),
    ("tolerances: [1]\nscenarios: {}\n", "tolerances"),
    ("tolerances: {time_s: fast}\nscenarios: {}\n", "tolerances.time_s"),
    ("tolerances: {time_s: -1}\nscenarios: {}\n", "tolerances"),
    ("shopping: [milk]\n", "no `scenarios`"),
])
def test_a_malformed_baseline_is_exit_2_before_any_run(tmp_path, scenario, capsys, text, words):
    baseline = tmp_path / "b.yaml"
    baseline.write_text(text)
    code, _, err = v2g(capsys, "check", scenario, "--baseline", baseline)
    assert code == 2
    one_error_line(err, "not a v2g check baseline", words)
    assert baseline.read_text() == text


@pytest.mark.parametrize("content", [bytes(range(256)), "scenarios: {caf\xe9: {}}\n".encode("latin-1"), None])
def test_a_binary_latin1_or_directory_baseline_is_exit_2(tmp_path, scenario, capsys, content):
    baseline = tmp_path / "b.yaml"
    if content is None:
        baseline.mkdir()
    else:
        baseline.write_bytes(content)
    code, _, err = v2g(capsys, "check", scenario, "--baseline", baseline)
    assert code == 2
    one_error_line(err, str(baseline))


def test_a_baseline_without_tolerances_uses_the_defaults(tmp_path, scenario, capsys):
    baseline = tmp_path / "b.yaml"
    baseline.write_text("scenarios: {}\n")
    code, out, err = v2g(capsys, "check", scenario, "--baseline", baseline)
    assert code == 1 and "not in baseline" in out and "Traceback" not in err  # a change, not a crash


def test_junit_under_a_missing_folder_is_exit_2_before_any_run(tmp_path, scenario, capsys):
    code, _, err = v2g(capsys, "check", scenario, "--baseline", tmp_path / "b.yaml", "--update",
                       "--junit", tmp_path / "no" / "such" / "j.xml")
    assert code == 2
    one_error_line(err, "does not exist")
    assert "checking" not in err and not (tmp_path / "b.yaml").exists()


# -- inputs ------------------------------------------------------------------------------------------------
def _bad_file(tmp_path, content: bytes) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    return path


@pytest.mark.parametrize("make, words", [
    (lambda t: _bad_file(t, os.urandom(0) + bytes(range(128, 256)) * 20), "not UTF-8"),
    (lambda t: _bad_file(t, "name: caf\xe9\n".encode("latin-1")), "not UTF-8"),
    (lambda t: _bad_file(t, b"name: " + b"[" * 5000 + b"]" * 5000 + b"\n"), "nested too deeply"),
    (lambda t: _bad_file(t, b"seed: 1\nseed: 2\n"), "given twice"),
    (lambda t: Path("/dev/zero"), "not a regular file"),
    (lambda t: t, "is a directory"),
])
def test_unreadable_scenarios_are_exit_2(tmp_path, capsys, make, words):
    path = make(tmp_path)
    for command in (["validate", path], ["run", path, "--out", tmp_path / "out"]):
        code, _, err = v2g(capsys, *command)
        assert code == 2, err
        one_error_line(err, words)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("override, words", [
    ("fleet.groups.0.count=true", "fleet.groups[0].count: expected a number"),
    ("duration_s=true", "duration_s: expected a number"),
    ("frequency.events.0.to_hz=true", "frequency.events[0].to_hz"),
    ("fleet.groups.0.count=" + "9" * 5000, "more digits"),
    ("name=" + "[" * 5000 + "]" * 5000, "nested too deeply"),
    ("a" + ".b" * 5000 + "=1", "unknown field `a`"),
])
def test_bad_overrides_are_exit_2(scenario, tmp_path, capsys, override, words):
    code, _, err = v2g(capsys, "run", scenario, "--set", override, "--out", tmp_path / "out")
    assert code == 2
    one_error_line(err, words)


@pytest.mark.parametrize("argv, words", [
    (["hosting-capacity", "S", "--placements", "99999999999999999999"], "--placements"),
    (["hosting-capacity", "S", "--max-chargers", "0"], "--max-chargers"),
    (["screen", "--charger-kw", "nan"], "--charger-kw"),
    (["screen", "--charger-kw", "inf"], "--charger-kw"),
    (["run", "S", "--replicates", "1e9"], "--replicates"),
    (["run", "S", "--seed", "-1"], "--seed"),
    (["run", "S", "--nonsense"], "unrecognized arguments"),
    (["run", "S", "--replicates", "2", "--scheduler", ""], "--scheduler"),  # an unset "$ADDR": not a local run
    (["hosting-capacity", "S", "--scheduler", "  "], "--scheduler"),
])
def test_numeric_flags_are_finite_and_bounded(scenario, capsys, argv, words):
    code, _, err = v2g(capsys, *[scenario if a == "S" else a for a in argv])
    assert code == 2
    one_error_line(err, words)


def test_an_out_name_too_long_is_exit_2(scenario, tmp_path, capsys):
    code, _, err = v2g(capsys, "run", scenario, "--out", tmp_path / ("x" * 300))
    assert code == 2
    one_error_line(err, "300 characters")


@pytest.mark.parametrize("content, words", [("model: [1, 2]\n", "the header lacks"),
                                            ("model,battery_kwh,t_a_s,t_b_s,t_c_s,t_d_s,ramp_up_kw_per_s,"
                                             "ramp_down_kw_per_s\n", "no vehicle rows")])
def test_a_vehicles_file_that_adds_nothing_is_exit_2(tmp_path, capsys, content, words):
    path = tmp_path / "cars.csv"
    path.write_text(content)
    code, _, err = v2g(capsys, "catalog", "vehicles", "--vehicles-file", path)
    assert code == 2
    one_error_line(err, words)


def test_a_fleet_larger_than_the_machine_is_refused_with_the_estimate(scenario, capsys, monkeypatch):
    from v2g_testbed.cosim.scenario import loaded

    monkeypatch.setattr(loaded, "machine_memory_gb", lambda: 8.0)
    code, _, err = v2g(capsys, "validate", scenario, "--set", "fleet.groups.0.count=10000000")
    assert code == 2
    one_error_line(err, "10,000,000 vehicles need about", "GB", "more memory than this machine has (8.0 GB)")
    monkeypatch.setattr(loaded, "machine_memory_gb", lambda: 40.0)
    code, _, err = v2g(capsys, "validate", scenario, "--set", "fleet.groups.0.count=10000000")
    assert code == 0 and "most of this machine's 40.0 GB" in err


def test_the_api_checks_its_counts(scenario):
    from v2g_testbed.cosim import ScenarioError, hosting_capacity

    for bad in ("5", 5.0, True, 0, 10**9):
        with pytest.raises(ScenarioError, match="placements: expected a whole number"):
            hosting_capacity(scenario, placements=bad)


def test_a_reader_that_goes_away_is_a_quiet_exit(tmp_path):
    done = subprocess.run(f"'{console_script()}' catalog | head -1", shell=True, capture_output=True, text=True,
                          cwd=tmp_path)
    assert done.stdout.startswith("Vehicles") and done.stderr == ""


def test_shipped_scenarios_still_validate(capsys):
    code, _, err = v2g(capsys, "validate", *sorted((ROOT / "scenarios").glob("*.yaml")))
    assert code == 0, err


def test_a_manifest_lists_exactly_what_a_run_wrote(tmp_path, scenario, capsys):
    out = tmp_path / "m"
    assert v2g(capsys, "run", scenario, "--out", out, "--quiet")[0] == 0
    manifest = read_manifest(out)
    assert manifest["what"] == "run"
    assert set(manifest["files"]) == {str(p.relative_to(out).as_posix()) for p in out.rglob("*")
                                      if p.is_file() and p.name != MARKER}
