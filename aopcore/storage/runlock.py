"""One driver per run directory: an exclusive lock held for the whole run, with the holder written in it.

Two drivers of one run directory (two terminals, a scheduler that restarts a job whose old copy still
runs) would sweep each other's in-progress files and write the same stages twice. The driver
(``Experiment.run``, ``run_seeds``) therefore holds ``<output_dir>/.<run name>.driver`` locked exclusively
(``flock``) from before it touches the run directory until it returns; the file names the holder
(host, pid, start time). A second driver refuses at once with one line naming the holder
(:class:`RunDirectoryBusy`, exit status 2) or, with ``wait=True`` (``aopcore run --wait``), waits for it.

The kernel releases the lock of a process that died, however it died, so a dead holder's lock is
simply taken over (the log says whose). Stage workers (Ray tasks) do not take this lock; they hold the
stage lock of :mod:`aopcore.executors.lock` shared, as before. On a file system without ``flock``
support the run goes on with a warning, refusing only a holder recorded on this host whose process
still lives.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aopcore.errors import AopcoreError

log = logging.getLogger("aopcore")


class RunDirectoryBusy(AopcoreError):
    """Another driver holds the run directory. Exit status 2: wait for it, stop it, or pass ``--wait``."""

    exit_status = 2


def driver_lock_path(run_dir: Path) -> Path:
    run_dir = Path(run_dir)
    return run_dir.parent / f".{run_dir.name}.driver"


def read_holder(path: Path) -> dict[str, Any] | None:
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
        return json.loads(text) if text else None
    except (OSError, ValueError):
        return None


def describe_holder(holder: dict[str, Any] | None) -> str:
    if not holder:
        return "a driver that is just starting"
    started = datetime.fromtimestamp(float(holder.get("started", 0)), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    text = f"pid {holder.get('pid')} on {holder.get('host')}, started {started}"
    if holder.get("host") == socket.gethostname() and not _alive(int(holder.get("pid", 0))):
        text += "; that process is gone, a process it started still holds the lock"
    return text


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def driver_lock(run_dir: Path, *, wait: bool = False) -> Iterator[None]:
    """Hold the run directory's driver lock for the block; refuse (or wait) while another driver holds it."""
    run_dir = Path(run_dir)
    path = driver_lock_path(run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+", encoding="utf-8")
    locked = held_unlocked = False
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            locked = True
        except BlockingIOError:
            holder = _holder_when_busy(path)
            if not wait:
                raise RunDirectoryBusy(
                    f"{run_dir}: another driver is running this run directory ({describe_holder(holder)}); "
                    "wait for it to finish or stop it, or rerun with --wait"
                ) from None
            log.info("waiting for the driver that runs %s (%s) to finish", run_dir, describe_holder(holder))
            fcntl.flock(handle, fcntl.LOCK_EX)
            locked = True
        except OSError as exc:  # no flock on this file system: the holder file is all there is
            holder = read_holder(path)
            if (
                holder
                and holder.get("host") == socket.gethostname()
                and _alive(int(holder.get("pid", 0)))
                and int(holder.get("pid", 0)) != os.getpid()
            ):
                raise RunDirectoryBusy(
                    f"{run_dir}: another driver is running this run directory ({describe_holder(holder)}); "
                    "wait for it to finish or stop it"
                ) from None
            log.warning("no lock on %s (%s): make sure no other driver runs this run directory", run_dir, exc)
            held_unlocked = True
        previous = read_holder(path)
        if previous and previous.get("pid") != os.getpid():
            log.info(
                "took over the run directory from a driver that ended without releasing it (%s)",
                describe_holder(previous),
            )
        _write_holder(handle)
        yield
    finally:
        with contextlib.suppress(OSError, ValueError):
            if locked or held_unlocked:
                handle.seek(0)
                handle.truncate()  # released: no holder to report
                handle.flush()
            if locked:
                fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def _holder_when_busy(path: Path) -> dict[str, Any] | None:
    """The holder as it wrote itself (it may be writing right now: a few short retries)."""
    for _ in range(5):
        holder = read_holder(path)
        if holder:
            return holder
        time.sleep(0.05)
    return None


def _write_holder(handle: Any) -> None:
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}) + "\n")
        handle.flush()
    except OSError as exc:  # a full disk must not stop the run here; the lock itself is held
        log.warning("could not write the holder into %s (%s)", handle.name, exc)
