"""A file lock beside the run directory, so that no stage is ever done twice.

A driver killed mid-run (SIGKILL) may leave stages running for a moment on workers (Ray stops a dead
driver's tasks within about a second, a remote node maybe later). Each Ray task holds the lock shared
while its stage runs; the next run (either executor) takes it exclusively, briefly, before it sweeps
partial writes, so it waits for those stages to end instead of racing them.

The lock file is ``<output_dir>/.<run name>.lock``, outside the run directory, whose files stay those
of the run. On a shared file system the lock needs file-lock support (NFSv4 has it); where locking
is unavailable the run goes on unlocked, with a warning.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("aopcore")


def lock_path(run_dir: Path) -> Path:
    run_dir = Path(run_dir)
    return run_dir.parent / f".{run_dir.name}.lock"


def wait_for_stages(run_dir: Path) -> None:
    """Before a run sweeps partial writes: wait until no stage of an earlier (interrupted) run is still running."""
    path = lock_path(run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as handle:
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.info(
                    "waiting for stages of an interrupted run (or of another driver) that still run in %s", run_dir
                )
                fcntl.flock(handle, fcntl.LOCK_EX)
        except OSError as exc:
            log.warning("no lock on %s (%s): make sure no stage of an earlier run still runs", run_dir, exc)


@contextlib.contextmanager
def held_by_stage(run_dir: Path) -> Iterator[None]:
    """A worker's shared lock while its stage runs (a driver that starts meanwhile waits for the stage to end)."""
    path = lock_path(run_dir)
    with open(path, "ab") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH)
        except OSError as exc:
            log.warning("no lock on %s (%s)", run_dir, exc)
        yield
