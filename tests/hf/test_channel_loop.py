"""The per-step channel inside aopcore's loop: online curricula draw every training step's prompts."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from aopcore import Budget, Experiment, InputError, Prompt, TrainStats
from aopcore.steps import RolloutGroup, read_batches

TESTS = Path(__file__).resolve().parents[1]  # the tests root (helpers)
sys.path.insert(0, str(TESTS))
from toy_components import TEMPLATES, ToyTrainer, ToyTrainerOptions  # noqa: E402


class CategoryReward:
    """1 for a prompt of category "a" (its text starts with it), 0 otherwise: "b" is the weak category."""

    def score(self, prompts, responses):
        return [1.0 if p.startswith("a ") else 0.0 for p in prompts]


class StreamToyTrainer(ToyTrainer):
    """The toy trainer, drawing each step's prompts from the stream when it gets one (batches of 2)."""

    def train(self, policy, prompts, reward, *, passes, out, seed, stream=None) -> TrainStats:
        order = [p for _ in range(passes) for p in prompts]
        steps = 0
        for start in range(0, len(order), 2):
            batch = order[start : start + 2]
            if stream is not None:
                batch = stream.next(len(batch))
            answers = [TEMPLATES[0]] * len(batch)
            rewards = reward.score([p.text for p in batch], answers)
            if stream is not None:
                stream.report(stream.draws - 1, [RolloutGroup(p.id, p.category, (r,)) for p, r in zip(batch, rewards)])
            steps += 1
        (out / "policy.json").write_text((policy / "policy.json").read_text())
        return TrainStats(steps=steps, episodes=len(order), tokens_generated=0, metrics=[])


def planned(ctx, tag="p"):
    return [Prompt(f"{tag}{ctx.iteration}-{k}", f"{'ab'[k % 2]} question {k}", "ab"[k % 2]) for k in range(ctx.budget)]


class Static:
    def prompts(self, ctx):
        return planned(ctx)


class Online:
    """Draws the planned prompts of the category with the lowest mean reward observed so far (also in earlier iterations)."""

    def __init__(self, tag=""):
        self.tag = tag  # part of the curriculum's description: two Online("x") arms have the same curriculum

    def prompts(self, ctx):
        return planned(ctx)

    def selector(self, ctx, plan):
        return Lowest(plan, ctx)


class Lowest:
    def __init__(self, plan, ctx):
        self.plan, self.rng, self.seen = plan, random.Random(ctx.seed), {"a": [], "b": []}
        for batch in ctx.steps:
            self.observe(batch)

    def draw(self, n, draw):
        mean = {c: (sum(v) / len(v) if v else 0.0) for c, v in self.seen.items()}
        cat = min(mean, key=lambda c: (mean[c], c))
        return [self.rng.choice([p for p in self.plan if p.category == cat]) for _ in range(n)]

    def observe(self, batch):
        for g in batch.groups:
            self.seen[g.category].append(g.mean)


WATCHED: list = []


class Watcher(Static):
    def observe_step(self, batch):
        WATCHED.append(batch)


def experiment(tmp_path, arms, trainer=None, **kw):
    heldout = [__import__("aopcore").Question(f"h{k}", f"{c} held {k}", c) for k, c in enumerate("abab")]
    return Experiment(
        name="ch",
        output_dir=tmp_path,
        trainer=trainer or StreamToyTrainer(ToyTrainerOptions()),
        reward=CategoryReward(),
        arms=arms,
        heldout=heldout,
        test_prompts=heldout[:2],
        budget=Budget(iterations=2, records_per_iteration=4, passes=2),
        **kw,
    )


def record(run: Path, stage: str) -> dict:
    return json.loads((run / "stages" / f"{stage.replace('/', '__')}.json").read_text())


def test_online_arm_draws_per_step_and_keeps_its_steps(tmp_path):
    exp = experiment(tmp_path, {"static": Static(), "online": Online(), "twin": Online()})
    exp.run()
    run = tmp_path / "ch"
    steps = read_batches(run / "arms" / "online" / "iter-01" / "steps.jsonl")
    assert [len(b.groups) for b in steps] == [2, 2, 2, 2]  # passes x budget draws, as without the channel
    cats = [g.category for b in steps for g in b.groups]
    assert cats[:4] == ["a"] * 4 and cats[4:] == ["b"] * 4  # lag 1: from draw 2 on it moves to the weak category
    second = read_batches(run / "arms" / "online" / "iter-02" / "steps.jsonl")
    assert {g.category for g in second[0].groups} == {"b"}  # ctx.steps carried iteration 1's observations over
    train = record(run, "arms/online/iter-01/train")
    assert train["stream"] == {"draws": 4, "refills": 0, "dropped_groups": 0, "dropped_rollouts": 0, "online": True}
    assert "arms/online/iter-01/steps.jsonl" in train["outputs"]
    assert train["steps"] == record(run, "arms/static/iter-01/train")["steps"] == 4
    assert not (run / "arms" / "static" / "iter-01" / "steps.jsonl").exists()
    # same planned prompts as the static arm and as each other, but not the same training: no twin reuse
    assert "reused_from" not in train and "reused_from" not in record(run, "arms/twin/iter-01/train")
    assert not (run / "scratch").exists()


def test_a_watcher_sees_every_step_and_static_arms_stay_twins(tmp_path):
    WATCHED.clear()
    exp = experiment(tmp_path, {"s1": Static(), "s2": Static(), "w": Watcher()})
    exp.run()
    run = tmp_path / "ch"
    assert record(run, "arms/s2/iter-01/train")["reused_from"] == "arms/s1/iter-01"  # unchanged for other curricula
    assert "reused_from" not in record(run, "arms/w/iter-01/train")
    assert len(WATCHED) == 8 and all(len(b.groups) == 2 for b in WATCHED)  # 4 draws per iteration, 2 iterations
    assert sorted(g.prompt_id for b in WATCHED[:4] for g in b.groups) == sorted(
        f"p1-{k}" for k in range(4) for _ in range(2)
    )


def test_online_curriculum_with_a_trainer_without_stream_is_refused(tmp_path):
    with pytest.raises(InputError) as err:
        experiment(tmp_path, {"static": Static(), "online": Online()}, trainer=ToyTrainer(ToyTrainerOptions()))
    assert str(err.value).count("\n") == 0
    assert "arms.online: curriculum Online chooses every training step's prompts" in str(err.value)
    assert "trainer (ToyTrainer) takes no stream" in str(err.value)
    assert not (tmp_path / "ch").exists()


def test_a_lazily_built_trainer_is_checked_without_building_it(tmp_path):
    from aopcore import contracts
    from aopcore.engine.build import LazyComponent
    from aopcore.registry import load_registry

    registry = load_registry(["toy_components"])
    lazy = LazyComponent(registry.implementations["trainer"]["toy"], ToyTrainerOptions())
    assert contracts.takes_keyword(lazy, "train", "stream") is False and not lazy.built
    ppo = LazyComponent(
        registry.implementations["trainer"]["ppo"], registry.implementations["trainer"]["ppo"].options()
    )
    assert contracts.takes_keyword(ppo, "train", "stream") is True and not ppo.built
    assert contracts.component_name("trainer", lazy) == "trainer (toy)"


# ---- our PPO: an online stage killed mid-stage resumes with the same draws ------------------------------------
PPO_SCRIPT = """
import json, os, random, signal, sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from helpers.tiny_models import KillAtCallReward as Reward  # SIGKILLs the process at reward call $KILL_AT
from aopcore import CurriculumContext, Prompt
from aopcore.steps import open_stream
from aopcore_hf.options import PPOOptions
from aopcore_hf.ppo import PPOPolicyTrainer


class Hardest:
    def __init__(self, plan, seed):
        self.plan, self.rng, self.sum, self.n = plan, random.Random(seed), {{}}, {{}}
    def draw(self, n, draw):
        key = lambda p: (self.sum.get(p.id, 0.0) / self.n[p.id] if p.id in self.n else -1.0, self.rng.random())
        return sorted(self.plan, key=key)[:n]
    def observe(self, batch):
        for g in batch.groups:
            self.sum[g.prompt_id] = self.sum.get(g.prompt_id, 0.0) + g.mean
            self.n[g.prompt_id] = self.n.get(g.prompt_id, 0) + 1

class Curriculum:
    def prompts(self, ctx): ...
    def selector(self, ctx, plan):
        return Hardest(plan, ctx.seed)

def main(policy, out, scratch, options):
    Reward.calls = 0
    prompts = [Prompt(f"p{{i}}", t, "c") for i, t in enumerate(["how do i run ?", "why is the sky blue ?", "what is a cat ?"] * 4)]
    ctx = CurriculumContext(arm="a", iteration=1, iterations=1, budget=12, seed=3, categories=["c"], evaluation=[], history=[],
                            workdir=scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    stream = open_stream(Curriculum(), ctx, prompts, passes=1, log=scratch / "stream.jsonl")
    out.mkdir(parents=True, exist_ok=True)
    stats = PPOPolicyTrainer(PPOOptions(model=str(policy), **options)).train(
        policy, prompts, Reward("good"), passes=1, out=out, seed=7, scratch=scratch, stream=stream)
    draws = [[g.prompt_id for g in b.groups] for b in stream.batches()]
    (out / "stats.json").write_text(json.dumps({{"steps": stats.steps, "episodes": stats.episodes, "metrics": stats.metrics,
                                                 "reward_calls": Reward.calls, "draws": draws,
                                                 "rewards": [[g.rewards for g in b.groups] for b in stream.batches()]}}))

if __name__ == "__main__":
    main(*map(Path, sys.argv[1:4]), json.loads(sys.argv[4]))
"""


@pytest.mark.slow
def test_online_ppo_stage_killed_mid_stage_draws_the_same_prompts(tmp_path: Path):
    torch = pytest.importorskip("torch")
    from test_ppo_resume import OPTIONS, load_script, weights, without_timing

    from helpers.tiny_models import save_tiny_gpt2

    policy = save_tiny_gpt2(tmp_path / "policy")
    stage = load_script(tmp_path / "ppo_online.py", PPO_SCRIPT.format(tests=str(TESTS)))
    stage.main(policy, tmp_path / "whole", tmp_path / "scratch-whole", OPTIONS)
    env = {**os.environ, "KILL_AT": "5", "TQDM_DISABLE": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            str(tmp_path / "ppo_online.py"),
            str(policy),
            str(tmp_path / "resumed"),
            str(tmp_path / "scratch"),
            json.dumps(OPTIONS),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[
        -3000:
    ]  # killed during step 5; the save of step 4 holds the stream
    assert (tmp_path / "scratch" / "ppo-step-00000004").is_dir() and (tmp_path / "scratch" / "stream.jsonl").exists()
    stage.main(policy, tmp_path / "resumed", tmp_path / "scratch", OPTIONS)
    a, b = (json.loads((tmp_path / d / "stats.json").read_text()) for d in ("whole", "resumed"))
    assert a["steps"] == b["steps"] == 6 and a["episodes"] == b["episodes"] == 12  # the budget of a static stage
    assert b["reward_calls"] == 2  # only steps 5 and 6 were redone
    assert b["draws"] == a["draws"] and b["rewards"] == a["rewards"]
    assert len({tuple(d) for d in a["draws"]}) > 1  # the curriculum really chose per step
    assert without_timing(b["metrics"]) == without_timing(a["metrics"])
    wa, wb = weights(tmp_path / "whole"), weights(tmp_path / "resumed")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
