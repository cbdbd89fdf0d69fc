"""Operating-system errors a real run meets, as one line naming the path and what to do.

A full disk, a folder without write permission, a read-only mount or too few file handles are not
bugs: the CLI prints :func:`os_error_line` instead of a traceback (exit status 1). Every write of a
run goes through a temporary file renamed into place, so finished stages are intact and the same
command resumes once the cause is fixed.
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

RESUME = "then rerun the same command (finished stages are kept)"

_WHAT = {
    errno.ENOSPC: ("no space left on the device", "free space there or move output_dir to a larger disk"),
    errno.EDQUOT: ("disk quota exceeded", "free space in your quota or move output_dir"),
    errno.EACCES: ("permission denied", "make it writable for this user or choose another output_dir"),
    errno.EPERM: ("operation not permitted", "make it writable for this user or choose another output_dir"),
    errno.EROFS: ("read-only file system", "remount it read-write or choose an output_dir on a writable disk"),
    errno.EMFILE: ("too many open files", "raise the limit (`ulimit -n 4096`)"),
    errno.ENFILE: ("too many open files on this system", "close other programs or raise fs.file-max"),
}


def is_environment_error(exc: BaseException) -> bool:
    """An OSError the user fixes on the machine (disk, permissions, mounts, limits), not a bug."""
    return isinstance(exc, OSError) and exc.errno in _WHAT


# Rust's std::io::Error as libraries written in Rust (safetensors, tokenizers) put it in their own exception's text
_RUST_IO = re.compile(r"\(os error (\d+)\)")


def environment_error(exc: BaseException, path: str | Path | None = None) -> OSError | None:
    """The environment error behind ``exc``: itself, one in its cause chain, or one a Rust library reported only as
    text (safetensors: ``SafetensorError: Error while serializing: I/O error: No space left on device (os error 28)``,
    not an OSError), made an OSError naming ``path``. None when it is something else (a bug keeps its traceback)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and is_environment_error(current):
            return current
        found = _RUST_IO.search(str(current))
        if found and int(found.group(1)) in _WHAT:
            code = int(found.group(1))
            return OSError(code, os.strerror(code), None if path is None else str(path))
        current = current.__cause__  # raised "from" it; not an error that merely happened while handling another
    return None


def os_error_line(exc: OSError) -> str:
    """``PATH: no space left on the device; free space there ..., then rerun the same command ...``."""
    what, fix = _WHAT.get(exc.errno or 0, (exc.strerror or str(exc), "fix the cause"))
    path = exc.filename if exc.filename is not None else exc.filename2
    where = f"{path}: " if path is not None else ""
    return f"{where}{what}; {fix}, {RESUME}"
