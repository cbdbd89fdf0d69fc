"""Judges that need no network: the reward-margin judge and a judge over any FeedbackLLM."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from aopcore import InputError, JudgeItem, Verdict, record_usage
from aopcore.judge_prompt import judge_prompt, parse_choice


class MarginOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    margin: float = Field(0.05, ge=0, description="Reward differences within this margin are ties (C).")


class RewardMarginJudge:
    """Prefers the answer the experiment's reward model scores higher; a tie within ``margin``.

    Cheap and offline, but it shares the reward model's blind spots: it measures how
    well each arm optimised that reward, not an independent preference.
    """

    Options = MarginOptions

    def __init__(self, options: MarginOptions) -> None:
        self.options = options
        self.reward = None

    def bind(self, components: dict[str, Any]) -> None:
        self.reward = components.get("reward")

    def judge(self, items: Sequence[JudgeItem]) -> list[Verdict]:
        if self.reward is None:
            raise InputError("judge 'reward-margin' needs the experiment's reward model (none was bound)")
        questions = [it.question for it in items]
        a = self.reward.score(questions, [it.answer_a for it in items])
        b = self.reward.score(questions, [it.answer_b for it in items])
        record_usage(judge_calls=len(items))
        out = []
        for it, ra, rb in zip(items, a, b):
            diff = ra - rb
            choice = "C" if abs(diff) <= self.options.margin else ("A" if diff > 0 else "B")
            out.append(Verdict(it.id, choice, raw=f"{ra:.4f} vs {rb:.4f}"))
        return out


class FeedbackJudgeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FeedbackLLMJudge:
    """Asks the experiment's [feedback] LLM the paper's judge prompt and parses A, B or C."""

    Options = FeedbackJudgeOptions

    def __init__(self, options: FeedbackJudgeOptions) -> None:
        self.llm = None

    def bind(self, components: dict[str, Any]) -> None:
        self.llm = components.get("feedback")

    def judge(self, items: Sequence[JudgeItem]) -> list[Verdict]:
        if self.llm is None:
            raise InputError("judge 'feedback-llm' needs a [feedback] section")
        replies = self.llm.complete([judge_prompt(it.question, it.answer_a, it.answer_b) for it in items])
        record_usage(judge_calls=len(items))
        return [Verdict(it.id, parse_choice(r), raw=(r or "")[:200]) for it, r in zip(items, replies)]
