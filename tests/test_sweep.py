"""`v2g sweep`: local pool and Dask give the same table; a killed sweep resumes."""

import csv
import os
import signal
import subprocess
import time

import pytest
import yaml

from conftest import BASE, ROOT, v2g_cli, console_script
from v2g_testbed.cosim import sweep
from v2g_testbed.cosim.scenario import ScenarioError


def sweep_file(tmp_path, counts=(1, 2), profiles=("local", "5g"), seeds=1):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(dict(BASE, duration_s=4)))
    spec = {"base": "base.yaml", "name": "t", "seeds": seeds,
            "parameters": {"fleet.groups.0.count": list(counts), "network.profile": list(profiles)}}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def table(out):
    with open(out / "results.csv") as f:
        return list(csv.DictReader(f))


def test_expand_grid_zip_and_ranges(tmp_path):
    path = sweep_file(tmp_path, seeds=2)
    runs = sweep.expand(path)["runs"]
    assert len(runs) == 2 * 2 * 2 and len({r["id"] for r in runs}) == 8
    spec = yaml.safe_load(path.read_text())
    spec.update(mode="zip", parameters={"fleet.groups.0.count": {"range": [1, 3, 1]}, "seed": [5, 6, 7]})
    path.write_text(yaml.safe_dump(spec))
    runs = sweep.expand(path)["runs"]
    assert [r["parameters"]["fleet.groups.0.count"] for r in runs[::2]] == [1, 2, 3]
    spec["parameters"]["seed"] = [5]
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(ScenarioError, match="zip mode needs lists of equal length"):
        sweep.expand(path)


def test_local_pool_and_dask_cluster_give_the_same_table(tmp_path):
    from dask.distributed import LocalCluster

    path = sweep_file(tmp_path)
    pool_rows = sweep.sweep(path, tmp_path / "pool", workers=2)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        dask_rows = sweep.sweep(path, tmp_path / "dask", scheduler=cluster.scheduler_address)
    assert len(pool_rows) == 4 and all(r["status"] == "ok" for r in pool_rows)
    assert table(tmp_path / "pool") == table(tmp_path / "dask")
    assert dask_rows == pool_rows
    import pyarrow.parquet as pq

    assert pq.read_table(tmp_path / "dask" / "results.parquet").num_rows == 4
    assert (tmp_path / "pool" / "eligibility.png").stat().st_size > 10_000


def test_killed_sweep_resumes_with_every_run_exactly_once(tmp_path):
    path = sweep_file(tmp_path, counts=(1, 2, 3, 4, 5, 6), profiles=("local", "5g"))  # 12 runs: killed mid-way
    out = tmp_path / "out"
    proc = subprocess.Popen([console_script(), "sweep", str(path), "--out", str(out)],  # the installed script
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(list((out / "runs").glob("*/verdicts.json"))) < 2:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished_before = len(list((out / "runs").glob("*/verdicts.json")))
    assert 2 <= finished_before < 12 and not (out / "results.csv").exists()
    result = v2g_cli("sweep", str(path), "--out", str(out))
    assert result.returncode == 0, result.stderr
    rows = table(out)
    assert sorted(r["run"] for r in rows) == sorted({r["run"] for r in rows}) and len(rows) == 12
    assert all(r["status"] == "ok" for r in rows)
    assert len(list((out / "runs").iterdir())) == 12  # no partial directories left behind


def test_bad_sweep_file_is_bad_input(tmp_path):
    path = sweep_file(tmp_path)
    spec = yaml.safe_load(path.read_text())
    spec["parameters"] = {"fleet.groups.0.count": {"range": [5, 1, 1]}}
    path.write_text(yaml.safe_dump(spec))
    result = v2g_cli("sweep", str(path))
    assert result.returncode == 2 and "parameters.fleet.groups.0.count.range" in result.stderr


def test_a_value_bad_against_the_grid_is_bad_input_before_any_run(tmp_path):
    """A value that only the grid refuses (a bus the network does not have), neither the first nor the last of its
    parameter: exit 2 naming the sweep file, the value and the field, and nothing written."""
    path = sweep_file(tmp_path)
    spec = yaml.safe_load(path.read_text())
    spec["parameters"] = {"fleet.groups.0.bus": ["Bus 5", "Bus 99", "Bus 6"], "fleet.groups.0.count": [1, 2]}
    path.write_text(yaml.safe_dump(spec))
    out = tmp_path / "out"
    result = v2g_cli("sweep", str(path), "--out", str(out))
    assert result.returncode == 2 and not out.exists()
    assert str(path) in result.stderr and 'fleet.groups.0.bus="Bus 99"' in result.stderr
    assert "fleet.groups[0].bus: no bus 'Bus 99'" in result.stderr and len(result.stderr.strip().splitlines()) == 1
