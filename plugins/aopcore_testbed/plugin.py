"""Registers the testbed family: verifier reward and judge, the testbed writer, the ``testbed`` data sources and the
``testbed-tiny`` model aliases; and its sequence tier (``aopcore_testbed.sequence``): the ``seq-verifier`` reward and
judge, ``testbed-seq-writer``, the ``testbed-seq`` data sources and the ``testbed-seq`` model aliases."""

from __future__ import annotations

from aopcore import hookimpl
from aopcore.registry import LazyFactory
from aopcore_testbed.options import VerifierJudgeOptions, VerifierRewardOptions, WriterOptions
from aopcore_testbed.sequence.options import SequenceJudgeOptions, SequenceRewardOptions


@hookimpl
def register_reward_models(register):
    register(
        "verifier",
        LazyFactory(
            "aopcore_testbed.verifier:VerifierReward",
            doc="Testbed: 1 if the answer is correct, from the question text alone",
        ),
        options=VerifierRewardOptions,
    )
    register(
        "seq-verifier",
        LazyFactory(
            "aopcore_testbed.sequence.verifier:SequenceReward",
            doc="Testbed sequence tier: the reasoning-gym task's own score of the answer, from the question text",
        ),
        options=SequenceRewardOptions,
    )


@hookimpl
def register_judges(register):
    register(
        "verifier",
        LazyFactory(
            "aopcore_testbed.verifier:VerifierJudge", doc="Testbed: a correct answer beats a wrong one, else a tie"
        ),
        options=VerifierJudgeOptions,
    )
    register(
        "seq-verifier",
        LazyFactory(
            "aopcore_testbed.sequence.verifier:SequenceJudge",
            doc="Testbed sequence tier: the answer the task scores higher wins, else a tie",
        ),
        options=SequenceJudgeOptions,
    )


@hookimpl
def register_feedback_llms(register):
    register(
        "testbed-writer",
        LazyFactory(
            "aopcore_testbed.writer:TestbedWriter",
            doc="Testbed: writes checkable questions in the categories a prompt asks for",
        ),
        options=WriterOptions,
    )
    register(
        "testbed-seq-writer",
        LazyFactory(
            "aopcore_testbed.sequence.writer:SequenceWriter",
            doc="Testbed sequence tier: writes new reasoning-gym questions of the task and level a prompt asks for",
        ),
        options=WriterOptions,
    )


@hookimpl
def register_data_sources(register):
    from aopcore_testbed.sets import load

    register("testbed", load)

    from aopcore_testbed.sequence.sets import load as load_sequence

    register("testbed-seq", load_sequence)


@hookimpl
def register_curricula(register):
    from aopcore_testbed.oracle import OracleOptions

    register(
        "oracle",
        LazyFactory(
            "aopcore_testbed.oracle:OracleCurriculum",
            doc="Testbed positive control: every step by p(1 - p) of pass rates measured on the whole pool (or categories weighted by measured learning gain)",
        ),
        options=OracleOptions,
    )


@hookimpl
def register_model_aliases(register):
    def build(name: str):
        def folder(models_dir):
            if name.startswith("testbed-seq"):
                from aopcore_testbed.sequence.model import ensure_alias as ensure_sequence

                return ensure_sequence(name, models_dir)
            from aopcore_testbed.model import ensure_alias  # torch: only when the alias is resolved

            return ensure_alias(name, models_dir)

        return folder

    register(
        "testbed-tiny",
        build("testbed-tiny"),
        module="aopcore_testbed",
        source="aopcore's testbed family (shipped weights, copied into the cache on first use)",
    )
    register(
        "testbed-tiny-base",
        build("testbed-tiny-base"),
        module="aopcore_testbed",
        source="aopcore's testbed family (random initialisation from a seed, built on first use)",
    )
    register(
        "testbed-seq",
        build("testbed-seq"),
        module="aopcore_testbed",
        source="aopcore's testbed family, sequence tier (shipped weights, copied into the cache on first use)",
    )
    register(
        "testbed-seq-base",
        build("testbed-seq-base"),
        module="aopcore_testbed",
        source="aopcore's testbed family, sequence tier (random initialisation from a seed, built on first use)",
    )
