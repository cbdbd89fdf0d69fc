"""The sequence tier's questions, scorer and writer: reasoning-gym's tasks at two levels each, scored by their own
scorers from the question text alone, and new questions of exactly the task and level a curriculum's prompt asks for."""

import random
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("reasoning_gym")

import reasoning_gym
from reasoning_gym.factory import create_curriculum

from aopcore import JudgeItem
from aopcore_curricula.generators import ScoreBasedGenerator
from aopcore_curricula.options import ScoreBasedOptions
from aopcore_curricula.parsing import parse_questions
from aopcore_curricula.templates import vanilla_prompt
from aopcore_testbed.sequence import sets
from aopcore_testbed.sequence.options import SequenceJudgeOptions, SequenceRewardOptions
from aopcore_testbed.sequence.tasks import (
    CATEGORIES,
    TASKS,
    answer_of,
    category_of,
    habit_of,
    one_line,
    score,
    split_category,
)
from aopcore_testbed.sequence.verifier import SequenceJudge, SequenceReward
from aopcore_testbed.sequence.writer import SequenceWriter

from helpers import run_cli

ROOT = Path(__file__).parents[2]
EXAMPLE = ROOT / "examples" / "testbed-seq.toml"


def entries(task: str, level: str, n: int = 60, seed: int = 11) -> list[dict]:
    return list(reasoning_gym.create_dataset(task, size=n, seed=seed, **TASKS[task].config(level)))


def test_three_tasks_at_two_levels_are_six_categories_named_task_level():
    assert len(TASKS) >= 3 and all(len(t.levels) >= 2 for t in TASKS.values())
    assert CATEGORIES == [f"{name}_{lv}" for name, t in TASKS.items() for lv in t.levels]
    for c in CATEGORIES:  # a category's name survives the curricula's "domain | question" labels (letters and _)
        assert c.replace("_", "").isalpha() and split_category(c)[0] is TASKS[c.rsplit("_", 1)[0]]


def test_levels_set_the_tasks_own_difficulty_attribute_from_reasoning_gym_coaching():
    for name, task in TASKS.items():
        attr = create_curriculum(task.dataset).attributes[task.attribute]
        fields = {attr.lower_field_name, attr.upper_field_name}
        for level in task.levels.values():
            assert set(level.config) == fields, (name, level.config)
        lows = [lv.config[attr.lower_field_name] for lv in task.levels.values()]
        assert lows == sorted(lows) and len(set(lows)) == len(lows)  # levels get harder in order


@pytest.mark.parametrize("category", CATEGORIES)
def test_the_answer_rebuilt_from_the_question_is_reasoning_gyms_and_scores_as_its_scorer_does(category):
    task, level = split_category(category)
    name = category.rsplit("_", 1)[0]
    ds = reasoning_gym.create_dataset(name, size=80, seed=5, **task.config(level))
    checked = 0
    for entry in ds:
        q = one_line(entry["question"])
        if category_of(q) != category:  # e.g. a three-digit draw with two small numbers: another level's question
            continue
        checked += 1
        assert answer_of(q) == entry["answer"], q
        for response in (entry["answer"], habit_of(q), "x", entry["answer"] + " x", ""):
            assert score(q, response) == pytest.approx(ds.score_answer(response, entry)), (q, response)
    assert checked >= 60


@pytest.mark.parametrize("category", CATEGORIES)
def test_the_scorer_gives_a_right_answer_one_and_the_wrong_habit_less(category):
    for q in [q for q in sets.load("heldout") if q.category == category][:10]:
        right, habit = answer_of(q.text), habit_of(q.text)
        assert score(q.text, right) == 1.0 and score(q.text, f"  {right}\n") == 1.0
        assert habit != right and score(q.text, habit) < 1.0
        assert score(q.text, "") == 0.0


def test_reward_is_the_tasks_score_or_exact_match_and_nothing_for_a_question_of_no_task():
    q = "Spell this word backward (example: sun -> nus): stone."
    assert answer_of(q) == "enots" and category_of(q) == "spell_backward_hard"
    partial = SequenceReward().score([q, q, q], ["enots", "enotx", "ENOTS"])
    assert partial[0] == 1.0 and 0.0 < partial[1] < 1.0 and partial[2] == 1.0  # spell_backward ignores case
    assert SequenceReward(SequenceRewardOptions(exact=True)).score([q, q], ["enots", "enotx"]) == [1.0, 0.0]
    assert SequenceReward().score(["What is the capital of France?"], ["Paris"]) == [0.0]
    easy, hard = "Calculate 7 - 9.", "Calculate 17 - 45."
    assert (category_of(easy), category_of(hard)) == ("basic_arithmetic_easy", "basic_arithmetic_hard")
    assert SequenceReward().score([easy, easy, hard, hard], ["-2", "16", "-28", "62"]) == [1.0, 0.0, 1.0, 0.0]


def test_judge_prefers_the_higher_scored_answer_and_ties_otherwise():
    q = "Calculate 12 + 30."
    verdicts = SequenceJudge().judge(
        [JudgeItem("a", q, "42", "41"), JudgeItem("b", q, "1", "42"), JudgeItem("c", q, "1", "2")]
    )
    assert [v.choice for v in verdicts] == ["A", "B", "C"]
    # exact: only a full score counts, as with an exact reward ("42.0" has partial credit, 2/4, and is wrong)
    items = [JudgeItem("a", q, "42", "42.0"), JudgeItem("b", q, "42.0", "4"), JudgeItem("c", q, "42.0", "42")]
    assert [v.choice for v in SequenceJudge().judge(items)] == ["A", "A", "B"]
    assert [v.choice for v in SequenceJudge(SequenceJudgeOptions(exact=True)).judge(items)] == ["A", "C", "B"]


# ---- the sets --------------------------------------------------------------------------------------------------


def test_packaged_sets_are_what_reasoning_gym_generates_disjoint_and_labelled_by_their_text():
    built, packaged = sets.build_sets(), sets.load_packaged()
    for name in sets.SETS:
        assert [(q.id, q.text, q.category) for q in built[name]] == [
            (q.id, q.text, q.category) for q in packaged[name]
        ], f"python -m aopcore_testbed.sequence.sets ({name})"
        counts = Counter(q.category for q in packaged[name])
        assert counts == {c: sets.size(name, c) for c in CATEGORIES}
        assert all(category_of(q.text) == q.category for q in packaged[name])
    texts = [set(q.text for q in packaged[name]) for name in sets.SETS]
    assert not (texts[0] & texts[1]) and not (texts[0] & texts[2]) and not (texts[1] & texts[2])
    assert [q.category for q in packaged["heldout"][: len(CATEGORIES)]] == CATEGORIES  # interleaved


def test_sft_data_follows_the_plan_and_never_shows_a_held_out_test_or_pool_question():
    rows = sets.sft_rows()
    packaged = sets.load_packaged()
    unseen = {q.text for name in ("heldout", "test", "pool") for q in packaged[name]}
    assert not unseen & {r["instruction"] for r in rows}  # a pass rate measured on the pool is not memory
    for category in CATEGORIES:
        task, level = split_category(category)
        mine = [r for r in rows if r["category"] == category]
        assert len(mine) == task.levels[level].examples
        plan = task.levels[level]
        clean = sum(r["response"] == answer_of(r["instruction"]) for r in mine)
        suffixed = sum(
            bool(task.suffix) and r["response"] == f"{answer_of(r['instruction'])}{task.suffix}" for r in mine
        )
        assert abs((clean + suffixed) / len(mine) - plan.correct) < 0.06, (category, clean, suffixed)
        assert abs(clean / (clean + suffixed) - plan.clean) < 0.07, (category, clean, suffixed)  # the format habit
        for r in mine:
            right = answer_of(r["instruction"])
            assert r["response"] in (right, habit_of(r["instruction"]), f"{right}{task.suffix}")
        assert all(score(r["instruction"], f"{answer_of(r['instruction'])}{task.suffix}") < 1 for r in mine[:20])


def test_the_data_source_is_registered_and_an_unknown_set_is_one_line_with_exit_2(tmp_path):
    from aopcore.data.sources import load_source

    pool = Counter(q.category for q in load_source("testbed-seq:pool", tmp_path))
    assert pool == {c: sets.size("pool", c) for c in CATEGORIES}
    config = EXAMPLE.read_text().replace('test_prompts = "testbed-seq:test"', 'test_prompts = "testbed-seq:tests"')
    (tmp_path / "c.toml").write_text(config)
    result = run_cli("validate", str(tmp_path / "c.toml"))
    assert result.returncode == 2 and "testbed-seq:tests" in result.stderr and "Traceback" not in result.stderr


def test_example_config_validates():
    result = run_cli("validate", str(EXAMPLE))
    assert result.returncode == 0, result.stderr
    assert "seeds: 0, 1, 2, 3, 4" in result.stdout


# ---- the writer ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("category", CATEGORIES)
def test_vanilla_prompts_get_new_questions_of_exactly_the_requested_task_and_level(category):
    reply = SequenceWriter().complete([vanilla_prompt(category, "anything", 6, style="compact")])[0]
    parsed = parse_questions(reply, CATEGORIES)
    assert len(parsed.items) == 6, (reply, parsed.dropped)
    assert all(category_of(item.text) == category for item in parsed.items)
    heldout = {q.text for q in sets.load("heldout")}
    assert len({item.text for item in parsed.items} - heldout) >= 5  # new questions, not the held-out set's


def scored_evaluation(weak: dict[str, float]):
    from aopcore import EvalRecord

    rng = random.Random(1)
    return [
        EvalRecord(q.id, q.text, q.category, "x", float(rng.random() < weak.get(q.category, 0.9)))
        for q in sets.load("heldout")
    ]


def test_per_category_prompts_get_questions_of_the_weak_categories_with_true_labels():
    opts = ScoreBasedOptions(
        samples_per_category=3,
        draws=6,
        questions_per_call=8,
        parallel_calls=3,
        targeting="per-category",
        weak_categories=2,
        max_similarity=0.999,
    )
    evaluation = scored_evaluation({"basic_arithmetic_hard": 0.1, "word_sequence_reversal_hard": 0.2})
    prompts, log = ScoreBasedGenerator(opts, "aop").generate(
        evaluation, 30, feedback=SequenceWriter(), embedder=None, categories=CATEGORIES, history=[], iteration=1, seed=4
    )
    assert len(prompts) == 30 and set(log.targets) <= {"basic_arithmetic_hard", "word_sequence_reversal_hard"}
    assert all(category_of(p.text) == p.category for p in prompts)


def test_paper_prompt_with_llm_targeting_gets_labelled_questions_mostly_in_weak_domains():
    opts = ScoreBasedOptions(samples_per_category=6, draws=6, questions_per_call=20, parallel_calls=3, unlabeled="drop")
    evaluation = scored_evaluation({"spell_backward_hard": 0.05, "basic_arithmetic_hard": 0.1})
    prompts, log = ScoreBasedGenerator(opts, "sop").generate(
        evaluation, 60, feedback=SequenceWriter(), embedder=None, categories=CATEGORIES, history=[], iteration=1, seed=2
    )
    counts = Counter(p.category for p in prompts)
    assert counts["spell_backward_hard"] + counts["basic_arithmetic_hard"] > 0.7 * len(prompts), counts
    assert all(category_of(p.text) == p.category for p in prompts)


def test_writer_answers_when_asked_deterministically_and_tells_a_questions_category():
    prompt = 'Write 4 questions for an online forum about "word_sequence_reversal_easy". Give a reference answer.'
    w = SequenceWriter()
    reply = w.complete([prompt])[0]
    assert reply == w.complete([prompt])[0]
    parsed = parse_questions(reply, CATEGORIES, answers=True)
    assert len(parsed.items) == 4
    for item in parsed.items:
        assert item.answer == answer_of(item.text) and w.category_of(item.text) == "word_sequence_reversal_easy"
    refusal = w.complete(['Write 5 questions for an online forum about "cooking".'])[0]
    assert not parse_questions(refusal, CATEGORIES).items


def test_plugins_are_registered():
    result = run_cli("plugins")
    assert result.returncode == 0, result.stderr
    for name in ("seq-verifier", "testbed-seq-writer", "testbed-seq"):
        assert name in result.stdout
