"""A session's state folder: opened (refuse a changed setup, record what the session answers, sweep partial
writes; rank 0 alone in a distributed launch) and each round closed (its per-step batches kept)."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aopcore.ledger import record_usage
from aopcore.steps import PromptStream, write_batches
from aopcore.storage.fingerprint import check_run_dir
from aopcore.storage.rundir import RunLayout
from aopcore.storage.store import atomic_write_json, clean_temporaries

log = logging.getLogger("aopcore")


def open_state_dir(
    layout: RunLayout, fingerprint: Callable[[], dict[str, Any]], *, allow_changes: bool, config: dict[str, Any]
) -> None:
    """Check ``fingerprint()`` against the folder's (one line on a change unless ``allow_changes``), write
    ``config`` as its config.json when new or changed, and remove what an interrupted session left half-written."""
    from aopcore.engine.ranks import is_main_process

    if not is_main_process():  # a distributed launch: rank 0 checks and writes the run directory's files
        return
    root = layout.root
    root.mkdir(parents=True, exist_ok=True)
    changed = check_run_dir(
        root,
        fingerprint(),
        allow_changes=allow_changes,
        what="state folder",
        remedy="choose another state_dir, or continue anyway with CurriculumSession(..., allow_changes=True)",
    )
    if changed:
        shutil.rmtree(layout.scratch_root, ignore_errors=True)
    if changed or not layout.config.exists():
        atomic_write_json(layout.config, config)
    removed = clean_temporaries(root)
    if removed:
        log.info("removed %d partial writes left by an interrupted session", removed)


def session_config(name: str, seed: int, rounds: int | None, budget: int, curriculum: Any) -> dict[str, Any]:
    """config.json of a session built in Python (one from a config file keeps that file's sections)."""
    return {
        "source": "session",
        "arm": name,
        "experiment": {"name": name, "seed": seed, "iterations": rounds, "records_per_iteration": budget},
        "arms": {name: type(curriculum).__name__},
    }


def keep_round_steps(stream: PromptStream | None, path: Path) -> dict[str, Any]:
    """The round's record (trained outside aopcore): its per-step batches written to ``path``, and the groups a
    selector dropped booked as choosing compute."""
    if stream is None:
        return {"external": True}
    stream.finish()
    batches = stream.batches()
    write_batches(path, batches)
    dropped = [g for b in batches for g, k in zip(b.groups, b.kept) if not k]
    if dropped:
        record_usage(
            dropped_groups=len(dropped),
            dropped_rollouts=sum(len(g.rewards) for g in dropped),
            dropped_tokens=sum(g.tokens for g in dropped),
        )
    return {"external": True, "stream": stream.summary()}
