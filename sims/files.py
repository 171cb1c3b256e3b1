"""Reading a user's input files: regular files only, bounded in size, UTF-8, strict YAML.

Every file the testbed reads from a user (scenario, sweep, trace, vehicle catalog, baseline) goes through
``read_text``: a device (``/dev/zero``), a FIFO or a directory is refused instead of read without end, and a
file larger than its kind's limit is refused before it is read. ``load_yaml`` refuses a mapping that names a
key twice (YAML would silently keep the last) and turns the parser's own failures on hostile input (nesting
thousands deep, integers of thousands of digits) into one-line errors.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import yaml

MiB = 1 << 20
# the largest file of each kind read whole (a year of 1 s frequency samples is ~1 MB of CSV; a million
# vehicles' catalog rows ~100 MB)
LIMITS = {"scenario": 16 * MiB, "sweep": 16 * MiB, "baseline": 64 * MiB, "trace": 512 * MiB, "catalog": 256 * MiB}


class InputFileError(ValueError):
    """A file that cannot be an input; the message says why, without the path (the caller names it)."""


def read_text(path: str | Path, kind: str) -> str:
    """The text of a regular file of at most ``LIMITS[kind]`` bytes, decoded as UTF-8 (a BOM is dropped).
    OSError when it cannot be opened; InputFileError when it is not a text file one may read whole."""
    limit = LIMITS[kind]
    info = os.stat(path)
    if stat.S_ISDIR(info.st_mode):
        raise InputFileError("is a directory, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise InputFileError("is not a regular file (a device, pipe or socket); give a file")
    if info.st_size > limit:
        raise InputFileError(f"is {info.st_size / MiB:.0f} MiB, more than a {kind} file may be ({limit // MiB} MiB)")
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:  # it grew while we looked
        raise InputFileError(f"is more than a {kind} file may be ({limit // MiB} MiB)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputFileError(f"is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); save it as "
                             "UTF-8") from None


def read_data_lines(path: str | Path, kind: str, error: type[Exception], what: str = "") -> list[str]:
    """The non-empty, non-comment (``#``) lines of a CSV input, every failure ``error`` naming the file."""
    try:
        text = read_text(path, kind)
    except OSError as exc:
        raise error(f"{path}: cannot read{' ' + what if what else ''}: {exc.strerror}") from None
    except InputFileError as exc:
        raise error(f"{path}: {exc}") from None
    return [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def read_yaml(path: str | Path, kind: str, error) -> Any:
    """A YAML input file (bounded, UTF-8, strict), every failure ``error`` naming the file."""
    try:
        return load_yaml(read_text(path, kind))
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror}") from None
    except InputFileError as exc:
        raise error(f"{path}: {exc}") from None


def errno_of(exc: BaseException) -> int | None:
    """The operating system's error number behind ``exc``: its own, or the one HDF5 puts in its message
    (h5py raises "... errno = 28, error message = 'No space left on device'" without setting ``errno``)."""
    import re

    code = getattr(exc, "errno", None)
    if code is None:
        found = re.search(r"errno = (\d+)", str(exc))
        code = int(found.group(1)) if found else None
    return code


def write_whole(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` whole or not at all (a temporary file beside it, then renamed): a full disk
    leaves the old file, or none, never a truncated one."""
    import contextlib
    import secrets

    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(3)}.partial")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    return path


class _StrictLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """A safe YAML loader that refuses a key given twice in one mapping: libyaml's parser where PyYAML has it (~4x
    faster on a scenario: every run of a sweep or replicates loads one), else PyYAML's own."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    if key in seen:
                        raise yaml.constructor.ConstructorError(
                            None, None, f"the key {key!r} is given twice (first on line {seen[key] + 1})",
                            key_node.start_mark)
                    seen[key] = key_node.start_mark.line
                except TypeError:  # an unhashable key: SafeLoader's own error follows
                    pass
        return super().construct_mapping(node, deep)


def load_yaml(text: str) -> Any:
    """YAML as yaml.safe_load reads it, but duplicate keys refused; every failure an InputFileError whose
    message starts with where ("line N: ...")."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "(YAML)"
        if "maximum nesting depth" in str(getattr(exc, "problem", "")):  # libyaml's words for what Python's
            raise InputFileError(f"{where}: nested too deeply to read") from None  # parser hits as RecursionError
        raise InputFileError(f"{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from None
    except RecursionError:
        raise InputFileError("(YAML): nested too deeply to read") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        text = str(exc).splitlines()[0]
        if "integer string conversion" in text:
            text = "a number with more digits than any field takes"
        raise InputFileError(f"(YAML): {text}") from None
