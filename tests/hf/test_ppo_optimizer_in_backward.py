"""Adam stepped inside the backward pass (``optimizer_in_backward``): the same update as Adam after the backward,
no optimizer left resident once training is over, and the PPO trainer's weights unchanged by the option."""

import gc
import weakref
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from aopcore import Prompt  # noqa: E402
from aopcore_hf.options import PPOOptions  # noqa: E402
from aopcore_hf.ppo.memory import AdamInBackward  # noqa: E402

from helpers.tiny_models import WordReward, save_tiny_gpt2  # noqa: E402


def _net(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))


def _train(net: torch.nn.Module, optimizer, steps: int = 5) -> None:
    data = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.randn(8, 6, generator=data)
        optimizer.zero_grad()
        net(x).pow(2).mean().backward()
        optimizer.step()


def test_the_update_is_adams_after_the_backward_to_the_bit():
    plain, inside = _net(0), _net(0)
    _train(plain, torch.optim.Adam(plain.parameters(), lr=1e-2, eps=1e-6))
    optimizer = AdamInBackward(list(inside.parameters()), lr=1e-2, eps=1e-6)
    _train(inside, optimizer)
    for a, b in zip(plain.parameters(), inside.parameters(), strict=True):
        assert torch.equal(a, b)
    assert all(p.grad is None for p in inside.parameters())  # freed as each was applied
    # moved at all: the comparison above would also hold for an optimizer that did nothing to both
    assert not torch.equal(next(_net(0).parameters()), next(inside.parameters()))


def test_a_model_that_outlives_training_does_not_keep_the_optimizer():
    """The trainer caches the trained model for the evaluation after it. An optimizer its parameters' hooks held
    would stay resident with its Adam states, one more per training stage (measured: 1.5 GB a stage for SmolLM2)."""
    net = _net(0)
    optimizer = AdamInBackward(list(net.parameters()), lr=1e-2)
    _train(net, optimizer)
    states = weakref.ref(optimizer.per_param[0])
    del optimizer
    gc.collect()
    assert states() is None
    before = [p.detach().clone() for p in net.parameters()]
    net(torch.ones(1, 6)).sum().backward()  # a stale hook must not step or free anything
    assert all(torch.equal(a, p) for a, p in zip(before, net.parameters()))
    assert all(p.grad is not None for p in net.parameters())


def test_close_takes_the_hooks_off():
    net = _net(0)
    optimizer = AdamInBackward(list(net.parameters()), lr=1e-2)
    optimizer.close()
    before = [p.detach().clone() for p in net.parameters()]
    net(torch.ones(1, 6)).sum().backward()
    assert all(torch.equal(a, p) for a, p in zip(before, net.parameters()))
    assert all(p.grad is not None for p in net.parameters())


def test_state_dict_round_trip_continues_the_same_run():
    """A PPO stage killed after a save resumes from the optimizer's state_dict: the continued run equals the
    uninterrupted one."""
    whole, resumed = _net(0), _net(0)
    _train(whole, AdamInBackward(list(whole.parameters()), lr=1e-2), steps=6)
    first = AdamInBackward(list(resumed.parameters()), lr=1e-2)
    _train(resumed, first, steps=3)
    saved = {k: v.clone() for k, v in resumed.state_dict().items()}, first.state_dict()
    first.close()
    again = _net(5)  # other weights, overwritten by the save
    again.load_state_dict(saved[0])
    second = AdamInBackward(list(again.parameters()), lr=1e-2)
    second.load_state_dict(saved[1])
    data = torch.Generator().manual_seed(1)
    for step in range(6):
        x = torch.randn(8, 6, generator=data)
        if step < 3:
            continue  # the steps the first run already took, same data order
        second.zero_grad()
        again(x).pow(2).mean().backward()
    for a, b in zip(whole.parameters(), again.parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.slow
def test_ppo_weights_do_not_depend_on_the_option(tmp_path: Path):
    from aopcore_hf.ppo import PPOPolicyTrainer

    tiny = save_tiny_gpt2(tmp_path / "gpt2")
    prompts = [Prompt(f"p{i}", t, "c") for i, t in enumerate(["how do i run ?", "what is a cat ?"] * 4)]
    weights = {}
    for flag in (False, True):
        trainer = PPOPolicyTrainer(
            PPOOptions(
                model=str(tiny),
                learning_rate=3e-3,
                batch_size=8,
                mini_batch_size=4,
                ppo_epochs=2,
                optimizer_in_backward=flag,
                generation={"max_new_tokens": 6, "temperature": 1.0},
            )
        )
        p0, p1 = tmp_path / f"p0-{flag}", tmp_path / f"p1-{flag}"
        p0.mkdir()
        p1.mkdir()
        trainer.initial_policy(p0, seed=0)
        trainer.train(p0, prompts, WordReward("good"), passes=2, out=p1, seed=0)
        weights[flag] = (p1 / "model.safetensors").read_bytes()
    assert weights[True] == weights[False]
    start = (tiny / "model.safetensors").read_bytes()
    assert weights[True] != start  # training moved them


def test_native_precision_is_resolved_when_the_options_are_read():
    """config.json records what ran: ``native`` never reaches a trainer, and which it became follows the hardware."""
    from aopcore_hf.models import native_bf16

    resolved = PPOOptions(model="x", mixed_precision="native", device="cpu").mixed_precision
    assert resolved == ("bf16" if native_bf16("cpu") else "no")
    assert PPOOptions(model="x", mixed_precision="no", device="cpu").mixed_precision == "no"


def test_checkpointing_when_float32_follows_the_precision_that_trains():
    """``when-float32`` becomes true where the layers compute in float32 (their activations twice bf16's) and false
    under bf16 autocast, resolved when the options are read; true and false stay what they say."""
    from aopcore_hf.models import native_bf16

    def resolved(**kw) -> object:
        return PPOOptions(model="x", device="cpu", gradient_checkpointing="when-float32", **kw).gradient_checkpointing

    assert resolved(mixed_precision="no") is True
    assert resolved(mixed_precision="bf16") is False
    assert resolved(mixed_precision="no", dtype="bfloat16") is False  # pure bf16 weights: bf16 activations
    assert resolved(mixed_precision="native") is (not native_bf16("cpu"))
    assert PPOOptions(model="x", device="cpu", gradient_checkpointing=False).gradient_checkpointing is False
    with pytest.raises(ValueError, match="gradient_checkpointing"):
        PPOOptions(model="x", device="cpu", gradient_checkpointing="float32")


@pytest.mark.slow
def test_bf16_answers_after_training_equal_those_of_the_saved_policy_read_again(tmp_path: Path):
    """Under bf16 on a CPU the trained model is cast to a bf16 copy for the evaluation that follows: its answers must
    be those of the saved float32 weights read in bf16 by a fresh process (the copy is the file, not a near miss)."""
    from aopcore_hf.ppo import PPOPolicyTrainer

    tiny = save_tiny_gpt2(tmp_path / "gpt2")
    prompts = [Prompt(f"p{i}", t, "c") for i, t in enumerate(["how do i run ?", "what is a cat ?"] * 4)]
    options = PPOOptions(
        model=str(tiny),
        device="cpu",
        learning_rate=3e-3,
        batch_size=8,
        mini_batch_size=4,
        mixed_precision="bf16",
        generation={"max_new_tokens": 6, "temperature": 1.0},
        eval_max_new_tokens=6,
    )
    trainer = PPOPolicyTrainer(options)
    p0, p1 = tmp_path / "p0", tmp_path / "p1"
    p0.mkdir()
    p1.mkdir()
    trainer.initial_policy(p0, seed=0)
    trainer.train(p0, prompts, WordReward("good"), passes=2, out=p1, seed=0)
    assert trainer.cache.holds(p1, trainer.inference_choice())
    assert trainer.inference_choice().dtype == torch.bfloat16
    texts = [p.text for p in prompts]
    cached = trainer.generate(p1, texts, seed=0, sample=True)  # sampled: sensitive to every logit, not just the top
    fresh = PPOPolicyTrainer(options).generate(p1, texts, seed=0, sample=True)
    assert cached == fresh
    before = PPOPolicyTrainer(options).generate(p0, texts, seed=0, sample=True)
    assert cached != before  # training changed the answers, so the equality above compares trained weights


def test_the_model_just_trained_is_found_after_the_stage_renames_its_folder(tmp_path: Path):
    """The experiment trains into a temporary folder and renames it into place; the evaluation that follows must
    find the trained model in the cache instead of reading it again, and a rewritten folder must not be confused
    with it."""
    import os

    from aopcore_hf.models import DeviceChoice
    from aopcore_hf.policy_io import PolicyCache

    tiny = save_tiny_gpt2(tmp_path / "gpt2")
    cache, choice = PolicyCache(), DeviceChoice("cpu", torch.float32)
    model, tokenizer = cache.load(tiny, choice)
    staged, final = tmp_path / ".policy.x.tmp", tmp_path / "policy"
    os.rename(tiny, staged)
    cache.put(staged, choice, model, tokenizer)
    os.replace(staged, final)
    assert cache.holds(final, choice) and cache.load(final, choice)[0] is model
    assert not cache.holds(final, DeviceChoice("cpu", torch.bfloat16))
    save_tiny_gpt2(tmp_path / "other")
    os.replace(tmp_path / "other" / "config.json", final / "config.json")  # the folder rewritten in place
    assert not cache.holds(final, choice)
