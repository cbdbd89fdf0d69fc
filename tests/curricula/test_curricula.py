"""Curricula on scripted feedback: pools, splits, SOP/AOP agreement, targeting, budgets, malformed output."""

import json
from collections import Counter
from pathlib import Path

import pytest

from aopcore import (
    Budget,
    CurriculumContext,
    EvalRecord,
    Experiment,
    Prompt,
    Question,
    RuntimeFailure,
)
from aopcore.records import read_jsonl
from aopcore_curricula.curricula import (
    AOPCurriculum,
    EvaCurriculum,
    PoolCurriculum,
    SOPCurriculum,
    VanillaCurriculum,
)
from aopcore_curricula.options import (
    EvaOptions,
    PoolOptions,
    ScoreBasedOptions,
    VanillaGenerationOptions,
)

import toy_components as toy
from helpers.fakes import HashEmbedder, ScriptedLLM

CATS = ["askbaking", "askvet", "legaladvice", "askphysics", "askhr", "changemyview"]
WEAK = ["askhr", "legaladvice"]


def evaluation() -> list[EvalRecord]:
    out = []
    for c in CATS:
        for k in range(6):
            reward = (0.1 if c in WEAK else 0.8) + 0.01 * k
            out.append(EvalRecord(f"{c}-{k}", f"{c} question {k}?", c, "an answer", reward))
    return out


def ctx(tmp_path: Path, iteration: int = 1, budget: int = 12, feedback=None, history=(), **kw) -> CurriculumContext:
    args = dict(
        arm="arm",
        iteration=iteration,
        iterations=3,
        budget=budget,
        seed=5,
        categories=CATS,
        evaluation=evaluation(),
        history=list(history),
        workdir=tmp_path,
        feedback=feedback or ScriptedLLM(),
        embedder=HashEmbedder(),
        base_seed=9,
    )
    args.update(kw)
    return CurriculumContext(**args)


SCORED = dict(samples_per_category=2, draws=4, questions_per_call=6, parallel_calls=2)


def test_vanilla_pool_is_generated_once_and_split_without_repeats(tmp_path: Path):
    llm = ScriptedLLM()
    cur = VanillaCurriculum(
        VanillaGenerationOptions(questions_per_call=3, keywords_per_category=2, n_clusters=3, pca_components=4)
    )
    slices = [cur.prompts(ctx(tmp_path, 1, feedback=llm))]
    calls_after_first = llm.calls
    slices += [cur.prompts(ctx(tmp_path, i, feedback=llm)) for i in (2, 3)]
    assert all(len(s) == 12 for s in slices)
    ids = [p.id for s in slices for p in s]
    assert len(set(ids)) == 36
    assert {p.category for s in slices for p in s} == set(CATS)
    assert all(p.provenance.iteration == i for i, s in zip((1, 2, 3), slices) for p in s)
    # 36 needed x 1.5 oversampling = 54 candidates: two rounds of 12 calls, all at iteration 1
    assert calls_after_first == llm.calls == 2 * len(CATS) * 2
    log = json.loads((tmp_path / "pool.log.json").read_text())
    assert log["accepted"] == 36 and log["dropped"]["near duplicate"] == log["parsed"] - 36
    assert "ELI5" not in llm.prompts[0] and 'about "' in llm.prompts[0]


def test_aop_iteration_one_equals_sop_iteration_one(tmp_path: Path):
    sop = SOPCurriculum(ScoreBasedOptions(**SCORED)).prompts(ctx(tmp_path / "sop"))
    aop = AOPCurriculum(ScoreBasedOptions(**SCORED)).prompts(ctx(tmp_path / "aop"))
    assert [(p.id, p.text, p.category) for p in aop] == [(p.id, p.text, p.category) for p in sop]
    assert aop[0].provenance.curriculum == "aop" and sop[0].provenance.curriculum == "sop"


def test_aop_targets_weak_categories_and_records_provenance(tmp_path: Path):
    prompts = AOPCurriculum(ScoreBasedOptions(**SCORED)).prompts(ctx(tmp_path, iteration=2))
    counts = Counter(p.category for p in prompts)
    assert set(counts) <= set(WEAK) and sum(counts.values()) == 12
    p = prompts[0].provenance
    assert p.curriculum == "aop" and p.iteration == 2 and p.draw == 0 and p.feedback_call == "aop-i02-d0"
    assert len(p.sample_ids) == 2 * len(CATS)  # samples_per_category x categories shown in that call


def test_per_category_targeting_for_small_models(tmp_path: Path):
    llm = ScriptedLLM()
    opts = ScoreBasedOptions(**SCORED, targeting="per-category", weak_categories=2)
    prompts = AOPCurriculum(opts).prompts(ctx(tmp_path, feedback=llm))
    assert {p.category for p in prompts} <= set(WEAK)
    assert 'domain "askhr"' in llm.prompts[0] or 'domain "legaladvice"' in llm.prompts[0]


def test_malformed_outputs_are_dropped_counted_and_budget_still_met(tmp_path: Path):
    llm = ScriptedLLM(junk_every=2)  # every second call is a refusal or empty
    prompts = AOPCurriculum(ScoreBasedOptions(**SCORED)).prompts(ctx(tmp_path, iteration=2, feedback=llm))
    assert len(prompts) == 12
    log = json.loads((tmp_path / "iter-02.log.json").read_text())
    assert log["dropped"].get("refusal", 0) + log["dropped"].get("empty response", 0) >= 1
    assert log["calls"] == llm.calls


def test_history_is_not_repeated(tmp_path: Path):
    first = AOPCurriculum(ScoreBasedOptions(**SCORED)).prompts(ctx(tmp_path, iteration=1))
    second = AOPCurriculum(ScoreBasedOptions(**SCORED)).prompts(ctx(tmp_path, iteration=1, history=first))
    assert not {p.text for p in first} & {p.text for p in second}


def test_unreachable_budget_fails_with_reason(tmp_path: Path):
    class Refuses:
        def complete(self, prompts):
            return ["I'm sorry, I can't do that."] * len(prompts)

    with pytest.raises(RuntimeFailure, match=r"aop: 12 feedback calls gave 0 usable questions.*'refusal': 12"):
        AOPCurriculum(ScoreBasedOptions(**SCORED, max_draws_factor=3)).prompts(ctx(tmp_path, feedback=Refuses()))


def test_eva_keeps_candidates_with_the_largest_reward_gap(tmp_path: Path):
    import random

    def generate(texts, sample=False, seed=0):
        rng = random.Random(seed)
        assert sample  # eva needs sampled, not greedy, answers
        return ["x " * rng.randint(1, 1 + len(t) % 17) for t in texts]  # spread differs by question

    c = ctx(tmp_path, generate=generate, reward=toy.LengthReward())
    prompts = EvaCurriculum(EvaOptions(**SCORED, candidates_factor=2.0, samples_per_prompt=3)).prompts(c)
    assert len(prompts) == 12
    log = json.loads((tmp_path / "iter-01.log.json").read_text())
    info = log["informativeness"]
    assert len(info) == 24 and [p.id for p in prompts] == log["selected"]
    chosen = [info[p.id] for p in prompts]
    rest = [v for k, v in info.items() if k not in log["selected"]]
    assert min(chosen) >= max(rest) and max(chosen) > min(rest)


def test_pool_curriculum_prefers_weak_categories_without_an_llm(tmp_path: Path):
    prompts = PoolCurriculum(PoolOptions(temperature=0.1)).prompts(ctx(tmp_path, budget=30, feedback=None))
    counts = Counter(p.category for p in prompts)
    assert counts["askhr"] + counts["legaladvice"] >= 24


def test_aop_run_shifts_prompts_toward_lowest_scoring_categories(tmp_path: Path):
    """A whole AOP arm: each iteration's prompts concentrate on the previous evaluation's weakest categories."""
    heldout = [Question(f"{c}-{k}", f"{c} question {k}", c) for c in CATS for k in range(3)]
    exp = Experiment(
        name="aop",
        output_dir=tmp_path,
        trainer=toy.ToyTrainer(toy.ToyTrainerOptions()),
        reward=toy.LengthReward(),
        arms={"aop": AOPCurriculum(ScoreBasedOptions(**SCORED))},
        heldout=heldout,
        test_prompts=heldout[:4],
        feedback=ScriptedLLM(),
        embedder=HashEmbedder(),
        budget=Budget(3, 12, 1),
        seed=3,
    )
    run = exp.run().run_dir
    for i in (1, 2, 3):
        prev = run / ("sft/evaluation.jsonl" if i == 1 else f"arms/aop/iter-{i - 1:02d}/evaluation.jsonl")
        records = read_jsonl(prev, EvalRecord)
        mean = {c: sum(r.reward for r in records if r.category == c) / 3 for c in CATS}
        bottom = set(sorted(CATS, key=lambda c: (mean[c], c))[:2])
        prompts = read_jsonl(run / f"arms/aop/iter-{i:02d}/prompts.jsonl", Prompt)
        share = sum(p.category in bottom for p in prompts) / len(prompts)
        assert share >= 0.5, (i, mean, Counter(p.category for p in prompts))  # uniform would be 2/6


def test_repeated_draws_ask_for_new_questions(tmp_path: Path):
    """With one held-out question per category every draw shows the same samples; requests must still differ."""
    llm = ScriptedLLM()
    one_each = [EvalRecord(f"{c}-0", f"{c} question?", c, "an answer", 0.1 * n) for n, c in enumerate(CATS)]
    opts = ScoreBasedOptions(
        samples_per_category=1,
        draws=6,
        questions_per_call=4,
        parallel_calls=6,
        targeting="per-category",
        prompt_style="compact",
        weak_categories=1,
    )
    AOPCurriculum(opts).prompts(ctx(tmp_path, budget=8, feedback=llm, evaluation=one_each))
    assert len(set(llm.prompts)) == len(llm.prompts) >= 2
    assert "This is request 2 with these examples" in llm.prompts[1]
