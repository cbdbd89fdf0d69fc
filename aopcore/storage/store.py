"""The run directory: atomic writes and stage bookkeeping that make resume exact.

A stage is done when its record ``stages/<stage id>.json`` exists. That record is
written last, after the stage's outputs were renamed into place, so a crash at
any moment leaves either a finished stage or one that is recomputed from scratch.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def require_run_dir(path: Path | str) -> Path:
    """The path as a run directory, or an InputError for commands (report, human-eval, ...) given anything else."""
    from aopcore.errors import InputError

    run_dir = Path(path)
    if not (run_dir / "config.json").exists():
        raise InputError(f"{run_dir}: not an aopcore run directory (no config.json)")
    return run_dir


_umask_lock = threading.Lock()


def current_umask() -> int:
    """The process umask: from /proc where Linux has it (no race), else by setting and restoring it under a lock."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def shared_mode(directory: bool = False) -> int:
    """The mode ``open``/``mkdir`` would give: 0o666 (files) or 0o777 (folders) less the umask.

    ``mkstemp``/``mkdtemp`` create 0600/0700 whatever the umask; run files get the usual
    modes instead, so colleagues on a shared cluster can read a run when the umask allows.
    """
    return (0o777 if directory else 0o666) & ~current_umask()


def atomic_write_text(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, shared_mode())
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename is None:
            exc.filename = str(path)  # a failed write() names no file: say which one (the CLI prints it)
        raise


def follow_umask(folder: Path) -> None:
    """Give every file and folder under ``folder`` the modes the umask allows (kept executable bits stay).

    Writers that create private files (``save_pretrained``, ``mkstemp``: 0600) would otherwise hide a run's
    policies from colleagues the umask lets read it.
    """
    files, dirs = shared_mode(), shared_mode(directory=True)
    for path in [Path(folder), *Path(folder).rglob("*")]:
        if path.is_symlink():
            continue
        try:
            if path.is_dir():
                os.chmod(path, dirs)
            else:
                st = path.stat()
                if st.st_nlink > 1:
                    continue  # a hard link (twin reuse, a linked initial policy): its other names keep their mode
                os.chmod(path, files | (st.st_mode & 0o111 & dirs))
        except OSError:
            pass  # a file we do not own (a hard link into a colleague's run): leave it as it is


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


@contextmanager
def atomic_directory(path: Path) -> Iterator[Path]:
    """Yield a fresh temp directory that replaces ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    os.chmod(tmp, shared_mode(directory=True))
    try:
        yield tmp
        follow_umask(tmp)
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def clean_temporaries(root: Path) -> int:
    """Remove leftovers of writes a crash interrupted; returns how many were removed."""
    removed = 0
    if not root.exists():
        return 0
    for tmp in list(root.rglob(".*.tmp")):
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        removed += 1
    return removed


class RunStore:
    """Paths and stage records of one run directory (``<output_dir>/<run name>``)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    def stage_file(self, stage_id: str) -> Path:
        return self.root / "stages" / f"{stage_id.replace('/', '__')}.json"

    def is_done(self, stage_id: str) -> bool:
        return self.stage_file(stage_id).exists()

    def mark_done(self, stage_id: str, record: dict[str, Any]) -> None:
        atomic_write_json(self.stage_file(stage_id), {"stage": stage_id, **record})

    def stage_records(self) -> list[dict[str, Any]]:
        folder = self.root / "stages"
        if not folder.exists():
            return []
        records = [json.loads(p.read_text()) for p in folder.glob("*.json")]
        return sorted(records, key=lambda r: r.get("order", 0))
