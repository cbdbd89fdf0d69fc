"""One PPO mini-batch of the whole batch: its forward with gradients doubles as the "old" forward (the no-grad pass
that TRL runs first), so a step forwards the policy once fewer. The update must be the one of the two-pass step."""

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from safetensors.torch import load_file  # noqa: E402

from aopcore import Prompt  # noqa: E402
from aopcore_hf.options import PPOOptions  # noqa: E402

from helpers.tiny_models import WordReward, save_tiny_gpt2  # noqa: E402

PROMPTS = [Prompt(f"p{i}", t, "c") for i, t in enumerate(["how do i run ?", "what is a cat ?", "why ?", "a b c"] * 2)]


def _train(tmp_path: Path, tiny: Path, *, reuse: bool, mini_batch_size: int, epochs: int) -> dict:
    from aopcore_hf.ppo import PPOPolicyTrainer

    trainer = PPOPolicyTrainer(
        PPOOptions(
            model=str(tiny),
            learning_rate=3e-3,
            batch_size=8,
            mini_batch_size=mini_batch_size,
            ppo_epochs=epochs,
            generation={"max_new_tokens": 6, "temperature": 1.0},
        )
    )
    trainer.reuse_first_forward = reuse
    name = f"{reuse}-{mini_batch_size}-{epochs}"
    p0, p1 = tmp_path / f"p0-{name}", tmp_path / f"p1-{name}"
    p0.mkdir()
    p1.mkdir()
    trainer.initial_policy(p0, seed=0)
    stats = trainer.train(p0, PROMPTS, WordReward("good"), passes=2, out=p1, seed=0)
    return {"weights": load_file(p1 / "model.safetensors"), "metrics": stats.metrics}


@pytest.mark.slow
@pytest.mark.parametrize("epochs", [1, 2])
def test_reusing_the_first_forward_gives_the_same_update(tmp_path: Path, epochs: int):
    tiny = save_tiny_gpt2(tmp_path / "gpt2")
    start = load_file(tiny / "model.safetensors")
    once = _train(tmp_path, tiny, reuse=True, mini_batch_size=8, epochs=epochs)
    twice = _train(tmp_path, tiny, reuse=False, mini_batch_size=8, epochs=epochs)
    moved = 0.0
    for name, w in once["weights"].items():
        torch.testing.assert_close(w, twice["weights"][name], rtol=1e-3, atol=3e-5)  # Adam amplifies float noise
        moved = max(moved, float((w - start[name]).abs().max()))
    assert moved > 1e-4  # training moved the weights, so the comparison compares updates
    for a, b in zip(once["metrics"], twice["metrics"], strict=True):
        assert a["val/ratio"] == pytest.approx(b["val/ratio"], abs=1e-5)
        assert a["objective/kl"] == pytest.approx(b["objective/kl"], abs=1e-5)
    assert once["metrics"][0]["objective/kl"] == 0.0  # the first step's policy is the reference itself
    assert once["metrics"][1]["objective/kl"] != 0.0  # after an update it is not
    if epochs == 1:  # the only mini-batch runs on the weights that generated: the ratio is exactly one
        assert all(m["val/ratio"] == 1.0 for m in once["metrics"])


@pytest.mark.slow
def test_smaller_mini_batches_keep_the_separate_old_forward(tmp_path: Path, monkeypatch):
    """With two mini-batches the second runs on updated weights, so old log-probs need their own pass first."""
    from aopcore_hf.ppo import trainer as ppo_trainer

    calls = []
    original = ppo_trainer.response_forward

    def counting(model, value_head, batch):
        calls.append((value_head is not None, torch.is_grad_enabled(), batch.ids.shape[0]))
        return original(model, value_head, batch)

    monkeypatch.setattr(ppo_trainer, "response_forward", counting)
    tiny = save_tiny_gpt2(tmp_path / "gpt2")
    _train(tmp_path, tiny, reuse=True, mini_batch_size=4, epochs=1)
    policy_no_grad = [c for c in calls if c[0] and not c[1]]
    assert sum(c[2] for c in policy_no_grad) == 16  # the old forward of each step's 8 rows (in length groups)
    calls.clear()
    _train(tmp_path, tiny, reuse=True, mini_batch_size=8, epochs=1)
    assert not [c for c in calls if c[0] and not c[1]]  # none: the forward with gradients served
    assert sum(c[2] for c in calls if c[0] and c[1]) == 16  # each step's 8 rows forwarded once, with gradients
