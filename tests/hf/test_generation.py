"""Generation backends on a tiny random model: every backend gives the plain path's greedy tokens."""

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from helpers.tiny_models import save_tiny_gpt2  # noqa: E402

PROMPTS = [
    "why",
    "how do i run ? the dog is blue and the sky is red",
    "what is a cat ?",
    "good",
    "the tree is red",
    "yes no yes",
    "i do jump",
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    # a wide initialisation makes the logits peaked: greedy choices are far from ties, so equal tokens are a fair test
    return save_tiny_gpt2(tmp_path_factory.mktemp("gen") / "gpt2", init_range=0.6)


def greedy_ids(model, tok, backend: str, batch_size: int = 3) -> list[list[int]]:
    from aopcore_hf.generation import GenerationSettings, encode_queries, generate_rollouts

    queries = encode_queries(tok, PROMPTS, 64)
    settings = GenerationSettings(max_new_tokens=8, do_sample=False, batch_size=batch_size, backend=backend)
    rollouts = generate_rollouts(model, tok, queries, settings)
    assert [r.query for r in rollouts] == queries  # results follow the order of the queries
    return [r.response for r in rollouts]


@pytest.fixture(scope="module")
def loaded(tiny):
    from aopcore_hf.models import choose_device, load_causal_lm

    return load_causal_lm(str(tiny), choose_device("cpu"))


def test_static_cache_gives_the_plain_greedy_tokens(loaded):
    model, tok = loaded
    plain = greedy_ids(model, tok, "plain")
    # 7 prompts in batches of 3: the static path pads the last batch to 3 rows and every prompt to 128 columns
    assert greedy_ids(model, tok, "static") == plain
    assert len({tuple(r) for r in plain}) > 2 and any(len(r) > 1 for r in plain)


def test_static_cache_under_bf16_autocast_runs(loaded):
    """Rollouts run under autocast when PPO trains in mixed precision: the static cache must take bf16 keys."""
    model, tok = loaded
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = greedy_ids(model, tok, "static")
    assert len(out) == len(PROMPTS) and all(r for r in out)


def test_continuous_batching_gives_the_plain_greedy_tokens(loaded):
    model, tok = loaded
    plain = greedy_ids(model, tok, "plain")
    assert greedy_ids(model, tok, "continuous") == plain
    # the model is left as it was: plain generation and training forwards still work after continuous batching
    assert greedy_ids(model, tok, "plain") == plain
    assert model.config._attn_implementation == "sdpa"


def test_auto_is_plain_on_cpu_and_static_on_cuda():
    from aopcore_hf.generation import resolve_backend

    assert resolve_backend("auto", "cpu") == "plain"
    assert resolve_backend("auto", "cuda") == "static"
    assert resolve_backend("vllm", "cpu") == "plain"  # where the engine is not used (TRL rollouts, multi-process PPO)
    with pytest.raises(ValueError, match="unknown generation backend"):
        resolve_backend("fast", "cpu")


@pytest.mark.parametrize("backend", ["static", "continuous"])
def test_policy_answers_are_the_same_with_every_backend(tiny, backend):
    from aopcore_hf.options import PPOOptions
    from aopcore_hf.ppo import PPOPolicyTrainer

    def answers(name: str) -> list[str]:
        trainer = PPOPolicyTrainer(
            PPOOptions(model=str(tiny), device="cpu", generation_backend=name, eval_max_new_tokens=6, eval_batch_size=4)
        )
        return trainer.generate(tiny, PROMPTS, seed=0)

    assert answers(backend) == answers("plain")


def test_vllm_backend_without_vllm_is_one_clear_error(tiny, monkeypatch):
    monkeypatch.setenv("AOPCORE_VLLM_PYTHON", "")  # set but empty: no vLLM environment, wherever .venv-vllm exists
    from aopcore.errors import InputError
    from aopcore_hf.options import PPOOptions
    from aopcore_hf.ppo import PPOPolicyTrainer

    trainer = PPOPolicyTrainer(PPOOptions(model=str(tiny), device="cpu", generation_backend="vllm"))
    with pytest.raises(InputError, match="scripts/setup-vllm.sh"):
        trainer.generate(tiny, PROMPTS[:2], seed=0)
