"""Progress of long work: a tqdm bar on a terminal, a plain line per step elsewhere (log files, CI).

tqdm is the maintained library mosaik itself uses for its progress bar; off a terminal its carriage
returns would run together in a log, so there each tenth of the work (and the end) gets a line of its own.
"""

from __future__ import annotations

import sys


class Progress:
    """``progress(done, total, failed=0)``: the callback the runner, sweeps and hosting capacity take."""

    def __init__(self, desc: str, unit: str = "runs", quiet: bool = False, stream=None):
        self.desc, self.unit = desc, unit
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.total = None
        self.bar = None
        self.last_tenth = -1

    def __call__(self, done: int, total: int, failed: int = 0) -> None:
        """``done`` (and ``failed``) of ``total`` finished so far."""
        finished = done + failed
        if self.quiet:
            return
        if self.total is None:
            self.total = int(total)
            if self.stream.isatty():
                from tqdm import tqdm

                self.bar = tqdm(total=self.total, desc=self.desc, unit=self.unit.rstrip("s") or self.unit,
                                file=self.stream, dynamic_ncols=True, leave=True)
        if self.bar is not None:
            self.bar.update(finished - self.bar.n)
            if failed:
                self.bar.set_postfix(failed=failed)
            return
        tenth = finished * 10 // max(self.total, 1)
        if tenth != self.last_tenth or finished == self.total:
            self.last_tenth = tenth
            extra = f", {failed} failed" if failed else ""
            print(f"{self.desc}: {finished}/{self.total} {self.unit}{extra}", file=self.stream, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
