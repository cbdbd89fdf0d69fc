"""Option models of the testbed family: pure pydantic, so listing and validating plugins imports nothing heavy."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Opts(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VerifierRewardOptions(_Opts):
    correct: float = Field(1.0, description="Reward for a correct answer.")
    wrong: float = Field(0.0, description="Reward for a wrong answer.")
    unverifiable: float = Field(
        0.0,
        description="Reward when the question is not a testbed question (e.g. a local LLM wrote "
        "something else): nothing can be checked, so nothing is earned.",
    )


class VerifierJudgeOptions(_Opts):
    pass


class WriterOptions(_Opts):
    seed: int = Field(
        0, description="With the prompt text, fixes every draw: the same request always gets the same reply."
    )
    preamble: bool = Field(
        True,
        description="Start replies with a line like 'Here are 5 questions:', as chat models do "
        "(the parser has to drop it).",
    )
    focus: float = Field(
        2.0,
        ge=0,
        description="llm targeting: how strongly questions go to the low-scoring domains of the "
        "prompt's summary (weight = (1 - score) ** focus; 0 spreads them evenly).",
    )
