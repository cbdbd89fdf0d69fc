"""Trainers on tiny random models: the mean reward must rise within a bounded number of steps."""

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from aopcore import Prompt  # noqa: E402
from aopcore_hf.options import PPOOptions, TRLOptions  # noqa: E402

from helpers.tiny_models import WordReward, save_tiny_gpt2  # noqa: E402

pytestmark = pytest.mark.slow  # real trainers on tiny models

PROMPTS = [
    Prompt(f"p{i}", text, "c")
    for i, text in enumerate(["how do i run ?", "why is the sky blue ?", "what is a cat ?", "how do i jump ?"] * 4)
]


@pytest.fixture(scope="module")
def tiny_policy(tmp_path_factory) -> Path:
    return save_tiny_gpt2(tmp_path_factory.mktemp("tiny") / "gpt2")


def mean_reward(trainer, policy: Path, reward: WordReward) -> float:
    texts = [p.text for p in PROMPTS]
    return sum(reward.score(texts, trainer.generate(policy, texts, seed=0))) / len(texts)


def train_before_after(trainer, tmp_path: Path, reward: WordReward, passes: int):
    """policy_0 -> train -> policy_1; returns the stats and the mean reward of each policy's answers."""
    p0, p1 = tmp_path / "p0", tmp_path / "p1"
    p0.mkdir()
    p1.mkdir()
    trainer.initial_policy(p0, seed=0)
    before = mean_reward(trainer, p0, reward)
    stats = trainer.train(p0, PROMPTS, reward, passes=passes, out=p1, seed=0)
    return stats, before, mean_reward(trainer, p1, reward)


def test_ppo_raises_reward_on_toy_task(tiny_policy: Path, tmp_path: Path):
    from aopcore_hf.ppo import PPOPolicyTrainer

    opts = PPOOptions(
        model=str(tiny_policy),
        learning_rate=3e-3,
        batch_size=16,
        mini_batch_size=8,
        ppo_epochs=4,
        init_kl_coef=0.01,
        generation={"max_new_tokens": 8, "temperature": 1.0},
        eval_do_sample=True,
        eval_max_new_tokens=8,
    )
    stats, before, after = train_before_after(PPOPolicyTrainer(opts), tmp_path, WordReward("good"), passes=16)
    assert stats.steps == 16 and stats.episodes == 256
    scores = [m["objective/scores"] for m in stats.metrics]
    assert sum(scores[-2:]) / 2 > sum(scores[:2]) / 2 + 0.3, scores
    assert after > before + 0.3, (before, after)
    for key in (
        "objective/kl",
        "objective/scores",
        "policy/clipfrac_avg",
        "loss/policy_avg",
        "loss/value_avg",
        "val/ratio",
        "ppo/skipped_minibatches",
    ):
        assert key in stats.metrics[0]
    assert (tmp_path / "p1" / "value_head.pt").exists() and (tmp_path / "p1" / "ppo_state.json").exists()


@pytest.mark.parametrize("algorithm", ["grpo", "rloo"])
def test_trl_trainers_raise_reward(algorithm: str, tiny_policy: Path, tmp_path: Path):
    from aopcore_hf.trl_trainers import GRPOPolicyTrainer, RLOOPolicyTrainer

    cls = {"grpo": GRPOPolicyTrainer, "rloo": RLOOPolicyTrainer}[algorithm]
    opts = TRLOptions(
        model=str(tiny_policy),
        learning_rate=5e-3,
        batch_size=16,
        num_generations=4,
        beta=0.0,
        generation={"max_new_tokens": 8, "temperature": 1.0},
        eval_do_sample=True,
        eval_max_new_tokens=8,
    )
    stats, before, after = train_before_after(cls(opts), tmp_path, WordReward("good"), passes=6)
    assert stats.steps > 0 and stats.tokens_generated > 0
    assert after > before + 0.15, (before, after)


def test_sft_lowers_validation_loss_and_writes_policy(tiny_policy: Path, tmp_path: Path):
    from aopcore_hf.models import choose_device
    from aopcore_hf.options import SFTOptions
    from aopcore_hf.sft import run_sft

    out = tmp_path / "sft"
    out.mkdir()
    result = run_sft(
        str(tiny_policy),
        SFTOptions(dataset="builtin:dolly-mini", max_epochs=3, learning_rate=5e-3, batch_size=8),
        out,
        choice=choose_device("cpu"),
        seed=0,
    )
    assert (out / "config.json").exists() and not (out / "sft-checkpoints").exists()
    assert 1 <= result["epochs"] <= 3
    assert result["best_eval_loss"] < result["initial_eval_loss"] - 0.5, result
    logged = __import__("json").loads((out / "sft.json").read_text())  # the losses stay in the run directory
    assert logged["eval_loss_per_epoch"] == result["eval_loss_per_epoch"] and len(logged["eval_loss_per_epoch"]) == int(
        result["epochs"]
    )
