"""Operating-system errors a real run meets, as one line naming the path and what to do.

A full disk, a folder without write permission, a read-only mount or too few file handles are not
bugs: the CLI prints :func:`os_error_line` instead of a traceback (exit status 1). Every write of a
run goes through a temporary file renamed into place, so finished stages are intact and the same
command resumes once the cause is fixed.
"""

from __future__ import annotations

import errno

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


def os_error_line(exc: OSError) -> str:
    """``PATH: no space left on the device; free space there ..., then rerun the same command ...``."""
    what, fix = _WHAT.get(exc.errno or 0, (exc.strerror or str(exc), "fix the cause"))
    path = exc.filename if exc.filename is not None else exc.filename2
    where = f"{path}: " if path is not None else ""
    return f"{where}{what}; {fix}, {RESUME}"
