"""Registers the curricula through the same hook a third-party plugin uses."""

from __future__ import annotations

from aopcore import hookimpl
from aopcore.registry import LazyFactory
from aopcore_curricula.options import (
    CategoryBanditOptions,
    DynamicFilterOptions,
    EvaOptions,
    LearnabilityOptions,
    PoolOptions,
    ScoreBasedOptions,
    VanillaGenerationOptions,
)


@hookimpl
def register_curricula(register):
    register(
        "vanilla",
        LazyFactory(
            "aopcore_curricula.curricula:VanillaCurriculum",
            requires=("feedback",),
            doc="Static synthetic prompts from category keywords, split over iterations",
        ),
        options=VanillaGenerationOptions,
    )
    register(
        "sop",
        LazyFactory(
            "aopcore_curricula.curricula:SOPCurriculum",
            requires=("feedback",),
            doc="Starts-On-Policy: score-based prompts written once from the SFT policy",
        ),
        options=ScoreBasedOptions,
    )
    register(
        "aop",
        LazyFactory(
            "aopcore_curricula.curricula:AOPCurriculum",
            requires=("feedback",),
            doc="Always-On-Policy: score-based prompts rewritten every iteration",
        ),
        options=ScoreBasedOptions,
    )
    register(
        "eva",
        LazyFactory(
            "aopcore_curricula.curricula:EvaCurriculum",
            requires=("feedback",),
            doc="eva-style: candidates whose sampled answers differ most in reward",
        ),
        options=EvaOptions,
    )
    register(
        "pool",
        LazyFactory(
            "aopcore_curricula.curricula:PoolCurriculum",
            requires=("embedder",),
            doc="No feedback LLM: weak categories, similar to high-scoring questions",
        ),
        options=PoolOptions,
    )
    register(
        "learnability",
        LazyFactory(
            "aopcore_curricula.online:LearnabilityCurriculum",
            doc="Online: per-step sampling by learnability p(1-p) of each prompt's pass rate",
        ),
        options=LearnabilityOptions,
    )
    register(
        "dynamic-filter",
        LazyFactory(
            "aopcore_curricula.online:DynamicFilterCurriculum",
            doc="Online: wraps a curriculum, drops or skips prompts whose rollouts all score alike",
        ),
        options=DynamicFilterOptions,
    )
    register(
        "category-bandit",
        LazyFactory(
            "aopcore_curricula.online:CategoryBanditCurriculum",
            doc="Online: SEC-style bandit over categories, rewarded by absolute advantage",
        ),
        options=CategoryBanditOptions,
    )
