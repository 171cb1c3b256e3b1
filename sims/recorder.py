"""Event-based recorder: keeps every input it receives and writes one HDF5 file (h5py) at the end.

Each connected ``(entity, attribute)`` becomes an HDF5 group ``/<entity>/<attribute>`` holding
``time_s`` (float64 seconds) and ``time_ms`` (int64 steps) beside the values, so every series has
its own time axis. Values may be
* numbers: dataset ``value`` of shape (n,);
* equal-length lists of numbers (e.g. one value per vehicle or per bus): ``value`` of shape (n, k), one row
  per step, or several at once as ``{"time_ms": [...], "value": rows}`` (rows taken between two steps);
* tables, dicts of equal-length lists (e.g. the messages delivered this millisecond): one dataset
  per column, one row per entry, and ``time_s``/``time_ms`` per row (a ``time_ms`` column, if the
  table has one, gives each row its own time: batches of samples taken between two steps);
* lists of strings (labels): stored once as ``value``.
The unit is taken from the attribute's name (``p_kw`` -> kW, ``f_hz`` -> Hz, ...) and stored as the
``unit`` attribute of each dataset. Matrices go to the file as they arrive, ROWS_PER_WRITE rows at a time
(chunked, uncompressed; sim param ``dtypes`` stores chosen ones as float32), so a
million vehicles' per-vehicle power never sits in memory; everything else is written by ``finalize``. The
world owner decides where (sim param ``path``). Sim params ``heartbeat_steps`` (default 10) and ``wake_ms``
(default 100): see ``step``.
"""

from __future__ import annotations

import contextlib
import errno as errnos
import os
from collections import defaultdict

import h5py
import mosaik_api_v3
import numpy as np

from v2g_testbed.sims import WakeBound
from v2g_testbed.sims.files import errno_of

META = {
    "api_version": "3.0",
    "type": "event-based",
    "models": {"Recorder": {"public": True, "params": [], "attrs": [], "any_inputs": True}},
}

UNITS = {"kw": "kW", "kwh": "kWh", "hz": "Hz", "pu": "pu", "pct": "%", "ms": "ms", "s": "s", "mw": "MW"}


def unit_of(name: str) -> str:
    """A unit from an attribute's name (``p_kw`` -> kW), for outputs the world did not name (sim param ``units``)."""
    suffix = name.rsplit("_", 1)[-1]
    return UNITS.get(suffix, "1")


ROWS_PER_WRITE = 64  # matrix rows buffered before they go to the file
# HDF5 does not survive a full disk: after a failed write, closing the file (or the interpreter's exit) can
# crash the process (SIGSEGV, seen with h5py 3 / HDF5 1.14 on an 8 KiB tmpfs). So the recorder stops *before*
# a write the disk has no room for: free space must exceed what it is about to write plus this margin (HDF5's
# metadata and the chunk cache, 1 MiB a dataset, flushed at close).
SPACE_MARGIN_BYTES = 16 << 20
CHUNK_ROWS = 16      # rows per HDF5 chunk


class RecorderSim(mosaik_api_v3.Simulator):
    def __init__(self):
        super().__init__(META)
        self.series: dict[tuple[str, str], list] = defaultdict(list)
        self.matrices: dict[tuple[str, str], dict] = {}
        self.h5 = None
        self.failed = False  # a write failed (disk full, ...): the file is closed and nothing more is written

    def init(self, sid, time_resolution=0.001, path="timeseries.h5", heartbeat_steps=10, dtypes=None, units=None,
             wake_ms=100):
        """``dtypes``: ``{"entity/attr": "float32"}`` for matrices stored at less than double precision; ``units``:
        ``{"entity/attr": "kW"}``, each output's unit as the run record defines it (else from its name)."""
        self.units = dict(units or {})
        self.time_resolution = time_resolution
        self.path = path
        self.heartbeat = int(heartbeat_steps)
        self.wake_bound = WakeBound(wake_ms)
        self.dtypes = dict(dtypes or {})
        return self.meta

    def create(self, num, model):
        if num != 1:
            raise ValueError("RecorderSim creates one Recorder entity")
        return [{"eid": "recorder", "type": model}]

    def step(self, time, inputs, max_advance):
        for attrs in inputs.values():
            for attr, sources in attrs.items():
                for src, value in sources.items():
                    if value is None:
                        continue
                    key = (src.split(".", 1)[-1], attr)
                    if isinstance(value, dict) and "time_ms" in value and _is_block(value.get("value")):
                        for t, row in zip(value["time_ms"], value["value"]):  # rows taken between two steps
                            self._append_row(key, int(t), row)
                    elif key in self.matrices or (key not in self.series and _is_row(value)):
                        self._append_row(key, time, value)
                    else:
                        self.series[key].append((time, value))
        # mosaik 3.6: an event-based simulator with no step of its own waits for the end of the
        # simulation, and each such wait leaves a future behind that every later progress update
        # scans; woken often, the recorder made the whole run quadratic in its number of steps.
        # A self-scheduled heartbeat keeps those waits short-lived, and a step sooner when woken often
        # (WakeBound) keeps those between two heartbeats few.
        # (aligned to multiples, so steps triggered at odd times do not start chains of their own)
        return self.wake_bound.next_step(time, (time // self.heartbeat + 1) * self.heartbeat if self.heartbeat else None)

    # -- matrices (one value per vehicle, bus, line: a row per step) go to the file as they come ---------
    def _room_for(self, nbytes: int):
        """OSError(ENOSPC) now if the disk has no room for ``nbytes`` more and what closing the file needs."""
        import shutil

        try:
            free = shutil.disk_usage(os.path.dirname(os.path.abspath(self.path))).free
        except OSError:
            return
        needed = nbytes + SPACE_MARGIN_BYTES + (1 << 20) * len(self.matrices)
        if free < needed:
            raise OSError(errnos.ENOSPC, f"{os.strerror(errnos.ENOSPC)} ({free / 2**20:.1f} MiB free, the record "
                          f"needs {needed / 2**20:.1f} MiB more)", self.path)

    def _file(self):
        if self.h5 is None:
            self._room_for(0)
            self.h5 = h5py.File(self.path, "w")
            self.h5.attrs["time_resolution_s"] = self.time_resolution
        return self.h5

    def _append_row(self, key, time, value):
        m = self.matrices.get(key)
        if m is None:
            dtype = np.dtype(self.dtypes.get("/".join(key), "float64"))
            # rows are copied straight into a preallocated block, written when full
            m = self.matrices[key] = {"rows": np.empty((ROWS_PER_WRITE, len(value)), dtype=dtype), "n": 0,
                                      "times": [], "written": 0, "dtype": dtype}
        m["rows"][m["n"]] = value
        m["n"] += 1
        m["times"].append(time)
        if m["n"] == ROWS_PER_WRITE:
            with self._writing():
                self._flush(key)

    @contextlib.contextmanager
    def _writing(self):
        """A failed write (disk full, a read-only or vanished file system) closes the file at once and raises
        one OSError naming the file and the operating system's cause. Left open, HDF5's objects would be
        freed in any order at interpreter exit, after failed writes: that crashed the interpreter (SIGSEGV)."""
        try:
            yield
        except Exception as exc:
            self._abandon()
            raise _os_error(exc, self.path) from None

    def _abandon(self):
        self.failed = True
        h5, self.h5 = self.h5, None
        self.matrices.clear()
        if h5 is not None:
            with contextlib.suppress(Exception):
                h5.close()

    def _flush(self, key):
        m = self.matrices[key]
        if not m["n"]:
            return
        rows, times = m["rows"][:m["n"]], np.asarray(m["times"], dtype=np.int64)
        self._room_for(rows.nbytes + times.nbytes)
        m["n"], m["times"] = 0, []
        h5 = self._file()
        entity, attr = key
        if m["written"] == 0:
            group = h5.create_group(f"{entity}/{attr}")
            cols = rows.shape[1]
            # chunks of 16 rows, as wide as 32 MB allows: whole rows per chunk wrote 3x faster than narrow
            # chunks (measured), and readers take rows (a moment) or blocks of 16 (v2g_testbed.analysis.timeseries)
            group.create_dataset("value", shape=(0, cols), maxshape=(None, cols), dtype=m["dtype"],
                                 chunks=(CHUNK_ROWS, max(1, min(cols, (32 << 20) // (CHUNK_ROWS * m["dtype"].itemsize)))),
                                 # uncompressed: lzf would shrink the power matrix ~9x but triple the time
                                 # the run spends writing it (measured, benchmarks/bench_scale.py)
                                 ).attrs["unit"] = self._unit(entity, attr)
            group.create_dataset("time_ms", shape=(0,), maxshape=(None,), dtype=np.int64, chunks=(4096,))
        group = h5[f"{entity}/{attr}"]
        n = m["written"]
        for name, data in (("value", rows), ("time_ms", times)):
            group[name].resize(n + len(times), axis=0)
            group[name][n:] = data
        m["written"] = n + len(times)

    def finalize(self):
        self.write()

    def write(self):
        """Flush the matrices and write everything else into the file (sim param ``path``), and close it."""
        if self.failed:
            return
        with self._writing():
            self._write_all()

    def _write_all(self):
        pending = sum(m["n"] * m["rows"].shape[1] * m["rows"].itemsize for m in self.matrices.values())
        self._room_for(pending + 32 * sum(len(s) for s in self.series.values()))  # ~32 bytes a sample, generous
        h5 = self._file()
        try:
            for key in self.matrices:
                self._flush(key)
                group = h5["/".join(key)]
                group.create_dataset("time_s", data=group["time_ms"][:] * self.time_resolution).attrs["unit"] = "s"
            for (entity, attr), samples in sorted(self.series.items()):
                group = h5.create_group(f"{entity}/{attr}")
                self._write_series(group, entity, attr, samples)
        finally:
            h5.close()
            self.h5 = None

    def _unit(self, entity: str, attr: str) -> str:
        return self.units.get(f"{entity}/{attr}") or unit_of(attr)

    def _write_series(self, group, entity, attr, samples):
        times = np.array([t for t, _ in samples], dtype=np.int64)
        first = samples[0][1]
        if isinstance(first, list) and first and isinstance(first[0], str):
            group.create_dataset("value", data=np.array(first, dtype=h5py.string_dtype()))
            return
        if isinstance(first, dict):
            if "time_ms" in first:  # a batch of timed samples: their own times, not the step's
                row_times = np.concatenate([np.asarray(v["time_ms"], dtype=np.int64) for _, v in samples])
            else:
                rows = [len(next(iter(v.values()))) if v else 0 for _, v in samples]
                row_times = np.repeat(times, rows)
            self._time(group, row_times)
            for column in (c for c in first if c != "time_ms"):
                data = np.concatenate([np.asarray(v[column]) for _, v in samples if v])
                if data.dtype.kind == "U":
                    data = data.astype(h5py.string_dtype())
                group.create_dataset(column, data=data).attrs["unit"] = (self._unit(entity, attr) if column == "value"
                                                                         else unit_of(column))
            return
        self._time(group, times)
        values = np.array([v for _, v in samples], dtype=float)
        group.create_dataset("value", data=values).attrs["unit"] = self._unit(entity, attr)

    def _time(self, group, times_ms):
        group.create_dataset("time_ms", data=times_ms)
        group.create_dataset("time_s", data=times_ms * self.time_resolution).attrs["unit"] = "s"


def _os_error(exc: Exception, path: str) -> Exception:
    """h5py's error as the OSError it stands for (HDF5 puts the operating system's errno in its message)."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return exc
    code = errno_of(exc)
    if code in errnos.errorcode:
        return OSError(code, os.strerror(code), path)
    return exc


def _is_block(value) -> bool:
    """Several matrix rows at once (rows x columns of numbers)."""
    if isinstance(value, np.ndarray):
        return value.ndim == 2
    return isinstance(value, list) and bool(value) and _is_row(value[0])


def _is_row(value) -> bool:
    """A list or array of numbers: one value per vehicle, bus or line (a matrix row), not labels or a table."""
    if isinstance(value, np.ndarray):
        return value.ndim == 1 and value.dtype.kind in "fiub"
    return isinstance(value, list) and bool(value) and not isinstance(value[0], str) and \
        isinstance(value[0], (int, float, np.number)) and not isinstance(value[0], bool)


if __name__ == "__main__":
    mosaik_api_v3.start_simulation(RecorderSim(), "v2g-testbed HDF5 recorder")
