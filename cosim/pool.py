"""Worker processes for the studies that spread out (sweeps, replicates, offers, hosting capacity).

Each worker runs with one BLAS thread (``threadpoolctl``): the work is already spread over processes, one per
core, and OpenBLAS's own threads in every process would oversubscribe the cores (two workers on two cores
measured 1.17x the one-process wall of the 546-feeder hosting study with them, against 0.6x without). Dask's
workers do the same by default (``distributed.nanny.pre-spawn-environ``)."""

from __future__ import annotations

_LIMITS = []  # the limiter of this worker process, kept for its lifetime


def _one_blas_thread() -> None:
    from threadpoolctl import threadpool_limits

    _LIMITS.append(threadpool_limits(limits=1))


def process_pool(workers: int):
    """A ``ProcessPoolExecutor`` of ``workers`` processes, each with one BLAS thread."""
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(max_workers=workers, initializer=_one_blas_thread)


def executor(workers: int, scheduler: str | None):
    """Where a study's parts run: a Dask client of ``scheduler`` if given, else ``process_pool(workers)``. Returns
    the executor (a context manager), the keywords its ``submit`` takes (Dask: ``pure=False``, a part is work
    to do, not a value to cache) and its ``as_completed``."""
    if scheduler:
        from dask.distributed import Client, as_completed

        return Client(scheduler), {"pure": False}, as_completed
    from concurrent.futures import as_completed

    return process_pool(workers), {}, as_completed
