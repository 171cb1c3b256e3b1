"""Simulators as separate processes (mosaik `cmd`) or listening servers (mosaik `connect`)."""

import socket
import subprocess
import sys
import time

import pytest

from conftest import ROOT, run_file


def test_separate_processes_give_byte_identical_verdicts(scenario_file, tmp_path):
    path = scenario_file(fleet__groups=[{"model": "Nissan Ariya", "count": 20, "charger_kw": 10, "bus": "Bus 5"}],
                         fleet__spread_pct=10, network={"profile": "4g"})
    run_file(path, tmp_path / "in")
    # a loaded machine starts a process slowly: room enough that only a broken start fails (default 10 s)
    run_file(path, tmp_path / "out", overrides=["execution.separate_processes=[fleet, grid, network]",
                                                "execution.init_timeout_s=600"])
    assert (tmp_path / "in" / "verdicts.json").read_bytes() == (tmp_path / "out" / "verdicts.json").read_bytes()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_connect_to_a_simulator_already_listening(scenario_file, tmp_path):
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "v2g_testbed.sims.grid", "-r", f"127.0.0.1:{port}"], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        # wait for it to listen (a probing connection would be taken for mosaik's own)
        deadline = time.time() + 60
        while time.time() < deadline and "awaits connection" not in server.stderr.readline():
            pass
        path = scenario_file()
        run_file(path, tmp_path / "in")
        run_file(path, tmp_path / "remote", overrides=[f"execution.connect={{grid: '127.0.0.1:{port}'}}",
                                                       "execution.init_timeout_s=600"])
    finally:
        server.kill()
        server.wait()
    assert (tmp_path / "in" / "verdicts.json").read_bytes() == (tmp_path / "remote" / "verdicts.json").read_bytes()


def test_bad_address_is_a_one_line_error(scenario_file):
    from v2g_testbed.cosim.scenario import ScenarioError, load

    with pytest.raises(ScenarioError, match=r"execution.connect.*expected host:port"):
        load(scenario_file(execution={"connect": {"grid": "nowhere"}}))
