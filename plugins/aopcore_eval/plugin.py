"""Registers the evaluation family's judges."""
from __future__ import annotations

from aopcore import hookimpl
from aopcore_eval.judges import FeedbackLLMJudge, RewardMarginJudge


@hookimpl
def register_judges(register):
    register("reward-margin", RewardMarginJudge)
    register("feedback-llm", FeedbackLLMJudge)


@hookimpl
def register_commands(subparsers):
    from aopcore_eval.commands import add_commands

    add_commands(subparsers)
