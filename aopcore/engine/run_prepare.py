"""Opening a run directory for a driver: the setup it holds must be this one, partial writes are swept, and damaged
stages are forgotten with everything that depends on them, before any stage runs."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterable
from typing import Any

from aopcore.engine.experiment_base import ExperimentBase
from aopcore.errors import InputError
from aopcore.storage import integrity
from aopcore.storage.fingerprint import check_run_dir, experiment_fingerprint
from aopcore.storage.store import atomic_write_json, clean_temporaries

log = logging.getLogger("aopcore")


class RunPreparation(ExperimentBase):
    """The experiment's part that runs once per driver, before the stage graph (:meth:`prepare`)."""

    def fingerprint(self) -> dict[str, Any]:
        """Everything that shapes this run's results (see :mod:`aopcore.storage.fingerprint`)."""
        return experiment_fingerprint(self, self.settings.configured)

    def _check_fingerprint(self) -> None:
        """Refuse a rerun with a different setup (one line listing what changed) unless ``allow_changes``."""
        config = self.layout.config
        if (
            config.exists()
            and not self.store.path("fingerprint.json").exists()
            and self.settings.configured is not None
        ):
            self._check_snapshot()  # a run directory from before fingerprints: the old, coarser check
        changed = check_run_dir(self.store.root, self.fingerprint(), allow_changes=self.settings.allow_changes)
        if changed:  # mid-stage checkpoints of the old setup must not seed the new one
            shutil.rmtree(self.layout.scratch_root, ignore_errors=True)
        if changed or not config.exists():
            atomic_write_json(config, dict(self.settings.snapshot or {}))

    def _check_snapshot(self) -> None:
        path = self.layout.config
        if path.exists():
            old = json.loads(path.read_text())
            if old != json.loads(json.dumps(self.settings.snapshot, sort_keys=True)):
                raise InputError(
                    f"{self.store.root}: this run directory holds a run with a different config; "
                    "choose another experiment.name (finished work is never overwritten)"
                )
        else:
            atomic_write_json(path, dict(self.settings.snapshot or {}))

    def prepare(self) -> None:
        """Create the run directory, refuse a different config, sweep partial writes. Once per run, before any stage."""
        self.store.root.mkdir(parents=True, exist_ok=True)
        self._check_fingerprint()
        from aopcore.executors.lock import wait_for_stages

        wait_for_stages(self.store.root)  # stages a killed driver left running on workers end before the sweep
        removed = clean_temporaries(self.store.root)
        if removed:
            log.info("removed %d partial writes left by an interrupted run", removed)
        self._recompute_damaged()
        self._finish_removals()

    def _finish_removals(self) -> None:
        """Remove what finished stages recorded under ``removes`` and is still there: a driver killed between an
        evaluation's commit and its prune of the previous checkpoint (``keep_checkpoints = "last"``) left it, and an
        executor that skips finished stages (Ray, or one of a user's) would never come back to it. Done here, every
        executor's resumed run ends with the files an uninterrupted one has."""
        for rel in self._remove_pruned(integrity.removed_paths(self.store.stage_records())):
            log.info("removed %s: a finished stage prunes it, and its driver stopped first", rel.rstrip("/"))

    def _remove_pruned(self, rels: Iterable[str]) -> list[str]:
        """Remove the checkpoints a stage prunes (its record's ``removes``) that are still there; returns those."""
        removed = []
        for rel in rels:
            path = self.store.path(rel)
            if path.exists():
                shutil.rmtree(path, ignore_errors=True)
                removed.append(rel)
        return removed

    def _recompute_damaged(self) -> list[str]:
        """Check every finished stage's outputs against its record; forget a damaged stage and every stage that
        depends on it (their records are removed, so they run again), saying which and why. Returns their ids."""
        graph = self.stages()
        known = {s.id for s in graph}
        result = integrity.verify_run(self.store.root, [s.id for s in graph if self.store.is_done(s.id)])
        if result.ok:
            return []
        for damage in result.damage:
            log.warning("damaged: %s", damage.line(self.store.root))
        redo = [sid for sid in integrity.dependents(graph, result.damaged_stages()) if self.store.is_done(sid)]
        later = [sid for sid in redo if sid not in set(result.damaged_stages())]
        log.warning(
            "recomputing %s%s",
            ", ".join(result.damaged_stages()),
            f" and the {len(later)} finished stage(s) that depend on it: {', '.join(later)}" if later else "",
        )
        for sid in redo:
            if sid in known:
                self.store.stage_file(sid).unlink(missing_ok=True)
        return redo
