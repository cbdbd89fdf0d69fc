"""An aopcore curriculum as prime-rl's TaskSampler and AdmissionGate (prime-rl's curriculum API, PR #3261).

prime-rl's orchestrator asks a training source's ``Curriculum`` for tasks (``next(curriculum.sampler)``, one per
rollout group) and reports every finalized group (``Curriculum.on_result``: ``sampler.observe(group)``, then each
gate's ``admit(group)``; the group trains only if every gate admits it, and a rejected group makes the orchestrator
sample again). Checkpoints keep ``sampler.state_dict()`` and each gate's; ``metrics()`` is logged under
``curriculum/<env>/sampler/``. The mapping:

    next(sampler)           -> GroupFeed.next(): one draw of one prompt, as the task `to_task(prompt)`
    sampler.observe(group)  -> GroupFeed.result(draw, rewards): the group's trace rewards reach the curriculum
    gate.admit(group)       -> what the selector's keep(group) said in observe (a rejection is booked)
    state_dict / load       -> the stream's position and log (a resume draws what the interrupted run drew)

prime-rl builds its sampler and gates from config types (``standard``, ``difficulty_pool``, ``advantage_range``);
it has no key that loads a class by path, so install these where the orchestrator has built its ``TrainSource``
and before it loads a checkpoint::

    curriculum = train_source.curricula[env_name]
    curriculum.sampler = AopcoreTaskSampler(session, to_task, draws_per_round=512, lag=1024)
    curriculum.gates["aopcore"] = AopcoreGate(curriculum.sampler)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from aopcore_integrations.groups import GroupFeed

try:
    from prime_rl.orchestrator.curriculum import AdmissionGate, TaskSampler
except ImportError:  # outside prime-rl (aopcore's own tests drive these with stand-ins of the same methods)
    TaskSampler = AdmissionGate = object  # type: ignore[misc,assignment]


class AopcoreTaskSampler(TaskSampler):  # type: ignore[misc,valid-type]
    """Tasks chosen by a CurriculumSession; every finalized group's rewards go back to it.

    ``to_task(prompt) -> vf.Task`` makes the env's task from an aopcore Prompt (``prompt.text``, ``prompt.id``,
    ``prompt.metadata.get("answer")``), or looks it up when the curriculum's pool is the taskset.
    ``lag``: the most groups in flight at once (``concurrency.max_inflight`` bounds it).
    """

    def __init__(
        self,
        session: Any,
        to_task: Callable[[Any], Any],
        *,
        draws_per_round: int,
        lag: int,
        generate: Callable[..., Any] | None = None,
    ) -> None:
        self.feed = GroupFeed(session, draws_per_round=draws_per_round, lag=lag, generate=generate)
        self.to_task = to_task
        self.in_flight: dict[str, deque[int]] = {}  # Task.key -> its draws not yet observed, oldest first
        self.decision: tuple[int, bool] | None = None  # (id of the group observed last, keep)

    def __next__(self) -> Any:
        g, prompt = self.feed.next()
        task = self.to_task(prompt)
        self.in_flight.setdefault(task.key, deque()).append(g)
        return task

    def observe(self, group: list[Any]) -> None:
        key = group[0].task.key
        pending = self.in_flight.get(key)
        if not pending:  # drawn before a resume (the orchestrator restarted): not this run's
            self.decision = (id(group), True)
            return
        g = pending.popleft()  # the same task in flight twice: its groups match its draws first in, first out
        traces = [t for episode in group for t in episode.traces if not t.has_error and t.agent.trainable]
        tokens = sum(episode.num_output_tokens for episode in group)
        keep = self.feed.result(g, [t.reward for t in traces], tokens=tokens)
        self.decision = (id(group), keep)

    def state_dict(self) -> dict[str, Any]:
        return self.feed.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.in_flight.clear()  # the orchestrator does not resume groups that were in flight
        self.feed.load_state_dict(state_dict)

    def metrics(self) -> dict[str, float]:
        return self.feed.metrics()


class AopcoreGate(AdmissionGate):  # type: ignore[misc,valid-type]
    """Admits what the curriculum's ``keep`` kept (``Curriculum.on_result`` calls observe first, then admit)."""

    def __init__(self, sampler: AopcoreTaskSampler) -> None:
        self.sampler = sampler

    def admit(self, group: list[Any]) -> bool:
        if self.sampler.decision is None or self.sampler.decision[0] != id(group):
            raise RuntimeError("AopcoreGate.admit: the sampler did not observe this group first")
        return self.sampler.decision[1]

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        pass

    def metrics(self) -> dict[str, float]:
        return {}
