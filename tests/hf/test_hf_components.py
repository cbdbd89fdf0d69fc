"""Generation, reward models and embeddings: on tiny random models (fast) and on the packaged models (slow)."""

import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from helpers.tiny_models import save_tiny_classifier, save_tiny_gpt2, save_tiny_t5  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return {
        "gpt2": save_tiny_gpt2(root / "gpt2", init_range=0.6),
        "cls": save_tiny_classifier(root / "cls"),
        "t5": save_tiny_t5(root / "t5"),
    }


def test_length_sorted_batches_equal_one_at_a_time(tiny):
    from aopcore_hf.generation import (
        GenerationSettings,
        decode_responses,
        encode_queries,
        generate_rollouts,
    )
    from aopcore_hf.models import choose_device, load_causal_lm

    model, tok = load_causal_lm(str(tiny["gpt2"]), choose_device("cpu"))
    prompts = ["why", "how do i run ? the dog is blue and the sky is red", "what is a cat ?", "good"] * 3
    queries = encode_queries(tok, prompts, 64)
    settings = GenerationSettings(max_new_tokens=6, do_sample=False, batch_size=5)
    batched = decode_responses(tok, generate_rollouts(model, tok, queries, settings))
    single = [decode_responses(tok, generate_rollouts(model, tok, [q], settings))[0] for q in queries]
    assert batched == single
    assert len(set(batched)) > 1


def test_policy_generate_is_seeded_and_counts_tokens(tiny, tmp_path):
    from aopcore.ledger import StageMeter
    from aopcore_hf.options import PPOOptions
    from aopcore_hf.ppo import PPOPolicyTrainer

    trainer = PPOPolicyTrainer(PPOOptions(model=str(tiny["gpt2"]), device="cpu", eval_max_new_tokens=5))
    trainer.initial_policy(tmp_path, seed=0)
    with StageMeter("t") as meter:
        a = trainer.generate(tmp_path, ["why is the sky blue ?"] * 4, seed=1, sample=True)
    b = trainer.generate(tmp_path, ["why is the sky blue ?"] * 4, seed=1, sample=True)
    assert a == b and meter.counts["tokens_generated"] > 0


def test_sequence_classifier_is_batched_deterministic_and_truncation_safe(tiny):
    from aopcore_hf.rewards import ClassifierOptions, SequenceClassifierReward

    rm = SequenceClassifierReward(ClassifierOptions(model=str(tiny["cls"]), device="cpu", batch_size=3, max_length=32))
    prompts = ["how do i run ?", "why is the sky blue ?" * 40, "what is a cat ?", "do i jump ?"]
    answers = ["good dog", "blue " * 200, "a cat is a cat", ""]
    batched = rm.score(prompts, answers)
    single = [rm.score([p], [a])[0] for p, a in zip(prompts, answers)]
    assert batched == pytest.approx(single, abs=1e-5)
    assert rm.score(prompts, answers) == batched
    assert len(set(round(x, 6) for x in batched)) > 1


def test_steamshp_scores_probability_of_a(tiny):
    from aopcore_hf.rewards import SteamSHPOptions, SteamSHPReward

    rm = SteamSHPReward(SteamSHPOptions(model=str(tiny["t5"]), device="cpu", batch_size=2, max_length=64))
    scores = rm.score(["why is the sky blue ?"] * 3 + ["cat " * 300], ["blue sky", "good", "no", "dog"])
    assert all(0.0 < s < 1.0 for s in scores)
    assert scores == pytest.approx(
        [
            rm.score([p], [a])[0]
            for p, a in zip(["why is the sky blue ?"] * 3 + ["cat " * 300], ["blue sky", "good", "no", "dog"])
        ],
        abs=1e-5,
    )


@pytest.mark.slow
def test_offline_relevance_reward_and_embedder():
    from aopcore_hf.embedder import EmbedderOptions, SentenceEmbedder
    from aopcore_hf.rewards import OfflineRelevanceReward, RelevanceOptions

    emb = SentenceEmbedder(EmbedderOptions())
    vecs = emb.embed(["How do I bake bread?", "Tips for baking a loaf of bread", "Who won the 1998 World Cup?"])
    assert vecs.shape == (3, 384)
    assert float(vecs[0] @ vecs[1]) > float(vecs[0] @ vecs[2]) + 0.2
    rm = OfflineRelevanceReward(RelevanceOptions())
    q = "How do I keep my sourdough starter alive while on vacation?"
    on_topic = (
        "Feed the starter, let it rise an hour, then keep it in the fridge; it survives two weeks without feeding."
    )
    scores = rm.score(
        [q] * 4,
        [
            on_topic,
            "The Eiffel Tower is in Paris and was finished in 1889 for a world fair.",
            "",
            "bread bread bread bread bread bread bread bread",
        ],
    )
    assert scores[0] > scores[1] > scores[2]
    assert scores[0] > scores[3]
    assert rm.score([q], [on_topic])[0] == pytest.approx(scores[0], abs=1e-5)


@pytest.mark.slow
def test_packaged_smollm2_converts_once_and_answers(tmp_path_factory):
    from aopcore import JudgeItem
    from aopcore_hf.feedback import LocalJudgeOptions, LocalModelJudge
    from aopcore_hf.models import resolve_model
    from aopcore_hf.options import PPOOptions
    from aopcore_hf.ppo import PPOPolicyTrainer

    folder = Path(resolve_model("smollm2-135m-instruct"))
    assert (folder / "config.json").exists() and (folder / "model.safetensors").exists()
    trainer = PPOPolicyTrainer(PPOOptions(eval_max_new_tokens=12))
    p0 = tmp_path_factory.mktemp("p0")
    trainer.initial_policy(p0, seed=0)
    answer = trainer.generate(p0, ["What is the capital of France?"], seed=0)[0]
    assert "Paris" in answer
    judge = LocalModelJudge(LocalJudgeOptions())
    verdicts = judge.judge([JudgeItem("1", "What is the capital of France?", "Paris.", "I like turtles.")])
    assert verdicts[0].choice in {"A", "B", "C"} and verdicts[0].raw.startswith("P(A)=")


def test_import_paths_the_docs_published_still_work_for_a_release():
    """The PPO and vLLM files became packages; the old module paths are thin re-exports of the new ones."""
    import aopcore_hf.ppo_launch as old_launch
    import aopcore_hf.vllm_feedback as old_feedback
    import aopcore_hf.vllm_serve as old_serve
    from aopcore_hf.ppo import PPOPolicyTrainer, launch
    from aopcore_hf.ppo.trainer import PPOPolicyTrainer as trainer_class
    from aopcore_hf.vllm import feedback, serve

    assert PPOPolicyTrainer is trainer_class
    assert old_launch.main is launch.main and old_launch.launch_command is launch.launch_command
    assert old_feedback.VLLMFeedbackLLM is feedback.VLLMFeedbackLLM and old_feedback.VLLMJudge is feedback.VLLMJudge
    assert old_serve.main is serve.main
    for module in ("aopcore_hf.ppo_launch", "aopcore_hf.vllm_serve"):
        out = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=120)
        assert out.returncode in (0, 2) and "usage: python -m aopcore_hf." in out.stdout + out.stderr, (
            module,
            out.stderr,
        )
