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


def test_the_reference_of_a_lora_stage_is_its_input_the_adapters_off(tiny_policy):
    from transformers import AutoModelForCausalLM

    from aopcore_hf.ppo.memory import AdaptersOffReference

    plain = AutoModelForCausalLM.from_pretrained(tiny_policy).eval()
    model = lora.attach(AutoModelForCausalLM.from_pretrained(tiny_policy), lora.LoraOptions(r=2, alpha=4)).train()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.5)
    ids = torch.tensor([[3, 4, 5, 6, 7], [8, 9, 10, 11, 12]])
    ref = AdaptersOffReference(model, None)
    logits = ref.logprobs(ids, lambda m, _head, batch: (m(input_ids=batch).logits, None, None))
    with torch.no_grad():
        expected = plain(input_ids=ids).logits
        adapted = model(input_ids=ids).logits
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(adapted, expected, atol=1e-3)  # the adapters are back on after the reference's pass
    assert model.training  # and the training mode with them


@pytest.mark.slow
def test_a_lora_stage_trains_on_the_evaluations_copy_of_its_input_without_reading_it_again(
    tiny_policy, tmp_path, monkeypatch
):
    """The evaluation before a stage leaves its input in the generation cache in the dtype the frozen weights take:
    the stage takes that copy (no read of the input's weights, no reference copy) and the cache then holds its
    output; a later step's KL against the input is not zero."""
    from aopcore_hf.ppo import PPOPolicyTrainer
    from aopcore_hf.ppo import trainer as trainer_module

    trainer = PPOPolicyTrainer(
        PPOOptions(
            model=str(tiny_policy),
            device="cpu",
            learning_rate=1e-2,
            batch_size=8,
            mini_batch_size=8,
            ppo_epochs=2,
            mixed_precision="bf16",
            lora={"r": 4, "alpha": 8},
            generation={"max_new_tokens": 8, "temperature": 1.0},
            eval_max_new_tokens=8,
        )
    )
    p0, p1 = tmp_path / "p0", tmp_path / "p1"
    p0.mkdir()
    p1.mkdir()
    trainer.initial_policy(p0, seed=0)
    trainer.generate(p0, [p.text for p in PROMPTS[:4]], seed=0)  # the evaluation of p0
    assert trainer.cache.holds(p0, trainer.inference_choice())
    reads: list[str] = []
    monkeypatch.setattr(trainer_module, "load_causal_lm", lambda spec, *a: reads.append(spec))
    stats = trainer.train(p0, PROMPTS, WordReward("good"), passes=1, out=p1, seed=0)
    assert reads == []
    assert stats.metrics[0]["objective/kl"] == 0.0
    assert stats.metrics[1]["objective/kl"] != 0.0
    assert trainer.cache.holds(p1, trainer.inference_choice()) and not trainer.cache.holds(
        p0, trainer.inference_choice()
    )


def test_lora_refuses_a_placed_reference():
    with pytest.raises(ValidationError, match="lora: the reference is the frozen weights"):
        PPOOptions(lora={"r": 4}, reference_placement="offload")


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


def test_a_lora_trainer_imports_its_libraries_and_loads_no_model(tiny_policy):
    """``aopcore run`` asks every component for the libraries its stages import before the first stage
    (``aopcore.memory.freeze_survivors``); the trainer's are transformers, TRL for its SFT and PEFT for its adapters."""
    import subprocess
    import sys

    code = (
        "import sys; from aopcore_hf.ppo import PPOPolicyTrainer; from aopcore_hf.options import PPOOptions\n"
        f"o = PPOOptions(model={str(tiny_policy)!r}, device='cpu', lora={{'r': 4}}, sft={{'dataset': 'builtin:dolly-mini'}})\n"
        "before = {m for m in ('trl', 'peft') if m in sys.modules}\n"
        "PPOPolicyTrainer.import_libraries(o)\n"
        "import gc; models = [x for x in gc.get_objects() if type(x).__name__.endswith('ForCausalLM')]\n"
        "print(sorted(before), sorted(m for m in ('trl', 'peft') if m in sys.modules), models)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split("\n")[-2] == "[] ['peft', 'trl'] []", out.stdout
