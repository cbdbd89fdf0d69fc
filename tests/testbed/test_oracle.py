"""The testbed's positive control (aopcore_testbed.oracle): what it picks, from what it measures, and its procedure."""

import json
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from aopcore import InputError, RuntimeFailure
from aopcore.registry import load_registry
from aopcore.steps import RolloutGroup, StepBatch, is_online, open_stream
from aopcore.testing import check_curriculum, make_context
from aopcore_testbed import sets
from aopcore_testbed.oracle import allocate, measurement_config, weights_from_gains
from aopcore_testbed.skills import CATEGORIES, SKILLS

ROOT = Path(__file__).parents[2]
POOL = {q.text: q.category for q in sets.build_sets()["pool"]}
PASS = {"addition": 1.0, "subtraction": 0.0, "maximum": 0.5, "counting": 0.5}  # the rest: 0.9


def policy(texts, sample=False, seed=0):
    """Right with the category's pass rate, independently per sampled answer (seeded by position)."""
    rng = random.Random(seed)
    out = []
    for t in texts:
        skill = SKILLS[POOL[t]]
        right = rng.random() < PASS.get(POOL[t], 0.9)
        out.append(skill.solve(t) if right else skill.distractor(t))
    return out


def build(**options):
    return load_registry().get("curriculum", "oracle").build(options)


def context(tmp_path, budget=20):
    reward = load_registry().get("reward", "verifier").build({})
    return make_context(tmp_path, rewards={c: 0.5 for c in CATEGORIES}, budget=budget, generate=policy, reward=reward)


def test_pass_rate_oracle_trains_on_the_prompts_a_binary_reward_teaches_most(tmp_path):
    ctx = context(tmp_path)
    asked = []
    ctx.generate = lambda texts, sample=False, seed=0: asked.append(len(texts)) or policy(texts, sample, seed)
    chosen = build(samples=16, max_share=0.5).prompts(ctx)
    counts = Counter(p.category for p in chosen)
    assert counts["addition"] == counts["subtraction"] == 0  # p = 1 and p = 0: nothing to learn
    assert counts["maximum"] == counts["counting"] == 10  # p(1 - p) largest, each up to the cap of half the budget
    assert all(0.2 <= p.provenance.extra["pass_rate"] <= 0.8 for p in chosen)
    # it measures through ctx.generate (booked by the experiment as choosing compute): 16 answers per pool prompt
    assert asked == [16 * 560]


def test_pass_rate_oracle_contract(tmp_path):
    check_curriculum(lambda: build(samples=4), context(tmp_path, budget=16), iterations=2)
    check_curriculum(lambda: build(samples=4, per_step=False), context(tmp_path / "plan", budget=16), iterations=2)


def draw_and_report(stream, draws, n=16, seed=0, skill=None):
    """A trainer: draw ``n`` prompts, one completion each, right with the category's pass rate, report."""
    rng = random.Random(seed)
    counts = Counter()
    for _ in range(draws):
        prompts = stream.next(n)
        counts.update(p.category for p in prompts)
        rates = {**PASS, **(skill or {})}
        stream.report(
            stream.draws - 1,
            [RolloutGroup(p.id, p.category, (float(rng.random() < rates.get(p.category, 0.9)),), 2) for p in prompts],
        )
    stream.finish()
    return counts


def test_per_step_oracle_draws_every_step_by_measured_pass_rates_and_follows_the_rollouts(tmp_path):
    ctx = context(tmp_path)
    cur = build(samples=8)
    assert (
        is_online(cur)
        and not is_online(build(samples=8, per_step=False))
        and not is_online(build(weights={"addition": 1.0}))
    )
    stream = open_stream(cur, ctx, cur.prompts(ctx), passes=4)
    counts = draw_and_report(stream, draws=20)
    # the whole pool (560), not the 20 planned prompts; p = 1 and p = 0 get only the explore floor
    assert len({g.prompt_id for b in stream.batches() for g in b.groups}) > 100
    learnable = counts["maximum"] + counts["counting"]
    assert learnable > 0.5 * sum(counts.values()) and counts["addition"] + counts["subtraction"] < 0.1 * learnable, (
        counts
    )
    # the rollouts move the measured rates: a prompt that keeps passing is drawn less
    sel = stream.selector
    target = next(c for c in sel.candidates if c.category == "maximum")
    before = sel.weights()[sel.candidates.index(target)]
    for _ in range(30):
        sel.observe(StepBatch(1, 0, (RolloutGroup(target.id, "maximum", (1.0,), 2),)))
    assert sel.weights()[sel.candidates.index(target)] < 0.5 * before


def test_per_step_oracle_resumes_the_same_draws_and_names_a_lost_measurement(tmp_path):
    ctx = context(tmp_path)
    cur = build(samples=4)
    plan = cur.prompts(ctx)
    whole = open_stream(cur, ctx, plan, passes=4, log=tmp_path / "a.jsonl")
    draw_and_report(whole, draws=8)
    crashed = open_stream(build(samples=4), ctx, plan, passes=4, log=tmp_path / "b.jsonl")
    draw_and_report(crashed, draws=5)
    resumed = open_stream(build(samples=4), ctx, plan, passes=4, log=tmp_path / "b.jsonl")
    resumed.restore(3)
    assert [p.id for p in resumed.next(16)] == [g.prompt_id for g in whole.batches()[3].groups]
    for f in tmp_path.glob("oracle-pass-rates-iter-*.json"):
        f.unlink()
    with pytest.raises(RuntimeFailure, match="measured pass rates .* are missing"):
        open_stream(build(samples=4), ctx, plan, passes=4).next(4)


def test_pass_rate_oracle_needs_the_policy(tmp_path):
    with pytest.raises(InputError, match="needs the policy"):
        build().prompts(make_context(tmp_path, rewards={c: 0.5 for c in CATEGORIES}, budget=8))


def test_weights_from_gains_and_allocation():
    w = weights_from_gains({"a": 0.04, "b": 0.0, "c": -0.04, "d": -0.2}, boost=2.0, floor=0.25)
    assert w["a"] == pytest.approx(1.4) and w["b"] == 1.0 and w["c"] == pytest.approx(0.6) and w["d"] == 0.25
    counts = allocate({"a": 3, "b": 1}, ["a", "b", "c"], 10)
    assert counts == {"a": 6, "b": 2, "c": 2} and sum(allocate(w, list(w), 13).values()) == 13


def test_gains_mode_allocates_by_the_measured_file(tmp_path):
    gains = tmp_path / "gains.json"
    gains.write_text(json.dumps({"gains": {c: (0.05 if c == "counting" else 0.0) for c in CATEGORIES}}))
    chosen = build(mode="gains", gains=str(gains), boost=3.0).prompts(
        make_context(tmp_path, rewards={c: 0.5 for c in CATEGORIES}, budget=40)
    )
    counts = Counter(p.category for p in chosen)
    assert counts["counting"] == 16 and all(counts[c] == 4 for c in CATEGORIES if c != "counting")
    with pytest.raises(InputError, match="no measured gains"):
        build(mode="gains", gains=str(tmp_path / "missing.json"))


def test_measurement_config_scores_on_the_test_split_and_validates(tmp_path):
    text = measurement_config(ROOT / "examples" / "testbed.toml", tmp_path, seeds=[100], iterations=1, boost_weight=3.0)
    assert 'heldout = "testbed:test"' in text and text.count('curriculum = "oracle"') == 1 + len(CATEGORIES)
    cfg = ROOT / "examples" / ".test-oracle-measure.toml"
    cfg.write_text(text)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "aopcore.cli", "validate", str(cfg)], capture_output=True, text=True, timeout=300
        )
    finally:
        cfg.unlink()
    assert proc.returncode == 0, proc.stderr
    assert "boost-counting (oracle)" in proc.stdout
