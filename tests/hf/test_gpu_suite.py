"""The PPO memory and precision options on CPU: each runs, and those that must not change the math do not."""

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from aopcore import Prompt  # noqa: E402

from helpers.tiny_models import WordReward, save_tiny_gpt2  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.gpu]  # the GPU suite's options, run on the CPU

KEYS = (
    "objective/kl",
    "objective/scores",
    "loss/policy_avg",
    "loss/value_avg",
    "policy/approxkl_avg",
    "val/ratio",
    "objective/entropy",
    "tokens/response_len_mean",
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return save_tiny_gpt2(tmp_path_factory.mktemp("opts") / "gpt2", init_range=0.3)


PROMPTS = [
    "why is the sky blue ?",
    "how do i run",
    "what is a dog ?",
    "yes",
    "the tree is red",
    "i jump",
    "good cat",
    "no",
] * 2


def train(
    tiny: Path, out: Path, *, generation_batch: int | None = None, **options
) -> tuple[list[dict], dict[str, torch.Tensor]]:
    """Two greedy PPO steps (greedy rollouts: every run trains on the same responses); metrics and saved weights."""
    from safetensors.torch import load_file

    from aopcore_hf.options import PPOOptions
    from aopcore_hf.ppo import PPOPolicyTrainer

    opts = PPOOptions(
        model=str(tiny),
        device="cpu",
        dtype="float32",
        learning_rate=2e-3,
        batch_size=8,
        mini_batch_size=4,
        ppo_epochs=2,
        generation={"max_new_tokens": 6, "do_sample": False, "batch_size": generation_batch},
        **options,
    )
    out.mkdir(parents=True)
    stats = PPOPolicyTrainer(opts).train(
        tiny, [Prompt(str(i), p, "c") for i, p in enumerate(PROMPTS)], WordReward(), passes=1, out=out, seed=3
    )
    return stats.metrics, load_file(str(out / "model.safetensors"))


@pytest.fixture(scope="module")
def baseline(tiny, tmp_path_factory):
    return train(tiny, tmp_path_factory.mktemp("base") / "out", mixed_precision="no")


def assert_same(a: tuple[list[dict], dict], b: tuple[list[dict], dict], *, atol: float = 1e-5) -> None:
    (ma, wa), (mb, wb) = a, b
    assert len(ma) == len(mb) == 2
    for step_a, step_b in zip(ma, mb):
        for key in KEYS:
            assert step_a[key] == pytest.approx(step_b[key], abs=atol, rel=1e-4), key
    for name in wa:
        torch.testing.assert_close(wa[name], wb[name], atol=atol, rtol=1e-4, msg=name)


@pytest.mark.parametrize(
    "options",
    [
        {"gradient_checkpointing": True},
        {"generation_batch": 3},
        {"reference_placement": "offload"},
        {"reference_placement": "cpu"},
    ],
    ids=["gradient-checkpointing", "generation-batch-3", "ref-offload", "ref-cpu"],
)
def test_memory_options_leave_the_math_unchanged(tiny, tmp_path, baseline, options):
    from safetensors.torch import load_file

    result = train(tiny, tmp_path / "out", mixed_precision="no", **options)
    assert_same(result, baseline)
    start = load_file(str(tiny / "model.safetensors"))
    assert any(not torch.equal(start[n], result[1][n]) for n in start)  # the policy did train


def test_bf16_autocast_keeps_float32_master_weights_and_agrees_with_float32(tiny, tmp_path, baseline):
    metrics, weights = train(tiny, tmp_path / "out", mixed_precision="bf16")
    assert all(w.dtype == torch.float32 for w in weights.values())  # master weights, so Adam's small updates land
    base_metrics, base_weights = baseline
    assert any(not torch.equal(weights[n], base_weights[n]) for n in weights)  # autocast did change the arithmetic
    first, base = metrics[0], base_metrics[0]  # the same greedy rollouts: losses within bf16's precision
    assert first["objective/scores"] == base["objective/scores"]
    assert abs(first["objective/kl"] - base["objective/kl"]) < 0.05
    assert first["loss/value_avg"] == pytest.approx(base["loss/value_avg"], rel=0.05, abs=1e-3)


def test_gradient_checkpointing_recomputes_the_layers(tiny):
    """The option really checkpoints: each block runs again in the backward pass."""
    from aopcore_hf.models import choose_device, load_causal_lm
    from aopcore_hf.ppo.memory import enable_gradient_checkpointing

    def block_calls(checkpointing: bool) -> int:
        model, _ = load_causal_lm(str(tiny), choose_device("cpu", "float32"))
        if checkpointing:
            enable_gradient_checkpointing(model)
        model.train()
        calls = []
        model.transformer.h[0].attn.register_forward_pre_hook(
            lambda *a: calls.append(1)
        )  # inside the checkpointed block
        model(input_ids=torch.tensor([[3, 4, 5, 6]]), use_cache=False).logits.sum().backward()
        return len(calls)

    assert block_calls(False) == 1 and block_calls(True) == 2
