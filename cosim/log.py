"""Messages to the user go through :mod:`logging`, on the logger ``v2g_testbed``.

A notebook or a CI job routes them with its own handlers (``logging.getLogger("v2g_testbed")``); the command
line installs one handler for the length of a command that prints each message to stderr as one line, as
it always did: ``warning: ...`` and ``error: ...`` for those levels, other messages as they are. ``--quiet``
keeps only warnings and errors.
"""

from __future__ import annotations

import contextlib
import logging
import sys

LOG = logging.getLogger("v2g_testbed")


class _StderrLines(logging.Handler):
    """Each record as one line on the *current* ``sys.stderr`` (pytest's capture swaps it between tests)."""

    PREFIX = {logging.WARNING: "warning: ", logging.ERROR: "error: ", logging.CRITICAL: "error: "}

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.PREFIX.get(record.levelno, "") + record.getMessage() + "\n")
            sys.stderr.flush()
        except (BrokenPipeError, ValueError):  # a closed pipe or stream: nobody is reading
            pass


@contextlib.contextmanager
def command_line_handler(quiet: bool = False):
    """For the length of one CLI command: messages of ``v2g_testbed`` printed to stderr, not propagated
    (a root handler of the caller's would print them twice)."""
    handler = _StderrLines()
    level, propagate = LOG.level, LOG.propagate
    LOG.addHandler(handler)
    LOG.setLevel(logging.WARNING if quiet else logging.INFO)
    LOG.propagate = False
    try:
        yield
    finally:
        LOG.removeHandler(handler)
        LOG.setLevel(level)
        LOG.propagate = propagate
