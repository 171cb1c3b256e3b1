import contextlib
import copy
import io
import os
import shutil
import sys
from pathlib import Path
from typing import NamedTuple

import pytest
import yaml

from v2g_testbed.cosim import run as runner
from v2g_testbed.cosim import scenario

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))

BASE = {
    "name": "test",
    "seed": 1,
    "duration_s": 8,
    "grid": {"network": "cigre_mv", "step_s": 1.0, "base_load_scale": 0.6},
    "fleet": {"assume_v2g": True, "groups": [{"model": "VW ID.3 Pro", "count": 1, "charger_kw": 10, "bus": "Bus 5"}]},
    "network": {"profile": "local"},
    "frequency": {"events": [{"type": "step", "at_s": 1, "to_hz": 49.5}]},
    "services": [{"id": "DC-L", "contracted_mw": 0.01}],
    "outputs": {"sample_ms": 10, "vehicle_sample_ms": 10, "plots": False},
}


def make_scenario(tmp_path, **changes):
    data = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        node = data
        keys = dotted.split("__")
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value
    path = tmp_path / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def run_file(path, out, overrides=(), seed=None):
    loaded = scenario.load(path, list(overrides), seed)
    verdicts = runner.run(loaded, out)
    return verdicts


def vehicle_power(out):
    from v2g_testbed.analysis.timeseries import RunRecord

    with RunRecord.open(out / "timeseries.h5") as rec:
        power = rec.series("vehicle_power")
    return power.time_ms, power.value


_SHIPPED: dict = {}


@pytest.fixture(scope="session")
def shipped(tmp_path_factory):
    """``shipped(stem)`` -> (output directory, verdicts) of a shipped scenario, run once per suite (plots drawn)
    and shared by every test that reads it."""
    def get(stem: str):
        if stem not in _SHIPPED:
            out = tmp_path_factory.mktemp("shipped") / stem
            _SHIPPED[stem] = (out, run_file(ROOT / "scenarios" / f"{stem}.yaml", out, ["outputs.plots=true"]))
        return _SHIPPED[stem]
    return get


@pytest.fixture
def scenario_file(tmp_path):
    return lambda **changes: make_scenario(tmp_path, **changes)


class Done(NamedTuple):
    returncode: int
    stdout: str
    stderr: str


def v2g_cli(*args, cwd=ROOT) -> Done:
    """The command line in this process (what the `v2g` script calls), its output captured: a CLI test costs
    the command, not a fresh interpreter. `test_cli.py::test_console_script_runs_every_command` proves the
    installed script itself."""
    from v2g_testbed.cosim import cli

    out, err, old = io.StringIO(), io.StringIO(), os.getcwd()
    try:
        os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main([str(a) for a in args])
    finally:
        os.chdir(old)
    return Done(code, out.getvalue(), err.getvalue())


def console_script() -> str:
    """The installed `v2g` script of this interpreter's environment."""
    found = Path(sys.executable).with_name("v2g" + (".exe" if os.name == "nt" else ""))
    return str(found) if found.exists() else shutil.which("v2g")


def v2g(capsys, *args, cwd=None):
    """The CLI in-process with pytest's capture: (exit code, stdout, stderr)."""
    from v2g_testbed.cosim import cli

    old = os.getcwd()
    try:
        if cwd:
            os.chdir(cwd)
        code = cli.main([str(a) for a in args])
    finally:
        os.chdir(old)
    out = capsys.readouterr()
    return code, out.out, out.err


def one_error_line(err: str, *words) -> str:
    """The one error line of a refusal (warnings aside), with no traceback and every word in it."""
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith("warning:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err, err
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]
