"""``v2g sweep SWEEP.yaml``: one base scenario, parameters to vary, seeds; many runs, one table.

Sweep file::

    base: ../scenarios/hub-dr-4g.yaml     # relative to the sweep file
    name: dr-over-networks                # output: results/sweeps/<name>/ unless --out
    seeds: 3                              # per combination: the base seed, +1, +2 (or a list of seeds)
    mode: grid                            # grid: every combination; zip: the i-th values together
    parameters:                           # dotted paths as for --set
      network.profile: [local, 4g, 5g]
      fleet.groups.0.count: {range: [20, 100, 40]}   # start, stop (inclusive), step

Every run writes its own directory ``runs/<id>/`` (moved into place only once all its files are
written, so a directory that exists is complete). Running the sweep again skips complete runs and
redoes the others. The table ``results.csv`` / ``results.parquet`` has one row per run: its
parameters, seed, status and, per service, the verdict and key times.
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path


from v2g_testbed.cosim.log import LOG
from v2g_testbed.cosim.scenario import ScenarioError


def _values(path: Path, key: str, spec) -> list:
    if isinstance(spec, dict) and set(spec) == {"range"}:
        start, stop, step = spec["range"]
        if step <= 0 or stop < start:
            raise ScenarioError(f"{path}: parameters.{key}.range: need start <= stop and step > 0")
        n = int(round((stop - start) / step)) + 1
        return [start + k * step for k in range(n)]
    if isinstance(spec, list) and spec:
        return spec
    raise ScenarioError(f"{path}: parameters.{key}: expected a non-empty list or {{range: [start, stop, step]}}")


def expand(path: Path) -> dict:
    """Read a sweep file: base scenario path, and the list of runs (id, overrides, seed)."""
    path = Path(path)
    from v2g_testbed.sims.files import read_yaml

    spec = read_yaml(path, "sweep", ScenarioError)
    if not isinstance(spec, dict) or "base" not in spec or "parameters" not in spec:
        raise ScenarioError(f"{path}: (top level): a sweep needs base and parameters")
    unknown = set(spec) - {"base", "name", "seeds", "mode", "parameters"}
    if unknown:
        raise ScenarioError(f"{path}: {sorted(unknown)[0]}: unknown field")
    base = (path.parent / spec["base"]).resolve()
    params = spec["parameters"]
    if not isinstance(params, dict) or not params:
        raise ScenarioError(f"{path}: parameters: expected a mapping of dotted paths to values")
    keys = list(params)
    values = [_values(path, k, params[k]) for k in keys]
    mode = spec.get("mode", "grid")
    if mode == "grid":
        combos = list(itertools.product(*values))
    elif mode == "zip":
        if len({len(v) for v in values}) != 1:
            raise ScenarioError(f"{path}: parameters: zip mode needs lists of equal length")
        combos = list(zip(*values))
    else:
        raise ScenarioError(f"{path}: mode: expected grid or zip, got {mode!r}")
    from v2g_testbed.cosim import scenario

    name = spec.get("name") or path.stem
    if not isinstance(name, str) or not re.fullmatch(scenario.NAME_PATTERN, name) or len(name) > 100:
        raise ScenarioError(f"{path}: name: {name!r} is not a plain name (letters, digits, . _ -; no path "
                            "separators, at most 100 characters): it names the output directory")
    base_seed = scenario.load(base).scenario.seed  # also validates the base scenario
    seeds = spec.get("seeds", 1)
    if isinstance(seeds, bool) or not (isinstance(seeds, int) and 1 <= seeds <= 10_000 or isinstance(seeds, list) and seeds
                                       and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in seeds)):
        raise ScenarioError(f"{path}: seeds: expected a count (1-10000) or a list of seeds >= 0, got {seeds!r}")
    seeds = [base_seed + k for k in range(seeds)] if isinstance(seeds, int) else list(seeds)
    runs = []
    for c, combo in enumerate(combos):
        for seed in seeds:
            overrides = _overrides(keys, combo)
            runs.append({"id": f"r{c:04d}-s{seed}", "parameters": dict(zip(keys, combo)), "seed": seed,
                         "overrides": overrides})
    # bad values fail here (exit 2), before anything runs: every value of every parameter (the others at their
    # first), as the scenario and against its grid, and the first and last runs; a combination that is bad only as
    # a whole (each of its values fine) is a failed row of the table
    checks = {tuple(run["overrides"]): run["seed"] for run in runs[:1] + runs[-1:]}
    for k, key in enumerate(keys):
        for value in values[k]:
            combo = [value if j == k else values[j][0] for j in range(len(keys))]
            checks.setdefault(tuple(_overrides(keys, combo)), seeds[0])
    for overrides, seed in checks.items():
        try:
            scenario.load(base, [*overrides, "outputs.plots=false"], seed).check_grid()
        except ScenarioError as exc:
            raise ScenarioError(f"{path}: parameters ({', '.join(overrides)}): {exc}") from None
    return {"name": name, "base": str(base), "keys": keys, "runs": runs}


def _overrides(keys: list[str], combo) -> list[str]:
    """A combination of parameter values as ``--set`` overrides."""
    return [f"{k}={json.dumps(v)}" for k, v in zip(keys, combo)]


def output_dir(spec: dict, out: Path | None) -> Path:
    """The sweep's output directory, checked (exit 2) before anything runs: it must be new, empty, or a
    sweep's (a rerun resumes it)."""
    from v2g_testbed.cosim.outputs import check_output_dir, inside

    root = Path("results") / "sweeps"
    target = Path(out) if out else inside(root, root / spec["name"], "name")
    return check_output_dir(target, kind="sweep")


def run_one(base: str, run: dict, out_dir: str, code=None) -> dict:
    """Run one sweep point (in a worker process or a Dask worker); return its table row. ``code``: the sweep's
    ``cosim.run.CodeVersion`` (None: read it here)."""
    from v2g_testbed.analysis import regression
    from v2g_testbed.cosim import run as runner
    from v2g_testbed.cosim import scenario

    target = Path(out_dir) / run["id"]
    row = {"run": run["id"], "seed": run["seed"], **{f"param:{k}": v for k, v in run["parameters"].items()}}
    try:
        if not (target / "verdicts.json").is_file():
            loaded = scenario.load(base, run["overrides"] + ["outputs.plots=false"], run["seed"])
            loaded.check_grid()
            runner.run(loaded, target, code=code)
        verdicts = json.loads((target / "verdicts.json").read_text())
        row["status"] = "ok"
        for v in verdicts["services"]:
            sid = v["service"]
            row[f"{sid}:eligible"] = v["eligible"]
            row[f"{sid}:failed"] = ",".join(v["failed"])
            row[f"{sid}:judged_by"] = ",".join(regression.judged_by(v))
            row[f"{sid}:initiation_s"] = v.get("initiation_s")
            row[f"{sid}:full_delivery_s"] = v.get("full_delivery_s")
            row[f"{sid}:delivered_mw"] = v.get("delivered_mw")
    except Exception as exc:  # a failed run is a row, and is redone next time
        row["status"] = f"error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return row


def sweep(path: Path, out: Path | None = None, workers: int = 1, scheduler: str | None = None, progress=None,
          spec: dict | None = None) -> list[dict]:
    from v2g_testbed.cosim.outputs import clean_stale_partials, output_lock, write_marker

    spec = spec or expand(path)
    out = output_dir(spec, out)
    with output_lock(out):
        runs_dir = out / "runs"
        runs_dir.mkdir(parents=True, exist_ok=True)
        write_marker(out, "sweep", planned=["results.csv", "results.parquet", "eligibility.png"])
        clean_stale_partials(runs_dir)  # from a sweep that was killed mid-run
        return _sweep(spec, out, runs_dir, workers, scheduler, progress)


def _sweep(spec, out, runs_dir, workers, scheduler, progress) -> list[dict]:
    total = len(spec["runs"])
    done = failed = 0  # complete runs from an earlier sweep are read back, and counted as they come
    rows = []

    def tick(row):
        nonlocal done, failed
        rows.append(row)
        if row["status"] == "ok":
            done += 1
        else:
            failed += 1
        if progress:
            progress(done, failed, total)

    todo = spec["runs"]
    from v2g_testbed.cosim.run import CodeVersion

    code = CodeVersion.for_runs(on_dask=bool(scheduler))
    if scheduler or workers > 1:
        from v2g_testbed.cosim.pool import executor

        pool, extra, as_completed = executor(workers, scheduler)
        with pool:
            futures = [pool.submit(run_one, spec["base"], r, str(runs_dir), code, **extra) for r in todo]
            for future in as_completed(futures):
                tick(future.result())
    else:
        for r in todo:
            tick(run_one(spec["base"], r, str(runs_dir), code))
    rows.sort(key=lambda row: row["run"])
    write_table(rows, out, spec["keys"])
    return rows


def write_table(rows: list[dict], out: Path, keys: list[str]):
    import csv

    columns = list(dict.fromkeys(c for row in rows for c in row))
    tmp = out / ".results.csv.partial"
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        w.writerows(rows)
    tmp.replace(out / "results.csv")
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pylist([{c: _cell(row.get(c)) for c in columns} for row in rows])
        pq.write_table(table, out / ".results.parquet.partial")
        (out / ".results.parquet.partial").replace(out / "results.parquet")
    except ImportError:
        LOG.warning("pyarrow is not installed: results.parquet not written (pip install pyarrow)")
    plot(rows, out, keys)


def _cell(value):
    return value if value is None or isinstance(value, (bool, int, float)) else str(value)


def plot(rows: list[dict], out: Path, keys: list[str]):
    """Share of seeds eligible against each swept parameter, one line per service."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    services = sorted({c.split(":")[0] for row in rows for c in row if c.endswith(":eligible")})
    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 3.8), squeeze=False)
    for ax, key in zip(axes[0], keys):
        values = list(dict.fromkeys(row[f"param:{key}"] for row in rows))
        for service in services:
            share = []
            for value in values:
                judged = [row[f"{service}:eligible"] for row in rows if row[f"param:{key}"] == value
                          and row.get(f"{service}:eligible") is not None]
                share.append(sum(map(bool, judged)) / len(judged) if judged else float("nan"))
            ax.plot([str(v) for v in values], share, marker="o", label=service)
        ax.set_xlabel(key)
        ax.set_ylabel("share of runs eligible")
        ax.set_ylim(-0.05, 1.05)
        ax.legend(fontsize=8)
    fig.suptitle(f"Eligibility across the sweep ({len(rows)} runs)")
    fig.tight_layout()
    fig.savefig(out / "eligibility.png", dpi=110)
    plt.close(fig)
