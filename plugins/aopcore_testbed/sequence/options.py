"""Option models of the sequence tier: pure pydantic, so listing and validating plugins imports nothing heavy."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Opts(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SequenceRewardOptions(_Opts):
    exact: bool = Field(
        False,
        description="Reward 1 only for an answer the task scores 1, else 0. Default: the task's own score, partial "
        "credit included (reasoning-gym's score_answer, e.g. the share of letters in place for spell_backward).",
    )
    unverifiable: float = Field(
        0.0,
        description="Reward when the question is none of the tier's tasks (e.g. a local LLM wrote something else).",
    )


class SequenceJudgeOptions(_Opts):
    exact: bool = Field(
        False,
        description="Compare answers by whether the task scores them 1 (right beats wrong; two wrong answers tie), as "
        "an exact reward does. Default: the higher task score wins, partial credit included.",
    )
