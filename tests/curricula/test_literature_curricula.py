"""The literature's curricula (sws, mopps, speed, adarft) against the real per-step channel and the testbed's
writer, verifier and pool: each does what its paper says, books what it spends, resumes and is deterministic."""

import json
import random
from collections import Counter
from pathlib import Path

import pytest

from aopcore import InputError, RuntimeFailure
from aopcore.ledger import StageMeter, counted_context
from aopcore.registry import load_registry
from aopcore.steps import RolloutGroup, open_stream
from aopcore.testing import FakeFeedbackLLM, check_curriculum, make_context
from aopcore_curricula.adarft import TargetDifficulty
from aopcore_testbed import sets
from aopcore_testbed.skills import CATEGORIES, SKILLS
from aopcore_testbed.writer import TestbedWriter as Writer

from helpers import run_cli

ROOT = Path(__file__).parents[2]
POOL = {q.text: q.category for q in sets.build_sets()["pool"]}
SKILL = {"addition": 0.97, "subtraction": 0.02}  # mastered, hopeless; the others 0.5
PASS = {"addition": 1.0, "subtraction": 0.0}  # the policy below: always right, never right; the others 0.5


def build(name, **options):
    return load_registry().get("curriculum", name).build(options)


def policy(texts, sample=False, seed=0):
    """Right with its category's pass rate (PASS, else 0.5), independently per answer, seeded by call."""
    rng = random.Random(seed)
    out = []
    for t in texts:
        skill = SKILLS[POOL.get(t) or Writer.category_of(t)]
        right = rng.random() < PASS.get(skill.name, 0.5)
        out.append(skill.solve(t) if right else skill.distractor(t))
    return out


def verifier():
    return load_registry().get("reward", "verifier").build({})


def ctx_for(tmp_path, rewards=None, **kw):
    kw.setdefault("budget", 16)
    return make_context(tmp_path, rewards=rewards or {c: 0.5 for c in CATEGORIES}, **kw)


def simulate(stream, draws, n=8, group=1, seed=0, skill=SKILL, count_from=0):
    """A trainer: draw, 'generate' ``group`` completions per prompt with its category's pass rate, report."""
    rng = random.Random(seed)
    counts = Counter()
    for d in range(draws):
        prompts = stream.next(n)
        if d >= count_from:
            counts.update(p.category for p in prompts)
        groups = [
            RolloutGroup(
                p.id, p.category, tuple(float(rng.random() < skill.get(p.category, 0.5)) for _ in range(group)), 2
            )
            for p in prompts
        ]
        stream.report(stream.draws - 1, groups)
    stream.finish()
    return counts


# ---------------------------------------------------------------------------- contract, resume, options


def _contexts(tmp_path):
    writer = load_registry().get("feedback", "testbed-writer").build({})
    rewards = {c: [1.0, 0.0, 1.0] if c in ("addition", "maximum") else [0.0, 1.0, 0.0] for c in CATEGORIES}
    evaluation = [r for r in make_context(rewards=rewards).evaluation]
    # held-out questions that are real testbed questions, so the writer's targets and the failures agree
    rng = random.Random(0)
    evaluation = [
        r.__class__(r.question_id, SKILLS[r.category].make(rng), r.category, r.answer, r.reward) for r in evaluation
    ]
    return {
        "mopps": ({"pool": "testbed:pool"}, ctx_for(tmp_path / "mopps")),
        "adarft": ({"pool": "testbed:pool"}, ctx_for(tmp_path / "adarft", evaluation=evaluation)),
        "speed": (
            {"pool": "testbed:pool", "n_init": 4},
            ctx_for(tmp_path / "speed", generate=policy, reward=verifier()),
        ),
        "sws": (
            {"questions_per_call": 10},
            ctx_for(tmp_path / "sws", evaluation=evaluation, feedback=writer, generate=policy, reward=verifier()),
        ),
    }


@pytest.mark.parametrize("name", ["mopps", "adarft", "speed", "sws"])
def test_contract_and_determinism(tmp_path, name):
    options, ctx = _contexts(tmp_path)[name]
    if name == "sws":  # check_curriculum's iteration 2 has no rollouts: its failures come from the evaluation
        options = {**options, "weakness_from": "evaluation"}
    check_curriculum(lambda: build(name, **options), ctx, iterations=2)


@pytest.mark.parametrize("name", ["mopps", "adarft", "speed"])
def test_resumed_stream_draws_the_same_prompts(tmp_path, name):
    options, ctx = _contexts(tmp_path)[name]
    cur = build(name, **options)
    plan = cur.prompts(ctx)
    whole = open_stream(cur, ctx, plan, passes=4, log=tmp_path / "a.jsonl")
    simulate(whole, draws=12, group=2)
    crashed = open_stream(cur, ctx, plan, passes=4, log=tmp_path / "b.jsonl")
    simulate(crashed, draws=7, group=2)
    resumed = open_stream(build(name, **options), ctx, plan, passes=4, log=tmp_path / "b.jsonl")
    resumed.restore(5)  # the trainer's checkpoint covered draws 0-4: the selector's state is replayed, not saved
    ids_whole = [[g.prompt_id for g in b.groups] for b in whole.batches()]
    assert [[g.prompt_id for g in b.groups] for b in resumed.batches()] == ids_whole[:5]
    assert [p.id for p in resumed.next(8)] == ids_whole[5]


@pytest.mark.parametrize(
    "override,message",
    [
        ("arms.mopps.target=1.5", "arms.mopps.target"),
        ("arms.speed.n_init=1", "arms.speed.n_init"),
        (
            "arms.adarft.initial_target=150",
            "arms.adarft.initial_target: Input should be less than or equal to 100 (got 150)",
        ),
        ("arms.sws.weakness_from='nope'", "arms.sws.weakness_from"),
    ],
)
def test_a_bad_option_is_one_named_line_and_exit_2(override, message):
    result = run_cli("validate", str(ROOT / "examples" / "testbed.toml"), "--set", override)
    assert result.returncode == 2 and result.stdout == "", result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: --set {override}: ") and message in line, line


# ---------------------------------------------------------------------------- mopps


def test_mopps_posterior_follows_the_rollouts_and_draws_near_the_target(tmp_path):
    cur = build("mopps", pool="testbed:pool")
    ctx = ctx_for(tmp_path)
    stream = open_stream(cur, ctx, cur.prompts(ctx), passes=4)
    counts = simulate(stream, draws=80, group=4, count_from=40)
    post = stream.selector.posteriors
    seen = {g.prompt_id: g.category for b in stream.batches() for g in b.groups}
    means = {c: [post.mean(i) for i, cat in seen.items() if cat == c] for c in ("addition", "subtraction", "maximum")}
    assert min(means["addition"]) > 0.6 and max(means["subtraction"]) < 0.4, means
    assert 0.25 < sum(means["maximum"]) / len(means["maximum"]) < 0.75
    mid = sum(counts[c] for c in CATEGORIES if c not in SKILL) / 5
    assert counts["addition"] < 0.5 * mid and counts["subtraction"] < 0.5 * mid, counts


def test_mopps_update_is_the_papers_with_decay():
    from aopcore_curricula.mopps import BetaPosteriors

    post = BetaPosteriors(prior_alpha=1.0, prior_beta=1.0, decay=0.5, threshold=0.5)
    post.update("p", [1.0, 1.0, 0.0, 1.0])
    assert post.get("p") == (4.0, 2.0)  # 0.5 * 1 + 0.5 * 1 + 3 successes; 0.5 + 0.5 + 1 failure
    post.update("p", [0.0])
    assert post.get("p") == (2.5, 2.5)  # 0.5 * 4 + 0.5 + 0; 0.5 * 2 + 0.5 + 1


def test_mopps_carries_posteriors_across_iterations(tmp_path):
    cur = build("mopps", pool="testbed:pool")
    first = ctx_for(tmp_path / "1")
    stream = open_stream(cur, first, cur.prompts(first), passes=4)
    simulate(stream, draws=80, group=4)
    fresh, carried = ctx_for(tmp_path / "2", iteration=2), ctx_for(tmp_path / "3", iteration=2)
    carried.steps = stream.batches()
    share = {
        k: sum(p.category in SKILL for p in cur.prompts(c)) / 16 for k, c in (("fresh", fresh), ("carried", carried))
    }
    assert share["carried"] < 0.5 * share["fresh"], share


# ---------------------------------------------------------------------------- speed


def test_speed_keeps_mid_pass_rates_and_books_the_screening(tmp_path):
    ctx = ctx_for(tmp_path, budget=16)
    ctx.__dict__.update(counted_context(generate=policy, reward=verifier()))
    cur = build("speed", pool="testbed:pool", n_init=4, keep_factor=2, screen_batch=16)
    with StageMeter("prompts") as meter:
        plan = cur.prompts(ctx)
    log = json.loads((tmp_path / "speed-screened-iter-01.json").read_text())
    assert len(plan) == 16 and len(log["kept"]) == 32 and log["filled"] == 0
    assert all(0 < k["rate"] < 1 for k in log["kept"])
    assert not {k["category"] for k in log["kept"]} & {"addition", "subtraction"}  # pass rate 1 and 0: dropped
    assert log["screened"] > 32 and log["screened"] % 16 == 0  # rounds of 16 until 32 passed
    assert meter.counts["policy_samples"] == meter.counts["reward_calls"] == 4 * log["screened"] == log["answers"]
    stream = open_stream(cur, ctx, plan, passes=4)
    drawn = [p.id for p in stream.next(32)]
    assert drawn == [k["id"] for k in log["kept"]]  # the steps deal every screened-in prompt, in order


def test_speed_needs_the_policy_and_its_screening(tmp_path):
    with pytest.raises(InputError, match="speed screens with the policy"):
        build("speed", pool="testbed:pool").prompts(ctx_for(tmp_path))
    ctx = ctx_for(tmp_path / "x", iteration=2, generate=policy, reward=verifier())
    with pytest.raises(RuntimeFailure, match="screened prompts .* are missing"):
        build("speed", pool="testbed:pool").selector(ctx, [])


# ---------------------------------------------------------------------------- adarft


def test_adarft_target_rises_after_high_reward_and_falls_after_low():
    t = TargetDifficulty(50.0, eta=50.0, alpha=2.0, beta=0.5, lo=0.0, hi=100.0)
    assert t.update(1.0) > 50.0 and t.value == pytest.approx(50 + 50 * 0.7615941559557649)
    high = t.value
    assert t.update(0.0) < high
    assert t.update(0.5) == t.history[-2]  # at the target reward it stays
    for _ in range(10):
        t.update(0.0)
    assert t.value == 0.0  # clipped at the easiest


def test_adarft_moves_to_harder_categories_while_the_policy_succeeds(tmp_path):
    rewards = {c: 0.9 - 0.1 * k for k, c in enumerate(CATEGORIES)}  # difficulty 10, 20, ... 70 by category order
    ctx = ctx_for(tmp_path, rewards=rewards)
    cur = build("adarft", pool="testbed:pool", eta=10.0)
    plan = cur.prompts(ctx)
    assert {p.category for p in plan} == {CATEGORIES[0]}  # starts at the easiest
    difficulty = json.loads((tmp_path / "adarft-difficulty.json").read_text())["difficulty"]
    assert difficulty[CATEGORIES[0]] == pytest.approx(10.0) and difficulty[CATEGORIES[-1]] == pytest.approx(70.0)
    stream = open_stream(cur, ctx, plan, passes=4)
    simulate(stream, draws=12, skill={c: 1.0 for c in CATEGORIES})  # every answer right: the target climbs
    assert stream.selector.target.value == pytest.approx(70.0)
    assert stream.batches()[-1].groups[0].category == CATEGORIES[-1]
    down = open_stream(cur, ctx, plan, passes=4)
    simulate(down, draws=3, skill={c: 0.0 for c in CATEGORIES})
    assert down.selector.target.value == pytest.approx(10.0)  # never right: stays at the easiest


# ---------------------------------------------------------------------------- sws


def test_sws_writes_its_problems_from_the_failed_categories(tmp_path):
    """The writer targets what the prompts name: every problem lands in a category that failed, in proportion to
    its failure ratio, and is that category's kind of question (checked from the text)."""
    writer = load_registry().get("feedback", "testbed-writer").build({})
    rng = random.Random(1)
    from aopcore import EvalRecord

    failure = {"subtraction": 1.0, "counting": 0.5}  # the others: all right
    evaluation = [
        EvalRecord(f"{c}-{k}", SKILLS[c].make(rng), c, "", 0.0 if k < 4 * failure.get(c, 0.0) else 1.0)
        for c in CATEGORIES
        for k in range(4)
    ]
    ctx = ctx_for(tmp_path, evaluation=evaluation, feedback=writer, budget=30)
    chosen = build("sws", questions_per_call=10, filter_samples=0).prompts(ctx)
    counts = Counter(p.category for p in chosen)
    assert set(counts) == {"subtraction", "counting"} and counts["subtraction"] == 20 and counts["counting"] == 10
    assert all(Writer.category_of(p.text) == p.category for p in chosen)
    assert not {p.text for p in chosen} & {r.question for r in evaluation}  # never a held-out question


def test_sws_shows_the_failed_problems_and_their_concepts_to_the_feedback_llm(tmp_path):
    rng = random.Random(2)
    failed = [SKILLS["reversal"].make(rng) for _ in range(3)]

    def script(prompt):
        if "foundational concepts" in prompt:
            return "1. reading a word from its last letter\n2. keeping every letter"
        return "\n".join(
            f"{i}. What is '{w}' spelled backwards?" for i, w in enumerate(["abc", "xyz", "kim", "tor"], 1)
        )

    llm = FakeFeedbackLLM(script)
    ctx = make_context(
        tmp_path,
        rewards={"reversal": [0.0, 0.0, 0.0], "addition": [1.0]},
        budget=4,
        feedback=llm,
    )
    ctx.evaluation = [
        r.__class__(r.question_id, q, r.category, "", r.reward) for r, q in zip(ctx.evaluation, failed)
    ] + ctx.evaluation[3:]
    chosen = build("sws", filter_samples=0, examples_per_call=3).prompts(ctx)
    assert len(chosen) == 4 and {p.category for p in chosen} == {"reversal"}
    concept_call, generation_call = llm.prompts[0], llm.prompts[1]
    assert all(q in concept_call and q in generation_call for q in failed)
    assert "reading a word from its last letter" in generation_call and '"reversal"' in generation_call


def test_sws_reads_later_failures_from_the_rollouts(tmp_path):
    writer = load_registry().get("feedback", "testbed-writer").build({})
    options, first = _contexts(tmp_path)["sws"]
    cur = build("sws", **options)
    plan = cur.prompts(first)
    stream = open_stream(cur, first, plan, passes=2)  # a watcher: the planned prompts, every batch observed
    simulate(stream, draws=4, n=8, skill={c: 0.0 if c == "uppercase" else 1.0 for c in CATEGORIES})
    second = ctx_for(tmp_path / "2", iteration=2, feedback=writer, history=plan, generate=policy, reward=verifier())
    second.steps = stream.batches()
    failed, ratios, source = cur.failed_problems(second)
    trained = {p.category for p in plan}
    assert "uppercase" in trained and source == "rollouts" and set(ratios) == ({"uppercase"} & trained)
    second.steps = []
    with pytest.raises(InputError, match="weakness_from"):
        cur.prompts(second)
