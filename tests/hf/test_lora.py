"""LoRA adapters (``[trainer.lora]``, ``[trainer.sft] lora``): a stage trains adapters and saves a plain model whose
weights are its input's plus a low-rank update, exactly; the sampling copy computes the adapted model and gives the
frozen weights back bit for bit."""

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")
from pydantic import ValidationError  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from aopcore import Prompt  # noqa: E402
from aopcore_hf import lora  # noqa: E402
from aopcore_hf.options import PPOOptions, SFTOptions  # noqa: E402

from helpers.tiny_models import WordReward, save_tiny_gpt2  # noqa: E402

PROMPTS = [
    Prompt(f"p{i}", text, "c")
    for i, text in enumerate(["how do i run ?", "why is the sky blue ?", "what is a cat ?", "how do i jump ?"] * 4)
]
ADAPTED = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


@pytest.fixture(scope="module")
def tiny_policy(tmp_path_factory) -> Path:
    """Weights of a trained model's scale (std 0.2): under GPT-2's 0.02 the layers' outputs are so small that only
    the embeddings (which LoRA leaves frozen) can move the tiny model's answers."""
    return save_tiny_gpt2(tmp_path_factory.mktemp("tiny") / "gpt2", init_range=0.2)


def assert_low_rank_update(before: dict, after: dict, rank: int) -> None:
    """Only the adapted layers moved, each by a matrix of rank <= ``rank``; everything else is bit-identical. Any
    rounding of the frozen weights (a bf16 round trip, a merge and unmerge) would be a full-rank change."""
    assert set(after) == set(before)  # a plain model: no adapter tensors saved
    moved = 0
    for name, w in before.items():
        if name.endswith(ADAPTED):
            change = (after[name].double() - w.double()).abs().max()
            assert after[name].dtype == w.dtype
            if change > 0:
                moved += 1
                assert torch.linalg.matrix_rank(after[name].double() - w.double(), rtol=1e-5) <= rank, name
        else:
            assert torch.equal(after[name], w), f"{name} is frozen but changed"
    assert moved >= len(ADAPTED), "training moved no adapted layer"


def mean_reward(trainer, policy: Path, reward: WordReward) -> float:
    texts = [p.text for p in PROMPTS]
    return sum(reward.score(texts, trainer.generate(policy, texts, seed=0))) / len(texts)


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["no", "bf16"])
def test_ppo_with_lora_learns_and_saves_its_input_plus_a_low_rank_update(tiny_policy, tmp_path, precision):
    """Under bf16 autocast the frozen weights are held in bf16 during the stage; the saved float32 weights must
    still be the input's exactly (the update is added to a fresh float32 read, not to the bf16 copy)."""
    from aopcore_hf.ppo import PPOPolicyTrainer

    trainer = PPOPolicyTrainer(
        PPOOptions(
            model=str(tiny_policy),
            device="cpu",
            learning_rate=1e-2,
            batch_size=16,
            mini_batch_size=8,
            ppo_epochs=4,
            init_kl_coef=0.01,
            mixed_precision=precision,
            lora={"r": 4, "alpha": 8},
            generation={"max_new_tokens": 8, "temperature": 1.0},
            eval_do_sample=True,
            eval_max_new_tokens=8,
        )
    )
    p0, p1 = tmp_path / "p0", tmp_path / "p1"
    p0.mkdir()
    p1.mkdir()
    trainer.initial_policy(p0, seed=0)
    reward = WordReward("good")
    before = mean_reward(trainer, p0, reward)
    stats = trainer.train(p0, PROMPTS, reward, passes=12, out=p1, seed=0)
    after = mean_reward(trainer, p1, reward)
    assert stats.metrics[0]["objective/kl"] == 0.0  # fresh adapters (B = 0): the first step's policy is the reference
    assert after > before + 0.3, (before, after)
    assert_low_rank_update(load_file(tiny_policy / "model.safetensors"), load_file(p1 / "model.safetensors"), rank=4)


def test_sampling_computes_the_adapted_model_and_restores_the_frozen_weights(tiny_policy):
    from transformers import AutoModelForCausalLM

    model = lora.attach(AutoModelForCausalLM.from_pretrained(tiny_policy), lora.LoraOptions(r=2, alpha=4))
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.5)  # an update as training leaves it (fresh adapters change nothing)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    ids = torch.tensor([[3, 4, 5, 6, 7]])
    with torch.no_grad():
        adapted = model(input_ids=ids).logits
        base = model.get_base_model()
        with model.disable_adapter():
            plain = model(input_ids=ids).logits
        with lora.sampling(model) as sampler:
            folded = sampler(input_ids=ids).logits
            inside = base.get_submodule("transformer.h.0.attn.c_attn").get_base_layer().weight
            assert not torch.equal(inside, frozen["base_model.model.transformer.h.0.attn.c_attn.base_layer.weight"])
    assert not torch.allclose(adapted, plain, atol=1e-3)  # the adapters matter here
    torch.testing.assert_close(folded, adapted, rtol=1e-4, atol=1e-5)
    for name, p in model.named_parameters():
        if name in frozen:
            assert torch.equal(p, frozen[name]), f"{name} not restored bit for bit"


def test_lora_refuses_rollouts_through_vllm():
    with pytest.raises(ValidationError, match="lora: rollouts through vLLM"):
        PPOOptions(lora={"r": 4}, generation_backend="vllm")


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["no", "bf16"])
def test_sft_with_lora_lowers_validation_loss_and_saves_a_plain_model(tiny_policy, tmp_path, precision):
    """Under bf16 the frozen weights are trained beside in bf16; policy_0 is still the float32 input plus the update."""
    from aopcore_hf.models import choose_device
    from aopcore_hf.sft import run_sft

    out = tmp_path / "sft"
    out.mkdir()
    options = dict(
        max_epochs=2, learning_rate=2e-2, batch_size=8, mixed_precision=precision, gradient_checkpointing=False
    )
    result = run_sft(
        str(tiny_policy),
        SFTOptions(dataset="builtin:dolly-mini", lora={"r": 4}, **options),
        out,
        choice=choose_device("cpu"),
        seed=0,
    )
    assert result["best_eval_loss"] < result["initial_eval_loss"] - 0.15, result
    assert_low_rank_update(load_file(tiny_policy / "model.safetensors"), load_file(out / "model.safetensors"), rank=4)
