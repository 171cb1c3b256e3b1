"""Where the tool writes, and what it may replace.

Rules (README, "Output directories and exit codes"):

* Every result directory this tool writes carries a marker file, ``.v2g-testbed`` (JSON: what wrote it).
  An output directory is replaced only when it does not exist, is empty, or carries the marker; anything
  else (a user's own folder, a regular file, the current directory or one of its parents) is refused with
  exit 2 *before* any work is done.
* Files the tool writes on request (``report --out``, ``check --junit``) replace only a file the tool wrote
  earlier (recognised by a marker in its text) or nothing.
* A run holds a lock on its output directory (``.<name>.lock`` beside it, taken with the ``filelock`` library:
  ``flock`` on POSIX, ``msvcrt.locking`` on Windows; who holds it is written to ``.<name>.lock.owner``): a
  second run into the same directory exits 2 at once, naming the first. The operating system releases the
  lock with the process, so a killed run's leftover lock file never blocks a later run.
* A killed run can leave a hidden ``.<name>.<pid>.<random>.partial`` directory; the next run into the same
  parent removes those whose process is gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

from filelock import FileLock, Timeout

from v2g_testbed.cosim.scenario import ScenarioError

MARKER = ".v2g-testbed"
FILE_MARKER = "v2g-testbed"  # found in the text of a report or JUnit file this tool wrote
_PARTIAL = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[^.]+\.partial$")


def _first_non_directory(path: Path) -> Path | None:
    """The first existing ancestor of ``path`` (or ``path`` itself) that is not a directory."""
    for p in [*reversed(path.parents), path]:
        if p.exists() and not p.is_dir():
            return p
    return None


def is_ours(directory: Path) -> bool:
    return (directory / MARKER).is_file()


def check_output_dir(path: Path, option: str = "--out") -> Path:
    """Refuse (ScenarioError, exit 2) an output directory that this tool may not replace. Returns the
    absolute path. Call before any work is done."""
    target = Path(os.path.abspath(path))
    cwd = Path.cwd().resolve()
    blocker = _first_non_directory(target)
    if blocker is not None:
        what = "is a file" if blocker == target else f"lies under {blocker}, which is a file"
        raise ScenarioError(f"{option} {path}: {what}; choose a directory")
    if len(target.name) > 200:
        raise ScenarioError(f"{option} {path}: the directory name is {len(target.name)} characters (at most 200)")
    if target.exists() and (target.resolve() == cwd or target.resolve() in cwd.parents):
        raise ScenarioError(f"{option} {path}: is the current directory or one of its parents; results are written "
                            "into a directory of their own (e.g. results/NAME)")
    if target.exists() and any(target.iterdir()) and not is_ours(target):
        some = sorted(p.name for p in target.iterdir())[:3]
        raise ScenarioError(f"{option} {path}: holds files this tool did not write ({', '.join(some)}, ...); "
                            "v2g replaces only its own results: choose another directory or empty this one")
    return target


def check_output_file(path: Path, option: str) -> Path:
    """Refuse (exit 2) to overwrite a file this tool did not write, or to write under a file."""
    target = Path(os.path.abspath(path))
    blocker = _first_non_directory(target.parent)
    if blocker is not None:
        raise ScenarioError(f"{option} {path}: lies under {blocker}, which is a file")
    if target.is_dir():
        raise ScenarioError(f"{option} {path}: is a directory; give a file name")
    if target.exists():
        try:
            with open(target, "rb") as f:
                head = f.read(4096)
        except OSError as exc:
            raise ScenarioError(f"{option} {path}: cannot read: {exc.strerror}") from None
        if FILE_MARKER.encode() not in head:
            raise ScenarioError(f"{option} {path}: exists and was not written by v2g; choose another file name")
    return target


def write_marker(directory: Path, what: str) -> None:
    (Path(directory) / MARKER).write_text(json.dumps({"written_by": "v2g-testbed", "what": what}) + "\n")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_partials(parent: Path, name: str | None = None) -> None:
    """Remove ``.<name>.<pid>.*.partial`` directories (of ``name``, or of any name) left by dead runs."""
    if not parent.is_dir():
        return
    for leftover in parent.iterdir():
        m = _PARTIAL.match(leftover.name)
        if m and leftover.is_dir() and (name is None or m["name"] == name) and not _alive(int(m["pid"])):
            shutil.rmtree(leftover, ignore_errors=True)


@contextlib.contextmanager
def output_lock(target: Path):
    """Hold an exclusive lock on ``target`` for the block; exit 2 at once if another run holds it."""
    target = Path(os.path.abspath(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    lock_path = target.parent / f".{target.name}.lock"
    owner = target.parent / f".{target.name}.lock.owner"
    lock = FileLock(lock_path, timeout=0, is_singleton=False)
    try:
        lock.acquire()
    except Timeout:
        try:
            holder = owner.read_text(errors="replace").strip()[:200]
        except OSError:
            holder = ""
        raise ScenarioError(f"--out {target}: {holder or 'another v2g process'} is writing there now; wait for it "
                            "or choose another directory") from None
    try:
        owner.write_text(f"v2g (pid {os.getpid()}, since {time.strftime('%H:%M:%S')})")
        yield
    finally:
        for path in (owner, lock_path):  # POSIX: removed while still held (Windows refuses: removed after)
            with contextlib.suppress(OSError):
                path.unlink()
        lock.release()
        with contextlib.suppress(OSError):
            lock_path.unlink()


@contextlib.contextmanager
def atomic_directory(target: Path, what: str = "run"):
    """Yield a hidden temporary directory beside ``target``. If the block finishes, the directory is
    marked as this tool's and replaces ``target`` whole; if it fails or is interrupted, it is removed: no
    half-written result ever sits at ``target``. ``target`` must have passed ``check_output_dir``
    (checked again here, so a directory that became a user's in the meantime is still never replaced)."""
    target = Path(os.path.abspath(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_partials(target.parent, target.name)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".partial", dir=target.parent))
    try:
        yield tmp
        write_marker(tmp, what)
        _replace_dir(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _replace_dir(new: Path, target: Path):
    """Put ``new`` at ``target``, replacing an earlier result of this tool (never anything else)."""
    if target.exists() or target.is_symlink():
        if not target.is_dir() or (any(target.iterdir()) and not is_ours(target)):
            raise ScenarioError(f"--out {target}: no longer an empty directory or a result of v2g; "
                                f"left untouched (nothing written)")
        old = target.with_name(f".{target.name}.{os.getpid()}.old.partial")
        target.rename(old)
        new.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        new.rename(target)


def inside(root: Path, path: Path, what: str) -> Path:
    """``path`` resolved, which must lie inside ``root`` (ScenarioError otherwise)."""
    root_r, path_r = Path(os.path.abspath(root)), Path(os.path.abspath(path))
    if path_r != root_r and root_r not in path_r.parents:
        raise ScenarioError(f"{what}: {path} would lie outside {root}")
    return path_r
