"""Data-parallel PPO: a 2-process CPU group (gloo, through torchrun and accelerate) reproduces one process.

Same global batch, greedy rollouts (so both runs see the same responses), same seed: the per-step metrics
and the trained weights must agree up to float summation order. Rewards are scored in this process,
through the reward service, so the RewardModel never has to be loaded by the workers.
"""

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from aopcore import Prompt  # noqa: E402
from aopcore.ledger import StageMeter  # noqa: E402
from aopcore_hf.options import PPOOptions  # noqa: E402
from aopcore_hf.ppo import PPOPolicyTrainer  # noqa: E402

from helpers.tiny_models import WordReward, save_tiny_gpt2  # noqa: E402

PROMPTS = [
    Prompt(f"p{i}", text, "c")
    for i, text in enumerate(
        [
            "how do i run ?",
            "why is the sky blue ?",
            "what is a cat ?",
            "how do i jump ?",
            "the dog is red",
            "a tree ?",
            "yes",
            "no ?",
        ]
    )
]
KEYS = (
    "objective/scores",
    "objective/kl",
    "objective/kl_coef",
    "loss/policy_avg",
    "loss/value_avg",
    "val/ratio",
    "policy/clipfrac_avg",
    "objective/entropy",
    "tokens/response_len_mean",
)


def weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    state = load_file(folder / "model.safetensors")
    state.update({f"value.{k}": v for k, v in torch.load(folder / "value_head.pt").items()})
    return state


@pytest.mark.slow
@pytest.mark.torchrun
def test_two_process_ppo_matches_one_process(tmp_path: Path):
    policy = save_tiny_gpt2(tmp_path / "gpt2", init_range=0.6)
    common = dict(
        model=str(policy),
        device="cpu",
        learning_rate=3e-3,
        batch_size=8,
        mini_batch_size=4,
        ppo_epochs=2,
        init_kl_coef=0.05,
        generation={"max_new_tokens": 6, "do_sample": False},
    )
    runs = {}
    for n in (1, 2):
        trainer = PPOPolicyTrainer(PPOOptions(**common, num_processes=n))
        with StageMeter("train") as meter:
            stats = trainer.train(policy, PROMPTS, WordReward("good"), passes=2, out=tmp_path / f"ranks-{n}", seed=7)
        assert stats.steps == 2 and stats.episodes == 16
        assert meter.counts["reward_calls"] == 16  # scored here, in the parent, in both cases
        runs[n] = stats

    for m1, m2 in zip(runs[1].metrics, runs[2].metrics):
        for key in KEYS:
            assert m2[key] == pytest.approx(m1[key], rel=1e-4, abs=1e-6), key
    assert runs[1].tokens_generated == runs[2].tokens_generated > 0

    from safetensors.torch import load_file

    initial = load_file(policy / "model.safetensors")
    w1, w2 = weights(tmp_path / "ranks-1"), weights(tmp_path / "ranks-2")
    assert max(float((w1[k] - initial[k]).abs().max()) for k in initial) > 1e-2  # training moved the weights
    assert w1.keys() == w2.keys()
    n_embd = 32
    for k in w1:
        a, b = w1[k], w2[k]
        if k.endswith("attn.c_attn.bias"):
            # the key bias has zero gradient in exact arithmetic (softmax ignores a constant shift), so Adam turns
            # float noise there into lr-sized steps of either sign; it cannot change what the model computes
            a, b = torch.cat([a[:n_embd], a[2 * n_embd :]]), torch.cat([b[:n_embd], b[2 * n_embd :]])
        assert torch.allclose(a, b, atol=2e-5, rtol=1e-4), (k, float((a - b).abs().max()))
    # and the two trained policies compute the same function
    from transformers import AutoModelForCausalLM

    ids = torch.tensor([[3, 15, 16, 17, 11, 26], [20, 24, 4, 22, 5, 9]])
    logits = [AutoModelForCausalLM.from_pretrained(tmp_path / f"ranks-{n}")(input_ids=ids).logits for n in (1, 2)]
    assert torch.allclose(logits[0], logits[1], atol=1e-4)
    assert (tmp_path / "ranks-2" / "ppo_state.json").exists()


def test_options_reject_uneven_shares():
    with pytest.raises(ValueError, match="multiple of num_processes"):
        PPOOptions(batch_size=8, mini_batch_size=4, num_processes=3)


class BrokenReward:
    def score(self, prompts, responses):
        raise ValueError("reward model exploded")


@pytest.mark.slow
@pytest.mark.torchrun
def test_a_failing_reward_stops_the_group_with_its_error(tmp_path: Path):
    """The reward runs in the experiment's process; its failure must end the workers, not leave them waiting."""
    policy = save_tiny_gpt2(tmp_path / "gpt2")
    trainer = PPOPolicyTrainer(
        PPOOptions(
            model=str(policy),
            device="cpu",
            batch_size=4,
            mini_batch_size=2,
            ppo_epochs=1,
            num_processes=2,
            generation={"max_new_tokens": 3},
        )
    )
    with pytest.raises(ValueError, match="reward model exploded"):
        trainer.train(policy, PROMPTS[:4], BrokenReward(), passes=1, out=tmp_path / "out", seed=0)
    assert not (tmp_path / "out" / "model.safetensors").exists()


@pytest.mark.slow
@pytest.mark.torchrun
def test_accelerate_config_is_passed_to_accelerate_launch(tmp_path: Path):
    """The path GPU users take (`accelerate launch --config_file ...`), here with a one-process CPU config."""
    from aopcore_hf.ppo.launch import launch_command

    config = tmp_path / "accelerate.yaml"
    config.write_text(
        "compute_environment: LOCAL_MACHINE\ndistributed_type: 'NO'\nnum_processes: 1\nnum_machines: 1\n"
        "machine_rank: 0\nuse_cpu: true\nmixed_precision: 'no'\n"
    )
    policy = save_tiny_gpt2(tmp_path / "gpt2", init_range=0.6)
    common = dict(
        model=str(policy),
        device="cpu",
        learning_rate=3e-3,
        batch_size=4,
        mini_batch_size=2,
        ppo_epochs=1,
        generation={"max_new_tokens": 4, "do_sample": False},
    )
    launched = PPOOptions(**common, accelerate_config=str(config))
    assert "accelerate.commands.launch" in launch_command(launched, tmp_path / "job.json")
    runs = [
        PPOPolicyTrainer(opts).train(policy, PROMPTS[:4], WordReward("good"), passes=1, out=tmp_path / name, seed=1)
        for name, opts in (("plain", PPOOptions(**common)), ("launched", launched))
    ]
    for key in KEYS:
        assert runs[1].metrics[0][key] == pytest.approx(runs[0].metrics[0][key], rel=1e-5, abs=1e-7), key
    assert (tmp_path / "launched" / "model.safetensors").exists()


@pytest.mark.slow
@pytest.mark.torchrun
def test_experiment_trains_with_a_two_process_group_and_an_in_process_reward(tmp_path: Path):
    """Library use: the reward object exists only in this process (no plugin the workers could load)."""
    import json

    from aopcore import Budget, Experiment, Question

    import toy_components as toy

    policy = save_tiny_gpt2(tmp_path / "gpt2", init_range=0.6)
    trainer = PPOPolicyTrainer(
        PPOOptions(
            model=str(policy),
            device="cpu",
            batch_size=4,
            mini_batch_size=2,
            ppo_epochs=1,
            num_processes=2,
            generation={"max_new_tokens": 4},
            eval_max_new_tokens=4,
        )
    )
    heldout = [
        Question(f"h{i}", text, cat)
        for i, (text, cat) in enumerate([("how do i run ?", "a"), ("why is the sky blue ?", "b")])
    ]
    result = Experiment(
        name="ddp",
        output_dir=tmp_path / "runs",
        trainer=trainer,
        reward=toy.LengthReward(),
        arms={"static": toy.StaticCurriculum(toy.StaticOptions())},
        heldout=heldout,
        test_prompts=[Question("t0", "what is a cat ?")],
        budget=Budget(iterations=1, records_per_iteration=4, passes=1),
        seed=3,
    ).run()
    it = result.run_dir / "arms" / "static" / "iter-01"
    train = json.loads((it / "train.json").read_text())
    assert train["steps"] == 1 and train["metrics"][0]["objective/kl"] is not None
    assert (it / "policy" / "model.safetensors").exists()
    (train_stage,) = [r for r in result.ledger if r["kind"] == "train"]
    assert train_stage["reward_calls"] == 4  # the workers' rollouts were scored here
