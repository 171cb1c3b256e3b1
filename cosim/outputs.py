"""Where the tool writes, and what it may replace.

Rules (README, "Output directories and exit codes"):

* Every result directory this tool writes carries a **manifest**, ``.v2g-testbed`` (JSON: which kind of result,
  and every file the tool wrote there, by relative path). A directory is the tool's to replace only when
  everything in it is in its manifest, or is itself such a result (a sweep's runs, a run's hosting capacity),
  or is a partial file of the tool's own. Anything else (a user's note dropped into a results folder, a
  folder without a manifest, a regular file, the current directory or one of its parents) is refused with
  exit 2 *before* any work is done, naming what is not the tool's.
* A result of one kind is never replaced by another: a run does not replace a sweep, a replicates directory
  or a hosting-capacity study, nor they a run (a sweep resumes its own directory).
* ``--out`` may be a symbolic link to a directory: the result is written where the link points (the link
  stays a link). A dangling link is refused.
* Result directories follow the umask (they are made with ``os.mkdir``, not ``mkdtemp``'s 0700).
* Files the tool writes on request (``report --out``, ``check --junit``) replace only a file the tool wrote
  earlier (recognised by a marker in its text) or nothing, and are written whole or not at all.
* A run holds a lock on its output directory (``.<name>.lock`` beside it, taken with the ``filelock`` library:
  ``flock`` on POSIX, ``msvcrt.locking`` on Windows; who holds it is written to ``.<name>.lock.owner``): a
  second run into the same directory exits 2 at once, naming the first. The operating system releases the
  lock with the process, so a killed run's leftover lock file never blocks a later run.
* A killed run can leave a hidden ``.<name>.<pid>.<random>.partial`` directory; the next run into the same
  parent removes those whose process is gone.
* A write that fails because of the machine (disk full, read-only file system, no permission, a name too
  long) is :class:`WriteFailure`: exit 1, one line naming the path and the cause, nothing partial left.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import shutil
import time
from pathlib import Path

from filelock import FileLock, Timeout

from v2g_testbed.sims.files import errno_of

from v2g_testbed.cosim.scenario import ScenarioError

MARKER = ".v2g-testbed"
FILE_MARKER = "v2g-testbed"  # found in the text of a report or JUnit file this tool wrote
MAX_NAME = 200  # characters of an output directory's own name
_PARTIAL = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[^.]+\.partial$")
_OWN_TRANSIENT = re.compile(r"^\..+\.(partial|lock|lock\.owner)$")  # the tool's half-written files, its locks
KINDS = {"run": "a run", "replicates": "replicates", "sweep": "a sweep", "hosting-capacity": "a hosting-capacity study",
         "calibration": "a calibration report", "offer": "an offer"}


class WriteFailure(Exception):
    """Writing failed for a reason of the machine, not of the input (exit 1): one line, path and cause."""


_MACHINE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENAMETOOLONG, errno.EDQUOT,
                   errno.EFBIG, errno.EIO, errno.EMFILE, errno.ENFILE}
def machine_fault(exc: BaseException) -> str | None:
    """The one-line cause if ``exc`` is a failure of the machine to write (disk full, read-only, permission,
    name too long), else None."""
    if not isinstance(exc, OSError):
        return None
    code = errno_of(exc)
    if code not in _MACHINE_ERRNOS:
        return None
    where = ""
    if getattr(exc, "filename", None):  # a result's temporary directory is named for the result it becomes
        where = re.sub(r"(^|[/\\])\.(?P<name>[^/\\]+)\.\d+\.[0-9a-f]+\.partial(?=[/\\]|$)", r"\1\g<name>",
                       str(exc.filename)) + ": "
    cause = exc.strerror if exc.errno == code and exc.strerror else os.strerror(code)
    return f"cannot write {where}{cause}"


def _first_non_directory(path: Path) -> Path | None:
    """The first existing ancestor of ``path`` (or ``path`` itself) that is not a directory."""
    for p in [*reversed(path.parents), path]:
        if p.exists() and not p.is_dir():
            return p
    return None


# -- the manifest ---------------------------------------------------------------------------------------------
def read_manifest(directory: Path) -> dict | None:
    """The manifest of a result directory, or None (none, or not one of this tool's)."""
    try:
        data = json.loads((Path(directory) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("written_by") != "v2g-testbed" or not isinstance(data.get("files"), list):
        return None
    return data


def _all_files(directory: Path) -> list[str]:
    return sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*")
                  if p.is_file() and p.name != MARKER)


def write_marker(directory: Path, what: str, files: list[str] | None = None, planned=()) -> None:
    """Mark ``directory`` as a result of kind ``what``; ``files``: the files the tool wrote there (relative
    paths; default: every file under it now, except those inside nested results with a manifest of their own);
    ``planned``: files it is about to write (a sweep's table, written at its end)."""
    directory = Path(directory)
    if files is None:
        files = [f for f in _all_files(directory) if not _inside_nested_result(directory, f)]
    files = [*files, *planned]
    text = json.dumps({"written_by": "v2g-testbed", "what": what, "files": sorted(set(files))}, indent=1) + "\n"
    tmp = directory / f".{MARKER}.{os.getpid()}.partial"
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(directory / MARKER)


def _inside_nested_result(directory: Path, relative: str) -> bool:
    parts = Path(relative).parts
    return any(read_manifest(directory.joinpath(*parts[:i])) is not None for i in range(1, len(parts)))


def add_to_manifest(directory: Path, paths) -> None:
    """Record files the tool added to a finished result (a report, plots drawn later). Does nothing where
    there is no manifest (a directory the tool does not own)."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    if manifest is None:
        return
    added = [Path(os.path.abspath(p)).relative_to(Path(os.path.abspath(directory))).as_posix() for p in paths
             if Path(os.path.abspath(directory)) in Path(os.path.abspath(p)).parents]
    if set(added) - set(manifest["files"]):
        write_marker(directory, manifest["what"], [*manifest["files"], *added])


@contextlib.contextmanager
def recording(directory: Path):
    """Files that appear in a result directory during the block are added to its manifest."""
    directory = Path(directory)
    before = set(_all_files(directory)) if directory.is_dir() else set()
    yield
    if directory.is_dir():
        add_to_manifest(directory, [directory / f for f in set(_all_files(directory)) - before])


def foreign(directory: Path, manifest: dict | None = None, limit: int | None = None) -> list[str]:
    """What in ``directory`` the tool did not write (relative paths; [] when all of it is the tool's): files
    not in its manifest (every file, where it has none), except inside nested results with a manifest of their
    own, which are judged by theirs. Stops after ``limit`` findings."""
    directory = Path(directory)
    manifest = read_manifest(directory) if manifest is None else manifest
    listed = set(manifest["files"]) if manifest else set()
    out: list[str] = []

    def walk(folder: Path, prefix: str):
        for entry in sorted(folder.iterdir()):
            if limit is not None and len(out) >= limit:
                return
            rel = f"{prefix}{entry.name}"
            if (entry.name == MARKER and folder == directory and manifest) or _OWN_TRANSIENT.match(entry.name):
                continue
            if entry.is_symlink():
                out.append(rel)
            elif entry.is_dir():
                nested = read_manifest(entry)
                if nested is not None:
                    out.extend(f"{rel}/{f}" for f in foreign(entry, nested, limit))
                else:
                    walk(entry, f"{rel}/")
            elif rel not in listed:
                out.append(rel)

    walk(directory, "")
    return out


# -- checking an output directory before any work -------------------------------------------------------------
def _resolve_link(path: Path, option: str) -> Path:
    """``--out`` at a symbolic link: the directory it points to (a dangling link is refused)."""
    if not path.is_symlink():
        return path
    real = Path(os.path.realpath(path))
    if not real.exists():
        raise ScenarioError(f"{option} {path}: a symbolic link to {os.readlink(path)}, which does not exist")
    return real


def _writable_ancestor(target: Path) -> None:
    """Fail (WriteFailure, exit 1) now, not after the run, if nothing can be created where ``target`` goes."""
    probe = target if target.exists() else next((p for p in target.parents if p.exists()), None)
    if probe is not None and not os.access(probe, os.W_OK | os.X_OK):
        raise WriteFailure(f"cannot write in {probe}: {_why_not_writable(probe)}")


def _why_not_writable(path: Path) -> str:
    try:
        read_only = bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except (AttributeError, OSError):  # no statvfs on Windows
        read_only = False
    return "read-only file system" if read_only else "permission denied"


def check_output_dir(path: Path, option: str = "--out", kind: str = "run") -> Path:
    """Refuse (ScenarioError, exit 2) an output directory that this tool may not replace with a result of
    ``kind``. Returns the absolute path (where a symbolic link points). Call before any work is done."""
    if len(Path(path).name) > MAX_NAME:
        raise ScenarioError(f"{option} {str(path)[:60]}...: the directory name is {len(Path(path).name)} characters "
                            f"(at most {MAX_NAME})")
    target = Path(os.path.abspath(path))
    try:
        target = _resolve_link(target, option)
        blocker = _first_non_directory(target)
        if blocker is not None:
            what = "is a file" if blocker == target else f"lies under {blocker}, which is a file"
            raise ScenarioError(f"{option} {path}: {what}; choose a directory")
        cwd = Path.cwd().resolve()
        if target.exists() and (target.resolve() == cwd or target.resolve() in cwd.parents):
            raise ScenarioError(f"{option} {path}: is the current directory or one of its parents; results are "
                                "written into a directory of their own (e.g. results/NAME)")
        if target.exists() and any(target.iterdir()):
            manifest = read_manifest(target)
            if manifest is not None and manifest["what"] != kind:
                raise ScenarioError(f"{option} {path}: holds {KINDS.get(manifest['what'], manifest['what'])}, which "
                                    f"{KINDS.get(kind, kind)} never replaces: choose another directory")
            theirs = foreign(target, manifest, limit=4)
            if theirs:
                old = " (an earlier v2g's result without a manifest of its files: remove it yourself if nothing in " \
                      "it is yours)" if manifest is None and (target / MARKER).exists() else ""
                raise ScenarioError(f"{option} {path}: holds files this tool did not write ({_some(theirs)}){old}; "
                                    "v2g replaces only what it wrote: move them, or choose another directory")
        _writable_ancestor(target)
    except OSError as exc:  # a name the file system refuses, a folder we may not list
        fault = machine_fault(exc)
        if fault:
            raise WriteFailure(f"{option} {path}: {fault}") from None
        raise
    return target


def _some(names: list[str]) -> str:
    return ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")


def check_output_file(path: Path, option: str) -> Path:
    """Refuse (exit 2) to overwrite a file this tool did not write, or to write under a file; fail now (exit 1)
    where the file cannot be written at all."""
    target = Path(os.path.abspath(path))
    blocker = _first_non_directory(target.parent)
    if blocker is not None:
        raise ScenarioError(f"{option} {path}: lies under {blocker}, which is a file")
    if not target.parent.is_dir():
        raise ScenarioError(f"{option} {path}: the folder {target.parent} does not exist")
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
    return check_output_file_writable(target, option)


def check_output_file_writable(path: Path, option: str) -> Path:
    """Fail now (WriteFailure, exit 1) if ``path`` could not be written (it is replaced through a temporary file
    beside it, so its folder must take new files)."""
    target = Path(os.path.abspath(path))
    if not os.access(target.parent, os.W_OK | os.X_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise WriteFailure(f"{option} {path}: cannot write: {_why_not_writable(target.parent)}")
    return target


@contextlib.contextmanager
def writing_to(path: Path):
    """A failure of the machine to write inside the block becomes a WriteFailure naming ``path`` (where the
    operating system's error names no file)."""
    try:
        yield
    except OSError as exc:
        fault = machine_fault(exc)
        if fault is None:
            raise
        if not getattr(exc, "filename", None):
            fault = fault.replace("cannot write ", f"cannot write {path}: ", 1)
        raise WriteFailure(fault) from None




# -- writing a result ---------------------------------------------------------------------------------------
def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError, SystemError):  # Windows: OSError for a pid that is gone or not ours
        return pid == os.getpid()
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
    """Yield a hidden temporary directory beside ``target``. If the block finishes, the directory gets its
    manifest (every file written into it) and replaces ``target`` whole; if it fails or is interrupted, it
    is removed: no half-written result ever sits at ``target``. ``target`` must have passed
    ``check_output_dir`` (checked again here, so a directory that became a user's in the meantime is still
    never replaced). A symbolic link at ``target`` stays: the result goes where it points."""
    target = Path(os.path.abspath(target))
    if target.is_symlink():
        target = _resolve_link(target, "--out")
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_partials(target.parent, target.name)
    tmp = target.parent / f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.partial"
    tmp.mkdir()  # follows the umask (mkdtemp would make it 0700: colleagues could not read the results)
    try:
        yield tmp
        write_marker(tmp, what)
        _replace_dir(tmp, target, what)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _replace_dir(new: Path, target: Path, what: str):
    """Put ``new`` at ``target``, replacing an earlier result of this tool of the same kind (never anything
    else). Results nested in the old one that the new one does not have (a run's hosting-capacity study) are
    kept: moved into the new one."""
    if target.exists():
        manifest = read_manifest(target)
        if not target.is_dir() or (manifest is not None and manifest["what"] != what) or foreign(target, manifest, 1):
            raise ScenarioError(f"--out {target}: no longer an empty directory or a result of v2g; "
                                f"left untouched (nothing written)")
        for entry in target.iterdir():
            if entry.is_dir() and not entry.is_symlink() and read_manifest(entry) is not None \
                    and not (new / entry.name).exists():
                entry.rename(new / entry.name)
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
