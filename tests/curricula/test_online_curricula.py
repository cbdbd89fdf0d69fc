"""The online curricula (learnability, dynamic-filter, category-bandit) against the real per-step channel.

Each is driven through ``aopcore.steps.PromptStream`` by a simulated trainer whose categories have known pass
rates; the tests check that the selection moves the way the method says (towards learnable prompts, away from
zero-variance groups, towards categories with large advantage), that pass rates carry across iterations through
``ctx.steps``, that drops are booked as choosing compute and capped, and that a resumed stream draws the same.
"""

import random
from collections import Counter

import pytest

from aopcore import InputError
from aopcore.ledger import StageMeter
from aopcore.registry import load_registry
from aopcore.steps import RolloutGroup, open_stream
from aopcore.testing import check_curriculum, make_context
from aopcore_testbed.skills import CATEGORIES

SKILL = {"addition": 0.97, "subtraction": 0.02}  # mastered, hopeless; the others 0.5


def build(name, **options):
    return load_registry().get("curriculum", name).build(options)


def ctx_for(tmp_path, **kw):
    kw.setdefault("budget", 16)
    return make_context(tmp_path, rewards={c: 0.5 for c in CATEGORIES}, **kw)


def simulate(stream, draws, n=8, group=1, seed=0, skill=SKILL, count_from=0):
    """A trainer: draw, 'generate' ``group`` completions per prompt with the category's pass rate, report."""
    rng = random.Random(seed)
    counts = Counter()
    for d in range(draws):
        prompts = stream.next(n)
        if d >= count_from:
            counts.update(p.category for p in prompts)
        groups = [
            RolloutGroup(
                p.id,
                p.category,
                tuple(float(rng.random() < skill.get(p.category, 0.5)) for _ in range(group)),
                3 * group,
            )
            for p in prompts
        ]
        stream.report(stream.draws - 1, groups)
    stream.finish()
    return counts


@pytest.mark.parametrize(
    "name,options",
    [
        ("learnability", {"pool": "testbed:pool"}),
        ("category-bandit", {"pool": "testbed:pool"}),
        ("dynamic-filter", {"wrap": "learnability", "wrap_options": {"pool": "testbed:pool"}}),
    ],
)
def test_contract(tmp_path, name, options):
    check_curriculum(lambda: build(name, **options), ctx_for(tmp_path), iterations=2)


def test_learnability_moves_draws_to_learnable_categories(tmp_path):
    cur = build("learnability", pool="testbed:pool")
    ctx = ctx_for(tmp_path)
    stream = open_stream(cur, ctx, cur.prompts(ctx), passes=4)
    counts = simulate(stream, draws=60, count_from=30)
    mid = sum(counts[c] for c in CATEGORIES if c not in SKILL) / 5
    assert counts["addition"] < 0.5 * mid and counts["subtraction"] < 0.5 * mid, counts


def test_learnability_carries_pass_rates_across_iterations(tmp_path):
    """Iteration 2's first draws already avoid what iteration 1's rollouts showed mastered (through ctx.steps)."""
    cur = build("learnability", pool="testbed:pool")
    first = ctx_for(tmp_path / "1")
    stream = open_stream(cur, first, cur.prompts(first), passes=4)
    simulate(stream, draws=60)
    fresh, carried = ctx_for(tmp_path / "2", iteration=2), ctx_for(tmp_path / "3", iteration=2)
    carried.steps = stream.batches()
    share = {}
    for label, ctx in (("fresh", fresh), ("carried", carried)):
        plan = cur.prompts(ctx)
        draws = open_stream(cur, ctx, plan, passes=4)
        c = Counter(p.category for p in draws.next(64))  # the first draw: before any rollout of this iteration
        share[label] = (c["addition"] + c["subtraction"]) / 64
        share[label + "_plan"] = sum(p.category in SKILL for p in plan) / len(plan)
    assert share["carried"] < 0.6 * share["fresh"], share
    assert share["carried_plan"] < share["fresh_plan"], share


def test_learnability_prior_from_heldout_accuracy(tmp_path):
    """Unseen prompts take their category's held-out accuracy as prior: a category at 0.5 outweighs one at 0.95."""
    cur = build("learnability", pool="testbed:pool")
    ctx = make_context(tmp_path, rewards={**{c: 0.5 for c in CATEGORIES}, "addition": 0.95}, budget=70)
    plan = Counter(p.category for p in cur.prompts(ctx))
    assert plan["addition"] < 0.5 * plan["maximum"], plan


def test_learnability_over_generated_candidates(tmp_path):
    """With `curriculum`, candidates come from an inner curriculum (AOP with the testbed writer) asked for
    budget x candidates_factor; the plan is drawn from them and the inner's feedback need is the arm's."""
    inner = {"samples_per_category": 3, "draws": 4, "questions_per_call": 20, "unlabeled": "drop"}
    cur = build("learnability", generate_with="aop", generate_options=inner, candidates_factor=2.0)
    assert "feedback" in cur.requires
    writer = load_registry().get("feedback", "testbed-writer").build({})
    ctx = make_context(tmp_path, rewards={c: 0.5 for c in CATEGORIES}, budget=8, feedback=writer)
    plan = cur.prompts(ctx)
    assert len(plan) == 8 and len({p.id for p in plan}) == 8
    stream = open_stream(cur, ctx, plan, passes=2)
    simulate(stream, draws=4)
    drawn = {g.prompt_id for b in stream.batches() for g in b.groups}
    assert len(drawn - {p.id for p in plan}) > 0  # per step it samples every candidate, not only the plan


def test_dynamic_filter_drops_zero_variance_groups_books_and_caps(tmp_path):
    cur = build("dynamic-filter", wrap="category-bandit", wrap_options={"pool": "testbed:pool"}, max_extra_fraction=0.3)
    ctx = ctx_for(tmp_path)
    stream = open_stream(cur, ctx, cur.prompts(ctx), passes=4)
    with StageMeter("train") as meter:
        simulate(stream, draws=30, group=4)
    batches = stream.batches()
    groups = [(g, k) for b in batches for g, k in zip(b.groups, b.kept)]
    dropped = [g for g, k in groups if not k]
    assert dropped and all(g.zero_variance for g in dropped)
    assert any(g.zero_variance for g, k in groups if k)  # the cap kept some once it was reached
    assert len(dropped) <= 0.3 * len(groups) + 1
    assert meter.counts["dropped_groups"] == len(dropped) == stream.dropped_groups
    assert meter.counts["dropped_rollouts"] == 4 * len(dropped)
    assert meter.counts["dropped_tokens"] == 12 * len(dropped)


def test_dynamic_filter_skips_predicted_zero_variance_prompts_for_single_completions(tmp_path):
    """PPO (one completion per prompt): nothing is dropped after the fact; prompts whose last rewards were all
    equal are skipped before generation (GRESO), so the hopeless and mastered ones are drawn less than unfiltered."""
    ctx = ctx_for(tmp_path, budget=32)
    plain = build("category-bandit", pool="testbed:pool", temperature=100.0)
    wrapped = build(
        "dynamic-filter",
        wrap="category-bandit",
        wrap_options={"pool": "testbed:pool", "temperature": 100.0},
        skip_probability=1.0,
        window=1,
    )
    out = {}
    for label, cur in (("plain", plain), ("filtered", wrapped)):
        stream = open_stream(cur, ctx, cur.prompts(ctx), passes=4)
        with StageMeter("train") as meter:
            counts = simulate(stream, draws=100, count_from=50)
        out[label] = (counts["addition"] + counts["subtraction"]) / sum(counts.values())
        out[label + "_skips"] = meter.counts.get("predicted_skips", 0)
        assert stream.dropped_groups == 0
    assert out["plain_skips"] == 0 and out["filtered_skips"] > 0
    assert out["filtered"] < out["plain"], out


def test_category_bandit_prefers_categories_with_large_advantage(tmp_path):
    cur = build("category-bandit", pool="testbed:pool")
    ctx = ctx_for(tmp_path)
    stream = open_stream(cur, ctx, cur.prompts(ctx), passes=4)
    counts = simulate(stream, draws=60, group=4, count_from=30)
    mid = sum(counts[c] for c in CATEGORIES if c not in SKILL) / 5
    assert counts["addition"] < 0.5 * mid and counts["subtraction"] < 0.5 * mid, counts
    q = stream.selector.q
    assert q["maximum"] > q["addition"] and q["maximum"] > q["subtraction"]


@pytest.mark.parametrize(
    "name,options",
    [
        ("learnability", {"pool": "testbed:pool"}),
        ("category-bandit", {"pool": "testbed:pool"}),
        ("dynamic-filter", {"wrap": "learnability", "wrap_options": {"pool": "testbed:pool"}}),
    ],
)
def test_resumed_stream_draws_the_same_prompts(tmp_path, name, options):
    cur = build(name, **options)
    ctx = ctx_for(tmp_path)
    plan = cur.prompts(ctx)
    whole = open_stream(cur, ctx, plan, passes=4, log=tmp_path / "a.jsonl")
    simulate(whole, draws=12, group=2)
    crashed = open_stream(cur, ctx, plan, passes=4, log=tmp_path / "b.jsonl")
    simulate(crashed, draws=7, group=2)
    resumed = open_stream(cur, ctx, plan, passes=4, log=tmp_path / "b.jsonl")
    resumed.restore(5)  # the trainer's checkpoint covered draws 0-4
    ids_whole = [[g.prompt_id for g in b.groups] for b in whole.batches()]
    ids_resumed = [[g.prompt_id for g in b.groups] for b in resumed.batches()]
    assert ids_resumed == ids_whole[:5]
    nxt = resumed.next(8)
    assert [p.id for p in nxt] == ids_whole[5]


def test_dynamic_filter_names_a_bad_inner_curriculum():
    with pytest.raises(InputError, match="nope"):
        build("dynamic-filter", wrap="nope")
    with pytest.raises(InputError, match="wrapped curriculum 'pool'"):
        build("dynamic-filter", wrap="pool", wrap_options={"no_such_option": 1})
