"""The objects an experiment works with, as its stages use them: each adapted from a plain callable where one was
given (:mod:`aopcore.callables`), and the feedback LLM and judge counted (:mod:`aopcore.ledger`).

Built from the objects as given, never from these again, so an experiment copied with
:func:`dataclasses.replace` wraps the user's objects once (a counter around a counter would count nothing twice,
but would hide which object the user gave).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aopcore import contracts
from aopcore.ledger import counted_feedback, counted_judge
from aopcore.protocols import Embedder, FeedbackLLM, Judge, PolicyTrainer, PromptCurriculum, RewardModel
from aopcore.records import Question

ROLES = ("trainer", "reward", "judge", "feedback", "embedder")


@dataclass(frozen=True)
class Collaborators:
    trainer: PolicyTrainer
    reward: RewardModel
    arms: Mapping[str, PromptCurriculum]
    heldout: Sequence[Question]
    test_prompts: Sequence[Question]
    judge: Judge | None = None
    feedback: FeedbackLLM | None = None
    embedder: Embedder | None = None
    counted_feedback: FeedbackLLM | None = None  # the feedback LLM as curricula call it (calls booked)
    counted_judge: Judge | None = None  # the judge as the judging stages call it

    @classmethod
    def adapt(
        cls,
        *,
        trainer: Any,
        reward: Any,
        arms: Mapping[str, Any],
        heldout: Sequence[Question],
        test_prompts: Sequence[Question],
        judge: Any = None,
        feedback: Any = None,
        embedder: Any = None,
    ) -> Collaborators:
        """Plain callables become components (a TRL-style reward function, ...); not counted yet (:meth:`counted`),
        so that the checks name the user's own objects."""
        reward = contracts.adapt("reward", reward)
        if isinstance(reward, contracts.RewardFunction):
            reward.learn_categories((q.text, q.category) for q in [*heldout, *test_prompts])
        return cls(
            trainer=trainer,
            reward=reward,
            arms={arm: contracts.adapt("curriculum", c) for arm, c in arms.items()},
            heldout=heldout,
            test_prompts=test_prompts,
            judge=contracts.adapt("judge", judge),
            feedback=contracts.adapt("feedback", feedback),
            embedder=contracts.adapt("embedder", embedder),
        )

    def counted(self) -> Collaborators:
        """Calls are counted by the experiment unless the component books them itself."""
        return dataclasses.replace(
            self, counted_feedback=counted_feedback(self.feedback), counted_judge=counted_judge(self.judge)
        )

    def components(self) -> list[Any]:
        """Every component the experiment holds, each once: those of :data:`ROLES` and the arms' curricula."""
        found = [c for c in (*(self.component(r) for r in ROLES), *self.arms.values()) if c is not None]
        return list({id(c): c for c in found}.values())

    def component(self, role: str) -> Any:
        """The component of ``role`` (one of :data:`ROLES`), or None."""
        return getattr(self, role)
