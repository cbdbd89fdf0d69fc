"""veRL V1 adapter: aopcore's curriculum hears every finished group through ``trainer.v1.sampler.custom_sampler``.

verl 0.9.1 runs its V1 trainer by default (``trainer.use_v1: true``), which never calls ``on_batch_end``. Its
extension point for rewarded groups is a ``ReplayBuffer`` subclass named by
``trainer.v1.sampler.custom_sampler.{path,name}``: ``sample(global_steps, partition_id, batch_size)`` picks the
finished groups (in TransferQueue, rewards in ``rm_scores``) that the step trains on, *before* the update, and
``refill_fn(n)`` submits exactly ``n`` fresh prompts from the dataloader. :class:`AopcoreReplayBuffer`:

- the rows still come from ``data.custom_cls`` = :class:`aopcore_integrations.verl.AopcoreDataset`, which in V1
  mode serves one stream draw of ``data.train_batch_size`` prompts across the trainer's fetches (``data.gen_batch_size``
  must be 1, so a refill can ask for any number of prompts);
- each finished group is read with its rewards; once all groups of a draw are in, the draw is reported to the
  round's :class:`~aopcore.steps.PromptStream` (AOP rounds get their rollout evaluation, online curricula their
  per-step reports); the groups a selector's ``keep`` rejects are evicted from TransferQueue and replaced through
  ``refill_fn`` (a refill draw, :meth:`PromptStream.refill`), at most :data:`MAX_REFILL_ROUNDS` times a step, and
  booked as dropped (as the legacy adapter books them); the filter's own cap bounds how many it drops;
- resume is veRL's: ``global_step_N/data.pt`` holds the dataset's state (round, draws, refills included).

:func:`check_trainer_config` refuses, in one line naming the key, every configuration in which these hooks would
not fire. It runs in the dataset's constructor (the data config's root is the whole veRL config) and in the
sampler's, the first adapter code each trainer runs, before any worker starts. veRL is imported only when
:class:`AopcoreReplayBuffer` is first looked up.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from aopcore.errors import InputError, RuntimeFailure
from aopcore_integrations.verl_trainer_check import (  # noqa: F401 - trainer_problems, check_trainer_config: this module's API
    DATASET_NAME,
    DATASET_PATH,
    SAMPLER_NAME,
    SAMPLER_PATH,
    check_trainer_config,
    trainer_problems,
)

log = logging.getLogger("aopcore")

MAX_REFILL_ROUNDS = 8  # refills per step: a filter whose every group is dropped would otherwise never end


def trajectories_by_uid(
    keys: Sequence[str], infos: Sequence[Any], rewards: Sequence[float], tokens: Sequence[int]
) -> dict[str, list[tuple[Any, float, int]]]:
    """Per prompt uid (a TransferQueue key is ``{uid}_{session}_{index}``): (extra_info, reward, response tokens) of
    each of its trajectories."""
    out: dict[str, list[tuple[Any, float, int]]] = {}
    for key, info, r, t in zip(keys, infos, rewards, tokens, strict=True):
        out.setdefault(key.split("_")[0], []).append((info, float(r), int(t)))
    return out


def _build_class() -> type:
    from verl.trainer.ppo.v1 import replay_buffer as rb

    from aopcore_integrations.verl import DRAW, POSITION, ROUND, SIZE, group_by_position

    class AopcoreReplayBuffer(rb.ReplayBuffer):
        """veRL's sync ``ReplayBuffer`` that reports each finished draw to aopcore and evicts/refills what it drops."""

        def __init__(
            self,
            trainer_mode: str,
            trainer_config: Any,
            max_off_policy_threshold: int | None,
            max_off_policy_strategy: str,
            sampler_kwargs: Any,
            poll_interval: float = 2.0,
            refill_fn: Any = None,
            **kwargs: Any,
        ) -> None:
            trainer = getattr(refill_fn, "__self__", None)
            config = getattr(trainer, "config", None)
            if config is None:
                raise InputError(
                    "trainer.v1.sampler.custom_sampler: AopcoreReplayBuffer is built by veRL's V1 trainer "
                    "(which passes its refill_fn), not by hand"
                )
            problems = trainer_problems(config)
            if problems:
                raise InputError(*problems)
            kw = dict(sampler_kwargs or {})
            unknown = sorted(set(kw) - {"poll_interval"})
            if unknown:
                raise InputError(
                    f"trainer.v1.sampler.sampler_kwargs.{unknown[0]}: unknown key (aopcore's sampler takes poll_interval)"
                )
            super().__init__(
                trainer_mode,
                trainer_config,
                max_off_policy_threshold,
                max_off_policy_strategy,
                sampler_kwargs,
                poll_interval=float(kw.get("poll_interval", poll_interval)),
                refill_fn=refill_fn,
                **kwargs,
            )
            self._trainer = trainer
            self._seen: dict[str, list[tuple[Any, float, int]]] = {}  # finished uids read, not yet reported
            self._reported: set[str] = set()  # reported and kept, awaiting selection
            self.dropped_groups = 0
            self.refills = 0

        def _dataset(self) -> Any:
            ds = getattr(self._trainer, "train_dataset", None)
            if ds is None or not hasattr(ds, "expect_refill") or not getattr(ds, "_v1", False):
                raise InputError(
                    f"data.custom_cls: aopcore's V1 sampler needs aopcore's dataset in V1 mode; set "
                    f"data.custom_cls.path={DATASET_PATH} data.custom_cls.name={DATASET_NAME}"
                )
            return ds

        def _read_new(self, uids: set[str]) -> None:
            """The trajectories of newly finished groups: extra_info, reward (rm_scores summed), response tokens."""
            part = self.partitions["train"]
            keys = sorted(k for k in part if k.split("_")[0] in uids)
            missing = uids - {k.split("_")[0] for k in keys}
            if missing:
                raise RuntimeFailure(
                    f"aopcore: {len(missing)} prompt group(s) finished with no trajectory (rollout failed); "
                    "their draw cannot be reported"
                )
            data = rb.tq.kv_batch_get(keys=keys, partition_id="train", select_fields=["rm_scores", "extra_info"])
            rewards = [float(v.sum().item()) for v in data["rm_scores"]]
            infos = [getattr(i, "data", i) for i in data["extra_info"]]
            tokens = [int(part[k].get("response_len", 0)) for k in keys]
            self._seen.update(trajectories_by_uid(keys, infos, rewards, tokens))

        def _report_complete_draws(self) -> list[str]:
            """Report every draw whose groups all finished; returns the uids the curriculum's ``keep`` dropped."""
            driver = self._dataset().driver
            by_draw: dict[int, list[str]] = {}
            for uid, trajectories in self._seen.items():
                by_draw.setdefault(int(trajectories[0][0][DRAW]), []).append(uid)
            dropped: list[str] = []
            for draw, uids in sorted(by_draw.items()):
                info0 = self._seen[uids[0]][0][0]
                if len(uids) < int(info0[SIZE]):
                    continue
                uids.sort(key=lambda u: int(self._seen[u][0][0][POSITION]))
                rows = [t for u in uids for t in self._seen[u]]  # the legacy adapter's grouping, shared
                groups = group_by_position([t[0] for t in rows], [t[1] for t in rows], [t[2] for t in rows])[draw]
                kept = driver.report(int(info0[ROUND]), draw, groups)
                for u, k in zip(uids, kept, strict=True):
                    del self._seen[u]
                    (self._reported.add(u) if k else dropped.append(u))
            return dropped

        def sample(self, global_steps: int, partition_id: str, batch_size: int) -> tuple[Any, dict]:
            """Report finished draws to aopcore, evict and refill what it drops, then select ``batch_size`` kept groups."""
            if partition_id != "train":
                return super().sample(global_steps, partition_id, batch_size)
            metrics: dict[str, float] = {}
            rounds = 0
            last_debug = time.time()
            while True:
                self._sync_metadata_from_transfer_queue()
                terminal = self.finished_keys["train"] | self.failure_keys["train"]
                new = terminal - self._reported - set(self._seen)
                if new:
                    self._read_new(new)
                dropped = self._report_complete_draws()
                if dropped:
                    self.dropped_groups += len(dropped)
                    metrics["training/aopcore/dropped_groups"] = metrics.get(
                        "training/aopcore/dropped_groups", 0
                    ) + len(dropped)
                    if rounds < MAX_REFILL_ROUNDS:
                        self._clear_groups("train", set(dropped))
                        self._dataset().expect_refill(len(dropped))
                        self.refill_fn(len(dropped))
                        self.refills += 1
                        rounds += 1
                        metrics["training/aopcore/refilled_groups"] = metrics.get(
                            "training/aopcore/refilled_groups", 0
                        ) + len(dropped)
                        continue
                    self._reported.update(dropped)  # out of refills: they train (a tied group has no advantage)
                inflight = len(self.pending_keys["train"]) + len(self.running_keys["train"])
                ready = self._reported & terminal
                if len(ready) >= batch_size and inflight == 0 and not self._seen:
                    selected, snapshot, _ = self._select_prompt_uids("train", ready, batch_size)
                    self._reported.difference_update(selected)
                    return self._materialize_batch("train", selected, snapshot), metrics
                last_debug = self._wait_for_next_poll("train", last_debug)

    AopcoreReplayBuffer.__module__, AopcoreReplayBuffer.__qualname__ = __name__, SAMPLER_NAME
    return AopcoreReplayBuffer


_CLASS: type | None = None


def __getattr__(name: str) -> Any:
    """``AopcoreReplayBuffer`` is built on first lookup (it subclasses veRL's ``ReplayBuffer``; veRL is imported then)."""
    global _CLASS
    if name == SAMPLER_NAME:
        if _CLASS is None:
            _CLASS = _build_class()
        return _CLASS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["AopcoreReplayBuffer", "check_trainer_config", "trajectories_by_uid", "trainer_problems"]  # noqa: F822 (defined lazily by __getattr__)
