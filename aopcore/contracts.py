"""Component contracts: checked up front, adapted from plain callables, and checked at every call.

One import for the three parts, each a module of its own: :mod:`aopcore.component_checks` (each component
against its protocol before the first stage), :mod:`aopcore.callables` (plain callables as components:
:func:`adapt`, :class:`RewardFunction`, ...) and :mod:`aopcore.output_checks` (rewards, counts, policies and
train stats checked where they enter, :class:`BadComponentOutput`).
"""

from __future__ import annotations

from aopcore.callables import (
    ADAPTERS,
    CurriculumFunction,
    EmbedFunction,
    FeedbackFunction,
    JudgeFunction,
    RewardFunction,
    adapt,
    reward_columns_problem,
    uniform_reward_warning,
)
from aopcore.component_checks import (
    CALLS,
    NOT_TRAIN_STATS,
    PROTOCOL,
    accepts_keyword,
    check_component,
    component_name,
    is_proxy,
    takes_keyword,
)
from aopcore.output_checks import (
    BadComponentOutput,
    CheckedReward,
    checked_reward,
    checked_rewards,
    count_problem,
    output_list,
    policy_problem,
    train_stats,
)

__all__ = [
    "ADAPTERS",
    "CALLS",
    "NOT_TRAIN_STATS",
    "PROTOCOL",
    "BadComponentOutput",
    "CheckedReward",
    "CurriculumFunction",
    "EmbedFunction",
    "FeedbackFunction",
    "JudgeFunction",
    "RewardFunction",
    "accepts_keyword",
    "adapt",
    "check_component",
    "checked_reward",
    "checked_rewards",
    "component_name",
    "count_problem",
    "is_proxy",
    "output_list",
    "policy_problem",
    "reward_columns_problem",
    "takes_keyword",
    "train_stats",
    "uniform_reward_warning",
]
