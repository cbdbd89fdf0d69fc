"""The shipped online curricula (learnability, dynamic-filter, category-bandit) inside real TRL trainers, on testbed
questions with the testbed-tiny policy: through the TRL adapter (a script's ``GRPOTrainer``) and in an Experiment
with aopcore's own ``grpo`` and ``rloo`` trainers.

The training reward is the verifier, except that two categories are made certain: every completion of a
``uppercase`` question earns 1 (mastered) and every completion of a ``maximum`` question 0 (hopeless). The start
policy's held-out accuracy on both is about 0.5 (0.57 and 0.47), so a curriculum's prior calls them the most
learnable; only the rollouts can show that they teach nothing (zero-variance groups). That is what each online
curriculum must act on: learnability and the bandit move their draws away from them, the filter drops their groups.

Also here: the adapter's grouping (a prompt drawn twice in a row is two groups), and DAPO refill in aopcore's grpo and
rloo (dropped groups regenerated from refill draws before the step trains; a resumed stage refills alike).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

pytest.importorskip("trl")

from aopcore import CurriculumSession, Prompt  # noqa: E402
from aopcore.records import read_jsonl  # noqa: E402
from aopcore.steps import StepBatch, read_batches  # noqa: E402

MASTERED, HOPELESS = "uppercase", "maximum"
RIGGED = (MASTERED, HOPELESS)
GENERATIONS = 4


def rig(category: str, verified: float) -> float:
    """The training reward: certain for the two rigged categories, the verifier's for the others."""
    return 1.0 if category == MASTERED else 0.0 if category == HOPELESS else float(verified)


class RiggedVerifier:
    """An aopcore RewardModel: the verifier, with the two rigged categories made certain (the testbed tells a
    question's category from its text, also for questions the testbed writer made up)."""

    def __init__(self) -> None:
        from aopcore_testbed.verifier import VerifierReward

        self.verifier = VerifierReward()

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        from aopcore_testbed.skills import skill_of

        verified = self.verifier.score(list(prompts), list(responses))
        return [rig(getattr(skill_of(p), "name", ""), v) for p, v in zip(prompts, verified)]


def groups_in_order(batches: Sequence[StepBatch]):
    return [(g, k) for b in batches for g, k in zip(b.groups, b.kept)]


def rigged_share(batches: Sequence[StepBatch]) -> float:
    groups = [g for b in batches for g in b.groups]
    return sum(g.category in RIGGED for g in groups) / len(groups)


def check_groups(batches: Sequence[StepBatch], draws: int, per_draw: int | None) -> None:
    """Every draw reported once, in order, ``per_draw`` groups (None: refill draws vary) of ``GENERATIONS`` rewarded
    completions each."""
    assert [b.draw for b in batches] == list(range(draws))
    assert all(len(b.kept) == len(b.groups) and (per_draw is None or len(b.groups) == per_draw) for b in batches)
    for g in (g for b in batches for g in b.groups):
        assert len(g.rewards) == GENERATIONS and all(r in (0.0, 1.0) for r in g.rewards), g
        assert g.tokens >= GENERATIONS  # completion tokens came back with the rewards (at least an end token each)
        if g.category == MASTERED:
            assert g.rewards == (1.0,) * GENERATIONS  # the trainer's rewards reached the stream unchanged
        if g.category == HOPELESS:
            assert g.rewards == (0.0,) * GENERATIONS
    assert any(not g.zero_variance for b in batches for g in b.groups)  # the verifier's categories do vary


def expected_kept(batches: Sequence[StepBatch], cap: float) -> list[bool]:
    """The filter's rule, replayed over the groups in report order: drop a zero-variance group while the drops stay
    within ``cap`` of the groups reported so far."""
    kept, dropped = [], 0
    for seen, (g, _) in enumerate(groups_in_order(batches), start=1):
        drop = g.zero_variance and dropped + 1 <= cap * seen
        dropped += drop
        kept.append(not drop)
    return kept


def check_filter_booking(batches: Sequence[StepBatch], record: dict, cap: float) -> None:
    """Exactly the zero-variance groups up to the cap were dropped, and they are booked as choosing compute."""
    pairs = groups_in_order(batches)
    kept = [k for _, k in pairs]
    assert kept == expected_kept(batches, cap)
    dropped = [g for g, k in pairs if not k]
    assert dropped and all(g.zero_variance for g in dropped)
    assert any(g.zero_variance for g, k in pairs if k)  # the cap bound: later zero-variance groups were trained on
    assert len(dropped) <= cap * len(pairs)
    assert record["dropped_groups"] == len(dropped)
    assert record["dropped_rollouts"] == GENERATIONS * len(dropped)
    assert record["dropped_tokens"] == sum(g.tokens for g in dropped) > 0


# ---- (a) through the TRL adapter: a script's GRPOTrainer -----------------------------------------------------------
class Crash(Exception):
    pass


RUN_DRAWS: dict[Path, list[int]] = {}  # per run folder: the draws whose rewards the last run_session computed


def run_session(
    tmp_path: Path,
    curriculum: str,
    options: dict,
    *,
    steps: int,
    prompts_per_draw: int = 8,
    seed: int = 0,
    save_steps: int | None = None,
    crash_at: int | None = None,
):
    """One round of ``steps`` GRPO steps with TRLCurriculum, held-out evaluation with the real verifier.

    ``save_steps``: TRL checkpoints (and a resume from the latest one found); ``crash_at``: raise after that step."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from transformers.trainer_utils import get_last_checkpoint
    from trl import GRPOConfig, GRPOTrainer

    from aopcore_hf.generation import PLAIN_TEMPLATE
    from aopcore_hf.models import resolve_model
    from aopcore_integrations.trl import TRLCurriculum
    from aopcore_testbed.verifier import VerifierReward

    path = resolve_model("testbed-tiny")
    model, tokenizer = AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    verifier = VerifierReward()

    calls: list[int] = []

    def correct(prompts, completions, question, aopcore_category, aopcore_draw, **_):
        calls.append(aopcore_draw[0])
        return [rig(c, v) for c, v in zip(aopcore_category, verifier.score(question, completions))]

    session = CurriculumSession(
        curriculum,
        options=options,
        heldout="testbed:heldout",
        state_dir=tmp_path / "session",
        budget=16,
        reward="verifier",
        rounds=1,
        seed=seed,
    )
    aop = TRLCurriculum(session, every=steps, row=lambda t: {"prompt": PLAIN_TEMPLATE.format(prompt=t), "question": t})
    config = GRPOConfig(
        output_dir=str(tmp_path / "trl"),
        per_device_train_batch_size=prompts_per_draw * GENERATIONS,
        num_generations=GENERATIONS,
        max_completion_length=4,
        temperature=1.0,
        learning_rate=1e-4,
        beta=0.0,
        max_steps=steps,
        logging_steps=1,
        report_to="none",
        use_cpu=True,
        seed=seed,
        shuffle_dataset=False,
        disable_tqdm=True,
        **({"save_strategy": "steps", "save_steps": save_steps} if save_steps else {"save_strategy": "no"}),
    )

    class CrashAt(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == crash_at:
                raise Crash(state.global_step)

    trainer = GRPOTrainer(
        model=model,
        reward_funcs=aop.reward(correct),
        args=config,
        train_dataset=aop.dataset(),
        processing_class=tokenizer,
        callbacks=[aop.callback, CrashAt()],
    )
    last = get_last_checkpoint(str(tmp_path / "trl")) if save_steps and (tmp_path / "trl").is_dir() else None
    trainer.train(resume_from_checkpoint=last)
    assert trainer.state.global_step == steps
    arm = tmp_path / "session" / "arms" / "session" / "iter-01"
    train = next(r for r in session.ledger() if r["stage"] == "arms/session/iter-01/train")
    RUN_DRAWS[tmp_path] = calls
    return read_batches(arm / "steps.jsonl"), read_jsonl(arm / "prompts.jsonl", Prompt), train


def heldout_accuracy(tmp_path: Path) -> dict[str, float]:
    """The start policy's held-out accuracy per category: the session's evaluation, or (for a curriculum that reads
    none, which the session then does not make) the same greedy evaluation made here."""
    by: dict[str, list[float]] = {}
    path = tmp_path / "session" / "sft" / "evaluation.jsonl"
    if not path.exists():
        return start_policy_accuracy()
    for line in path.read_text().splitlines():
        e = json.loads(line)
        by.setdefault(e["category"], []).append(e["reward"])
    return {c: sum(v) / len(v) for c, v in by.items()}


def start_policy_accuracy() -> dict[str, float]:
    """What TRLCurriculum's default evaluation computes: greedy answers of testbed-tiny, 4 new tokens, the verifier."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from aopcore.data.sources import load_source
    from aopcore_hf.generation import PLAIN_TEMPLATE
    from aopcore_hf.models import resolve_model
    from aopcore_integrations.trl import generate_with
    from aopcore_testbed.verifier import VerifierReward

    path = resolve_model("testbed-tiny")
    model, tokenizer = AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    questions = load_source("testbed:heldout", Path.cwd())
    answers = generate_with(
        model, tokenizer, [PLAIN_TEMPLATE.format(prompt=q.text) for q in questions], max_new_tokens=4
    )
    by: dict[str, list[float]] = {}
    for q, r in zip(questions, VerifierReward().score([q.text for q in questions], answers)):
        by.setdefault(q.category, []).append(r)
    return {c: sum(v) / len(v) for c, v in by.items()}


def not_the_plan(batches: Sequence[StepBatch], plan: Sequence[Prompt]) -> None:
    """The draws are the curriculum's choice, not the planned prompts in a seeded order (what a static arm gets)."""
    drawn = [g.prompt_id for b in batches for g in b.groups]
    assert (
        len(set(drawn) - {p.id for p in plan}) > len(drawn) / 2
    )  # per step it samples the whole pool, not the round's plan


@pytest.mark.parametrize(
    "curriculum,options",
    [
        ("learnability", {"pool": "testbed:pool"}),
        ("category-bandit", {"pool": "testbed:pool", "temperature": 0.1}),
    ],
)
@pytest.mark.slow
def test_shipped_online_curriculum_moves_away_from_zero_variance_categories_inside_grpo_trainer(
    curriculum: str, options: dict, tmp_path: Path
):
    """10 GRPO steps of 8 prompts x 4 completions. Learnability's prior (held-out accuracy) ranks the rigged categories
    among the most learnable, the bandit starts uniform; from the third draw on (lag 1) each sees the rollouts, and
    from the fifth it draws the rigged categories at less than half their share of the pool.

    The bandit runs at temperature 0.1: at SEC's 0.2 the testbed's |advantages| (about 0.2-0.3 for four binary rewards)
    move it too little to tell from chance in ten steps."""
    batches, plan, train = run_session(tmp_path, curriculum, options, steps=10)
    check_groups(batches, draws=10, per_draw=8)
    assert train["stream"]["online"] is True and train["stream"]["draws"] == 10
    assert "dropped_groups" not in train  # nothing filters here
    not_the_plan(batches, plan)
    # the bandit reads no evaluation (uses_evaluation = False): the session makes none for it
    assert (tmp_path / "session" / "sft" / "evaluation.jsonl").exists() == (curriculum != "category-bandit")
    heldout = heldout_accuracy(tmp_path)
    assert 0.3 < heldout[MASTERED] < 0.7 and 0.3 < heldout[HOPELESS] < 0.7  # the prior sees nothing special in them
    late = rigged_share(batches[4:])
    assert late < 0.5 * 2 / 7, [
        sum(g.category in RIGGED for g in b.groups) for b in batches
    ]  # 2/7: their share of the pool


@pytest.mark.slow
def test_shipped_dynamic_filter_drops_zero_variance_groups_up_to_its_cap_inside_grpo_trainer(tmp_path: Path):
    """dynamic-filter around learnability in a GRPOTrainer: the groups it drops are exactly the zero-variance ones its
    cap allows, in report order; the session books them (groups, rollouts, tokens) in the round's record."""
    cap = 0.25
    options = {"wrap": "learnability", "wrap_options": {"pool": "testbed:pool"}, "max_extra_fraction": cap}
    batches, plan, train = run_session(tmp_path, "dynamic-filter", options, steps=6)
    check_groups(batches, draws=6, per_draw=8)
    check_filter_booking(batches, train, cap)
    assert train["stream"]["dropped_groups"] == train["dropped_groups"]
    not_the_plan(batches, plan)


@pytest.mark.slow
def test_shipped_online_curriculum_resumed_inside_grpo_trainer_draws_what_an_uninterrupted_run_draws(tmp_path: Path):
    """dynamic-filter around category-bandit, checkpoints every 2 steps: the run crashes after step 3, a fresh session,
    adapter and trainer resume from checkpoint-2 and generate only draws 2 and 3; every draw, reward, drop and booked
    count is the uninterrupted run's (the stream replays its log into a fresh selector, the filter's cap state too)."""
    options = {
        "wrap": "category-bandit",
        "wrap_options": {"pool": "testbed:pool", "temperature": 0.1},
        "max_extra_fraction": 0.25,
    }
    ref, _, ref_train = run_session(tmp_path / "ref", "dynamic-filter", options, steps=4, save_steps=2)
    with pytest.raises(Crash):
        run_session(tmp_path / "run", "dynamic-filter", options, steps=4, save_steps=2, crash_at=3)
    assert sorted(p.name for p in (tmp_path / "run" / "trl").glob("checkpoint-*")) == ["checkpoint-2"]
    assert not (
        tmp_path / "run" / "session" / "arms" / "session" / "iter-01" / "steps.jsonl"
    ).exists()  # the round was cut short
    got, _, train = run_session(tmp_path / "run", "dynamic-filter", options, steps=4, save_steps=2)
    assert RUN_DRAWS[tmp_path / "run"] == [2, 3]  # resumed at checkpoint-2's data position
    assert [(b.draw, [(g.prompt_id, g.rewards) for g in b.groups], b.kept) for b in got] == [
        (b.draw, [(g.prompt_id, g.rewards) for g in b.groups], b.kept) for b in ref
    ]
    assert any(not k for b in ref for k in b.kept)  # the filter dropped something: its replayed cap state mattered
    for key in ("dropped_groups", "dropped_rollouts", "dropped_tokens"):
        assert train[key] == ref_train[key]


# ---- (b) in an Experiment with aopcore's grpo and rloo ------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["grpo", "rloo"])
def test_shipped_online_curricula_in_an_experiment_with_our_trl_trainers(algorithm: str, tmp_path: Path):
    """One iteration of 24 prompts x 2 passes (12 draws of 4 prompts x 4 completions) per arm, with aopcore's `grpo`
    or `rloo`: every arm trains the same steps; the online arms draw beyond their plan and, from the fifth draw on,
    the rigged categories at less than their share of the pool (the rigged reward also scores the held-out
    evaluation, so learnability's prior knows them from the start; the bandit learns them from the rollouts); the
    filter (around AOP, a static curriculum: its plan, in a seeded order) drops the zero-variance groups up to its
    cap, booked in the train stage's ledger, and the trainer refills them from further draws of the plan."""
    from aopcore import Budget, Experiment
    from aopcore.registry import load_registry

    registry = load_registry()
    cap = 0.3
    aop = {"samples_per_category": 2, "draws": 4, "questions_per_call": 20, "unlabeled": "drop"}
    arms = {
        "learnability": registry.get("curriculum", "learnability").build({"pool": "testbed:pool"}),
        "bandit": registry.get("curriculum", "category-bandit").build({"pool": "testbed:pool", "temperature": 0.1}),
        "filter": registry.get("curriculum", "dynamic-filter").build(
            {"wrap": "aop", "wrap_options": aop, "max_extra_fraction": cap}
        ),
    }
    trainer = registry.get("trainer", algorithm).build(
        {
            "model": "testbed-tiny",
            "device": "cpu",
            "learning_rate": 1e-4,
            "batch_size": 16,
            "num_generations": GENERATIONS,
            "beta": 0.0,
            "eval_max_new_tokens": 4,
            "eval_batch_size": 64,
            "generation": {"max_new_tokens": 4, "temperature": 1.0},
        }
    )
    from aopcore.data.sources import load_source

    heldout = [q for k, q in enumerate(load_source("testbed:heldout", tmp_path)) if k % 4 == 0]  # 10 per category
    test = load_source("testbed:test", tmp_path)[:7]
    exp = Experiment(
        name="online",
        output_dir=tmp_path,
        trainer=trainer,
        reward=RiggedVerifier(),
        arms=arms,
        heldout=heldout,
        test_prompts=test,
        feedback=registry.get("feedback", "testbed-writer").build({}),
        budget=Budget(iterations=1, records_per_iteration=24, passes=2),
        seed=0,
    )
    exp.run()
    run = tmp_path / "online"
    steps = {}
    for arm in arms:
        it = run / "arms" / arm / "iter-01"
        batches = read_batches(it / "steps.jsonl")
        record = json.loads((run / "stages" / f"arms__{arm}__iter-01__train.json").read_text())
        refills = record["stream"]["refills"]
        check_groups(batches, draws=12 + refills, per_draw=4 if arm != "filter" else None)
        steps[arm] = record["steps"]
        assert record["stream"]["draws"] == 12 + refills and record["stream"]["online"] is True
        plan = read_jsonl(it / "prompts.jsonl", Prompt)
        if arm == "filter":  # our trainers refill: each dropped group is replaced by a refill draw's group
            check_filter_booking(batches, record, cap)
            assert record["stream"]["dropped_groups"] == record["dropped_groups"]
            assert 0 < refills and sum(len(b.groups) for b in batches) == 12 * 4 + record["dropped_groups"]
            assert {g.prompt_id for b in batches for g in b.groups} <= {p.id for p in plan}  # a static inner: its plan
        else:
            assert "dropped_groups" not in record and refills == 0
            not_the_plan(batches, plan)
            assert rigged_share(batches[4:]) < 2 / 7, (arm, rigged_share(batches[4:]))
    assert (
        len(set(steps.values())) == 1 and steps["filter"] == 12
    )  # equal steps: the channel changes which prompts, not how many


# ---- the adapter's grouping -----------------------------------------------------------------------------------------
class _Repeats:
    """Draws ``a, a, b``: a prompt twice in a row (learnability refilling a draw, a planned order across a pass, a
    bandit's deck running out can all do that)."""

    def __init__(self) -> None:
        self.prompts = [Prompt("a", "question a", "x"), Prompt("b", "question b", "y")]

    def draw(self, n: int, draw: int) -> list[Prompt]:
        return [self.prompts[0], self.prompts[0], self.prompts[1]][:n]

    def observe(self, batch: StepBatch) -> None:
        pass


def test_a_prompt_drawn_twice_in_a_row_is_two_groups_of_num_generations(tmp_path: Path):
    """TRL repeats each row num_generations times in a row, so completions 0-2 and 3-5 below are two rows of prompt
    a; grouping by runs of the id would report one group of 6 (and a filter would judge, and replace, the pair)."""
    from trl import GRPOConfig

    from aopcore.steps import PromptStream
    from aopcore_integrations.trl import StreamFeed

    stream = PromptStream(_Repeats(), make_selector=_Repeats)
    feed = StreamFeed(stream, row=lambda t: {"prompt": t}, max_steps=1)
    feed.configure(
        GRPOConfig(
            output_dir=str(tmp_path),
            per_device_train_batch_size=9,
            num_generations=3,
            max_steps=1,
            shuffle_dataset=False,
            use_cpu=True,
            report_to="none",
        )
    )
    rows = list(feed.dataset())
    assert [r["aopcore_id"] for r in rows] == ["a", "a", "b"]
    columns = {k: [r[k] for r in rows for _ in range(3)] for k in rows[0]}
    raw = [1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.5, 0.5, 0.5]
    feed.reward(lambda prompts, completions, **_: raw)(prompts=columns["prompt"], completions=["c"] * 9, **columns)
    (batch,) = stream.batches()
    assert [(g.prompt_id, g.rewards) for g in batch.groups] == [
        ("a", (1.0, 1.0, 1.0)),
        ("a", (0.0, 1.0, 0.0)),
        ("b", (0.5, 0.5, 0.5)),
    ]
    bad = {**columns, "aopcore_id": ["a", "a", "b"] * 3}  # rows interleaved: not what TRL hands over
    feed2 = StreamFeed(PromptStream(_Repeats(), make_selector=_Repeats), row=lambda t: {"prompt": t}, max_steps=1)
    feed2.configure(
        GRPOConfig(
            output_dir=str(tmp_path),
            per_device_train_batch_size=9,
            num_generations=3,
            max_steps=1,
            shuffle_dataset=False,
            use_cpu=True,
            report_to="none",
        )
    )
    list(feed2.dataset())
    from aopcore.errors import RuntimeFailure

    with pytest.raises(RuntimeFailure, match="belong to prompts"):
        feed2.reward(lambda prompts, completions, **_: raw)(prompts=columns["prompt"], completions=["c"] * 9, **bad)


# ---- DAPO refill in aopcore's grpo and rloo -------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["grpo", "rloo"])
def test_our_trl_trainers_refill_the_groups_the_filter_drops(algorithm: str, tmp_path: Path, monkeypatch):
    """dynamic-filter around learnability with aopcore's grpo/rloo: each generation batch's dropped groups are
    replaced by refill draws, generated and scored at once, so every step trains on 4 groups the filter kept (the
    zero-advantage rows left are exactly those of the zero-variance groups its cap kept); the drops are booked, the
    stage trains the planned steps, and the refills are extra generation within the cap."""
    from aopcore.ledger import StageMeter
    from aopcore.registry import load_registry
    from aopcore.steps import open_stream
    from aopcore.testing import make_context
    from aopcore_hf.models import resolve_model
    from aopcore_integrations import trl as adapter
    from aopcore_testbed.skills import CATEGORIES

    cap = 0.3
    registry = load_registry()
    curriculum = registry.get("curriculum", "dynamic-filter").build(
        {
            "wrap": "learnability",
            "wrap_options": {"pool": "testbed:pool"},
            "max_extra_fraction": cap,
            "skip_probability": 0.0,
        }
    )
    ctx = make_context(tmp_path / "ctx", rewards={c: 0.5 for c in CATEGORIES}, budget=16)
    plan = curriculum.prompts(ctx)
    stream = open_stream(curriculum, ctx, plan, passes=2, log=tmp_path / "scratch" / "stream.jsonl")
    trained: list[tuple[range, dict]] = []  # per generation batch: its stream draws, and the batch TRL trains on
    generate = adapter.RefillFeed.generate

    def spy(self, score, rows, *, pad_id):
        first = self.stream.draws
        out = generate(self, score, rows, pad_id=pad_id)
        trained.append((range(first, self.stream.draws), out))
        return out

    monkeypatch.setattr(adapter.RefillFeed, "generate", spy)
    trainer = registry.get("trainer", algorithm).build(
        {
            "model": "testbed-tiny",
            "device": "cpu",
            "learning_rate": 1e-4,
            "batch_size": 16,
            "num_generations": GENERATIONS,
            "beta": 0.0,
            "generation": {"max_new_tokens": 4, "temperature": 1.0},
        }
    )
    policy = Path(resolve_model("testbed-tiny"))
    with StageMeter("train") as meter:
        stats = trainer.train(policy, plan, RiggedVerifier(), passes=2, out=tmp_path / "p1", seed=0, stream=stream)
    stream.finish()
    assert stats.steps == 8 and len(trained) == 8  # 16 prompts x 2 passes, 4 per generation batch: the planned steps
    batches = {b.draw: b for b in stream.batches()}
    summary = stream.summary()
    assert summary["refills"] > 0 and summary["draws"] == 8 + summary["refills"]
    assert [d for draws, _ in trained for d in draws] == sorted(
        batches
    )  # every draw made belongs to one batch, in order
    kept_zero_variance = 0
    for draws, out in trained:
        groups = [(g, k) for d in draws for g, k in zip(batches[d].groups, batches[d].kept)]
        for before, after in zip(draws, draws[1:]):  # each refill draws as many prompts as the draw before it dropped
            assert len(batches[after].groups) == batches[before].kept.count(False)
        assert sum(k for _, k in groups) == 4 and batches[draws[-1]].kept.count(False) == 0  # the batch is full again
        assert out["advantages"].shape[0] == 16 == out["completion_ids"].shape[0]
        zero_variance = sum(g.zero_variance for g, k in groups if k)
        assert int((out["advantages"] == 0).sum()) == GENERATIONS * zero_variance  # no dropped group's rows trained
        kept_zero_variance += zero_variance
    groups = [(g, k) for b in stream.batches() for g, k in zip(b.groups, b.kept)]
    dropped = [g for g, k in groups if not k]
    assert len(dropped) == sum(len(batches[d].groups) for draws, _ in trained for d in draws[1:])  # each one replaced
    assert len(dropped) <= cap * len(groups) and all(g.zero_variance for g in dropped)
    assert meter.counts["dropped_groups"] == len(dropped) == stream.dropped_groups
    assert meter.counts["dropped_rollouts"] == GENERATIONS * len(dropped)
    assert meter.counts["dropped_tokens"] == sum(g.tokens for g in dropped)
    assert stats.tokens_generated == sum(g.tokens for g, _ in groups)  # refills are generated compute too
    print(f"{algorithm}: {summary}, kept zero-variance groups {kept_zero_variance}")  # shown with -s


class CrashingReward(RiggedVerifier):
    """RiggedVerifier that raises at its ``at``-th call (0: never): a stage killed mid-training."""

    def __init__(self, at: int = 0) -> None:
        super().__init__()
        self.at, self.calls = at, 0

    def score(self, prompts, responses):
        self.calls += 1
        if self.calls == self.at:
            raise Crash(self.calls)
        return super().score(prompts, responses)


@pytest.mark.slow
def test_a_refilling_stage_resumed_from_its_checkpoint_draws_and_drops_what_an_uninterrupted_one_does(tmp_path: Path):
    """aopcore's grpo with the filter and save_every_steps=2: a crash at the 9th reward call (refills included), then
    the stage again with a fresh stream on the same log: it resumes from its checkpoint and every draw, refill, reward
    and drop equals an uninterrupted stage's."""
    from aopcore.registry import load_registry
    from aopcore.steps import open_stream
    from aopcore.testing import make_context
    from aopcore_hf.models import resolve_model
    from aopcore_testbed.skills import CATEGORIES

    registry = load_registry()
    options = {"wrap": "learnability", "wrap_options": {"pool": "testbed:pool"}, "max_extra_fraction": 0.3}
    policy = Path(resolve_model("testbed-tiny"))

    def stage(folder: Path, out: str, reward: RiggedVerifier):
        curriculum = registry.get("curriculum", "dynamic-filter").build(options)
        ctx = make_context(folder / "ctx", rewards={c: 0.5 for c in CATEGORIES}, budget=16)
        plan = curriculum.prompts(ctx)
        stream = open_stream(curriculum, ctx, plan, passes=2, log=folder / "scratch" / "stream.jsonl")
        trainer = registry.get("trainer", "grpo").build(
            {
                "model": "testbed-tiny",
                "device": "cpu",
                "learning_rate": 1e-4,
                "batch_size": 16,
                "num_generations": GENERATIONS,
                "beta": 0.0,
                "save_every_steps": 2,
                "generation": {"max_new_tokens": 4, "temperature": 1.0},
            }
        )
        stats = trainer.train(
            policy, plan, reward, passes=2, out=folder / out, seed=0, scratch=folder / "scratch", stream=stream
        )
        stream.finish()
        return stats, stream

    ref_stats, ref = stage(tmp_path / "ref", "p", RiggedVerifier())
    crashing = CrashingReward(at=9)
    with pytest.raises(Crash):
        stage(tmp_path / "run", "p-killed", crashing)
    checkpoints = sorted(p.name for p in (tmp_path / "run" / "scratch" / "trl").glob("checkpoint-*"))
    assert checkpoints and checkpoints != ["checkpoint-8"]  # killed mid-stage, after a checkpoint
    resumed = CrashingReward()
    stats, stream = stage(tmp_path / "run", "p", resumed)
    assert 0 < resumed.calls < ref.summary()["draws"]  # it generated only what the checkpoint did not cover
    assert stream.summary() == ref.summary() and stream.summary()["refills"] > 0

    def seen(s):
        return [(b.draw, [(g.prompt_id, g.rewards) for g in b.groups], b.kept) for b in s.batches()]

    assert seen(stream) == seen(ref)
    assert stats.steps == ref_stats.steps == 8


def test_splice_rows_pads_prompts_left_and_completions_right_and_recounts_the_normaliser():
    import torch

    from aopcore.errors import RuntimeFailure
    from aopcore_integrations.trl import splice_rows

    batch = {
        "prompt_ids": torch.tensor([[7, 8], [0, 9]]),
        "prompt_mask": torch.tensor([[1, 1], [0, 1]]),
        "completion_ids": torch.tensor([[5], [6]]),
        "completion_mask": torch.tensor([[1], [1]]),
        "advantages": torch.tensor([0.5, 0.0]),
        "old_per_token_logps": None,
        "num_items_in_batch": torch.tensor(2),
    }
    new = {
        "prompt_ids": torch.tensor([[3]]),
        "prompt_mask": torch.tensor([[1]]),
        "completion_ids": torch.tensor([[4, 2]]),
        "completion_mask": torch.tensor([[1, 1]]),
        "advantages": torch.tensor([-1.0]),
        "old_per_token_logps": None,
        "num_items_in_batch": torch.tensor(2),
    }
    out = splice_rows(batch, [True, False], new, pad_id=0)  # row 1 (advantage 0) out, the new row in
    assert out["prompt_ids"].tolist() == [[7, 8], [0, 3]] and out["prompt_mask"].tolist() == [[1, 1], [0, 1]]
    assert out["completion_ids"].tolist() == [[5, 0], [4, 2]] and out["completion_mask"].tolist() == [[1, 0], [1, 1]]
    assert out["advantages"].tolist() == [0.5, -1.0] and out["old_per_token_logps"] is None
    assert int(out["num_items_in_batch"]) == 3
    with pytest.raises(RuntimeFailure, match="text-only"):
        splice_rows({**batch, "pixel_values": torch.zeros(1)}, [True, True], new, pad_id=0)
