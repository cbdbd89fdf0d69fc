"""Registers the curricula through the same hook a third-party plugin uses."""

from __future__ import annotations

from aopcore import hookimpl
from aopcore.registry import LazyFactory
from aopcore_curricula.options import (
    AdaRFTOptions,
    CategoryBanditOptions,
    DynamicFilterOptions,
    EvaOptions,
    LearnabilityOptions,
    MoppsOptions,
    PoolOptions,
    ScoreBasedOptions,
    SpeedOptions,
    SwSOptions,
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
    register(
        "sws",
        LazyFactory(
            "aopcore_curricula.sws:SwSCurriculum",
            requires=("feedback",),
            doc="SwS (arXiv 2506.08989): new problems from the concepts of failed ones, by failure ratio per category",
        ),
        options=SwSOptions,
    )
    register(
        "mopps",
        LazyFactory(
            "aopcore_curricula.mopps:MoppsCurriculum",
            doc="Online: MoPPS (arXiv 2507.04632), Beta posterior per prompt, Thompson sampling towards a target rate",
        ),
        options=MoppsOptions,
    )
    register(
        "speed",
        LazyFactory(
            "aopcore_curricula.speed:SpeedCurriculum",
            doc="SPEED-RL (arXiv 2506.09016): screen candidates with a few samples, keep pass rates strictly in (0, 1)",
        ),
        options=SpeedOptions,
    )
    register(
        "adarft",
        LazyFactory(
            "aopcore_curricula.adarft:AdaRFTCurriculum",
            doc="Online: AdaRFT (arXiv 2504.05520), prompts nearest a target difficulty that the reward moves",
        ),
        options=AdaRFTOptions,
    )
