"""Another git revision's code beside this tree's, for A/B benchmarks: ``with code_of(rev) as env:`` gives the
environment under which a Python process imports ``rev``'s ``sims``, ``analysis`` and ``cosim`` (from ``git
archive``, first on ``PYTHONPATH``: ``v2g_testbed`` is a namespace package, and the path's entries come before the
editable install's finder) and this tree's everything else (the installed packages, the data files it reads)."""

from __future__ import annotations

import contextlib
import os
import pathlib
import subprocess
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("sims", "analysis", "cosim")


@contextlib.contextmanager
def code_of(rev: str):
    with tempfile.TemporaryDirectory() as tmp:
        tree, side = pathlib.Path(tmp) / "tree", pathlib.Path(tmp) / "side"
        tree.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, *PACKAGES], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
        (side / "v2g_testbed").mkdir(parents=True)
        for name in PACKAGES:
            (side / "v2g_testbed" / name).symlink_to(tree / name, target_is_directory=True)
        yield dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(side), os.environ.get("PYTHONPATH")])))
