"""The verifiable-skills testbed: answer checking, the verifier reward and judge, the data sets, and the writer
answering the curricula's real prompts through the real parsing and de-duplication path."""

import json
import random
from collections import Counter
from pathlib import Path

import pytest

from aopcore import CurriculumContext, EvalRecord, JudgeItem
from aopcore.data.sources import SourceSpec, read_source
from aopcore.engine.prompt_audit import normalised
from aopcore.registry import load_registry
from aopcore_curricula.curricula import AOPCurriculum, SOPCurriculum, VanillaCurriculum
from aopcore_curricula.generators import ScoreBasedGenerator
from aopcore_curricula.options import ScoreBasedOptions, VanillaGenerationOptions
from aopcore_testbed import sets
from aopcore_testbed.skills import CATEGORIES, SKILLS, check, skill_of
from aopcore_testbed.verifier import VerifierJudge, VerifierReward
from aopcore_testbed.writer import TestbedWriter as Writer  # (not collected as a test class)

from helpers import run_cli

ADD = "What is 3 + 9?"
KM = "How many meters are in 12 kilometers?"
REV = "What is 'abc' spelled backwards?"
CAPS = "What is 'abc' in capital letters?"


@pytest.mark.parametrize(
    "question, answer, correct",
    [
        (ADD, "12", True),
        (ADD, "12.", True),
        (ADD, " 12 ", True),
        (ADD, "The answer is 12", True),
        (ADD, "The answer is 12, not 13.", True),
        (ADD, "3 + 9 = 12", True),
        (ADD, "twelve", True),
        (ADD, "Twelve!", True),
        (ADD, "12 apples", True),
        (ADD, "answer: 12\nI hope this helps", True),
        (ADD, "13", False),
        (ADD, "12.5", False),
        (ADD, "1 2", False),
        (ADD, "112", False),
        (ADD, "", False),
        (ADD, "I think 13, or maybe 12", False),  # only the first number counts: hedging earns nothing
        (ADD, "3", False),  # echoing an operand, the policy's habit before RL
        # restating the question is read past: an echo earns nothing by coincidence, a worked answer still counts
        ("What is 5 - 0?", "5 - 0 is a mathematical operation that represents", False),
        ("What is 5 - 0?", "5", True),
        ("What is 5 - 0?", "5 - 0 is 5", True),
        ("What is 0 + 0?", "0", True),
        ("Which is the largest number: 7, 1, 3?", "7, 1, 3", False),
        ("Which is the largest number: 7, 1, 3?", "7", True),
        ("What is the largest of 1, 5 and 9?", "The largest of 1, 5, and 9 is 9.", True),
        ("What is the largest of 1, 5 and 9?", "The largest of 1, 5, and 9 is 10", False),
        ("What is the largest of 1, 5 and 9?", "9 is larger than 1 and 5", True),
        (KM, "12 kilometers is 12,000 meters", True),
        (KM, "12 kilometers", False),
        (
            "Which is the largest number: 9, 5, 2?",
            "The largest number is 9, which is 5 more than 2",
            True,
        ),  # no restatement
        (KM, "12000", True),
        (KM, "12,000", True),
        (KM, "12,000 m", True),
        (KM, "twelve thousand", True),
        (KM, "1,200", False),
        (KM, "12", False),
        (KM, "12 000", False),
        (REV, "cba", True),
        (REV, "'cba'", True),
        (REV, "The reversed word is 'cba'.", True),
        (REV, "CBA", True),
        (REV, "abc", False),
        (CAPS, "ABC", True),
        (CAPS, "It is ABC", True),
        (CAPS, 'The answer is "ABC".', True),
        (CAPS, "abc", False),
        (CAPS, "Abc", False),
    ],
)
def test_answers_are_checked_from_the_question_text_alone(question, answer, correct):
    assert check(question, answer) is correct


def test_questions_outside_the_testbed_are_not_checkable_and_earn_nothing():
    assert skill_of("What is the best way to bake bread?") is None
    assert check("What is the best way to bake bread?", "12") is None
    reward = VerifierReward()
    assert reward.score(["What is the best way to bake bread?", ADD, ADD], ["12", "12", "eleven"]) == [0.0, 1.0, 0.0]


def test_every_generated_question_is_recognised_and_its_answer_and_habit_are_checked():
    rng = random.Random(0)
    for _name, skill in SKILLS.items():
        for _ in range(30):
            q = skill.make(rng)
            assert skill_of(q) is skill, q
            assert check(q, skill.solve(q)) is True
            assert check(q, skill.distractor(q)) is (skill.distractor(q) == skill.solve(q))


def test_verifier_judge_prefers_the_correct_answer_and_ties_otherwise():
    items = [
        JudgeItem("1", ADD, "12", "13"),
        JudgeItem("2", ADD, "eleven", "The answer is 12"),
        JudgeItem("3", ADD, "12", "twelve"),
        JudgeItem("4", ADD, "1", "2"),
        JudgeItem("5", "Tell me a joke.", "12", "no"),
    ]
    assert [v.choice for v in VerifierJudge().judge(items)] == ["A", "B", "C", "C", "C"]


def test_sets_are_deterministic_disjoint_and_match_the_packaged_files():
    built = sets.build_sets()
    assert sets.build_sets() == built
    texts = {name: {q.text for q in qs} for name, qs in built.items()}
    assert not texts["heldout"] & texts["test"] and not texts["pool"] & (texts["heldout"] | texts["test"])
    for name, qs in built.items():
        assert Counter(q.category for q in qs) == {c: sets.SIZES[name] for c in CATEGORIES}
        packaged = [json.loads(line) for line in (sets.DATA / f"{name}.jsonl").read_text().splitlines()]
        assert packaged == [{"id": q.id, "text": q.text, "category": q.category} for q in qs], (
            f"rerun python -m aopcore_testbed.sets ({name})"
        )
    assert [json.loads(line) for line in (sets.DATA / "sft.jsonl").read_text().splitlines()] == sets.sft_rows()


def test_sft_data_gives_each_category_its_planned_size_and_share_of_right_answers():
    rows = sets.sft_rows()
    for category, plan in sets.SFT_PLAN.items():
        mine = [r for r in rows if r["category"] == category]
        assert len(mine) == plan.examples
        skill = SKILLS[category]
        telling = [r for r in mine if skill.distractor(r["instruction"]) != skill.solve(r["instruction"])]
        right = sum(check(r["instruction"], r["response"]) for r in telling) / len(telling)
        assert abs(right - plan.correct) < 0.08, (category, right)


def test_testbed_data_source_is_found_through_the_registry(tmp_path):
    registry = load_registry()
    held = read_source(registry, SourceSpec("testbed:heldout"), tmp_path)
    assert [q.id for q in held] == [q.id for q in sets.build_sets()["heldout"]]
    assert len(read_source(registry, SourceSpec("testbed:test"), tmp_path, per_category=2)) == 2 * len(CATEGORIES)


def test_an_unknown_testbed_set_is_one_clean_line_with_exit_status_2(tmp_path):
    config = (
        (Path(__file__).parents[2] / "examples" / "testbed.toml")
        .read_text()
        .replace('"testbed:test"', '"testbed:tests"')
    )
    (tmp_path / "c.toml").write_text(config.replace('"../plugins/', f'"{Path(__file__).parents[2]}/plugins/'))
    result = run_cli("validate", str(tmp_path / "c.toml"))
    assert result.returncode == 2, result.stderr
    assert "testbed:tests: no such testbed set (sets: heldout, test, pool)" in result.stderr
    assert "Traceback" not in result.stderr


def test_example_config_validates():
    result = run_cli("validate", str(Path(__file__).parents[2] / "examples" / "testbed.toml"))
    assert result.returncode == 0, result.stderr
    assert "seeds: 0, 1, 2, 3, 4" in result.stdout


# ---- the writer, through the curricula's own prompts, parsing and de-duplication -------------------------------


def scored_evaluation(weak: dict[str, float]) -> list[EvalRecord]:
    """Held-out questions scored 1 or 0, each category with its own accuracy."""
    rng = random.Random(1)
    return [
        EvalRecord(q.id, q.text, q.category, "x", float(rng.random() < weak.get(q.category, 0.9)))
        for q in sets.build_sets()["heldout"]
    ]


def context(tmp_path: Path, evaluation, iteration: int = 1, budget: int = 30) -> CurriculumContext:
    return CurriculumContext(
        arm="arm",
        iteration=iteration,
        iterations=2,
        budget=budget,
        seed=3,
        categories=CATEGORIES,
        evaluation=evaluation,
        history=[],
        workdir=tmp_path,
        feedback=Writer(),
        base_seed=0,
    )


@pytest.mark.parametrize("style", ["paper", "compact"])
def test_per_category_prompts_get_questions_of_exactly_the_named_category(style):
    opts = ScoreBasedOptions(
        samples_per_category=3,
        draws=6,
        questions_per_call=8,
        parallel_calls=3,
        targeting="per-category",
        prompt_style=style,
        weak_categories=2,
    )
    evaluation = scored_evaluation({"counting": 0.1, "reversal": 0.2})
    writer = Writer()
    generator = ScoreBasedGenerator(opts, "aop")
    prompts, log = generator.generate(
        evaluation, 40, feedback=writer, embedder=None, categories=CATEGORIES, history=[], iteration=1, seed=4
    )
    assert log.targets and set(log.targets) <= {"counting", "reversal"}
    for p in prompts:  # the label comes from the prompt's target; the text must really be of that category
        assert skill_of(p.text).name == p.category
    assert log.dropped["preamble"] > 0  # the chat-style first line went through the parser and was dropped


def test_paper_prompt_with_llm_targeting_gets_labelled_questions_mostly_in_weak_domains():
    opts = ScoreBasedOptions(
        samples_per_category=10, draws=6, questions_per_call=20, parallel_calls=3, unlabeled="drop"
    )
    evaluation = scored_evaluation({"subtraction": 0.05, "counting": 0.1})
    prompts, log = ScoreBasedGenerator(opts, "sop").generate(
        evaluation, 100, feedback=Writer(), embedder=None, categories=CATEGORIES, history=[], iteration=1, seed=2
    )
    counts = Counter(p.category for p in prompts)
    assert counts["subtraction"] + counts["counting"] > 0.7 * len(prompts), counts
    assert all(skill_of(p.text).name == p.category for p in prompts)
    assert "no domain" not in log.dropped  # every line carried a valid "domain | question" label


def test_vanilla_keyword_prompts_get_questions_of_each_category(tmp_path):
    cur = VanillaCurriculum(
        VanillaGenerationOptions(
            questions_per_call=4, prompt_style="compact", keywords={c: [SKILLS[c].description] for c in CATEGORIES}
        )
    )
    evaluation = scored_evaluation({})
    cur.prompts(context(tmp_path, evaluation, budget=14))
    pool = [json.loads(line) for line in (tmp_path / "pool.jsonl").read_text().splitlines()]  # both iterations' prompts
    assert len(pool) == 28 and all(skill_of(p["text"]).name == p["category"] for p in pool)
    assert set(Counter(p["category"] for p in pool)) == set(CATEGORIES)
    # the writer repeats held-out questions (the testbed's questions are few per skill): dropped, counted, never kept
    keys = {normalised(r.question) for r in evaluation}
    assert not [p for p in pool if normalised(p["text"]) in keys]
    assert json.loads((tmp_path / "pool.log.json").read_text())["dropped"]["held-out question"] > 0


def test_aop_follows_the_weakness_as_it_moves_while_sop_keeps_its_first_plan(tmp_path):
    opts = ScoreBasedOptions(
        samples_per_category=5,
        draws=4,
        questions_per_call=20,
        parallel_calls=4,
        targeting="per-category",
        weak_categories=1,
    )
    first = scored_evaluation({"counting": 0.0})
    later = scored_evaluation({"maximum": 0.0})
    aop, sop = AOPCurriculum(opts), SOPCurriculum(opts)
    (tmp_path / "aop").mkdir(), (tmp_path / "sop").mkdir()
    a1 = aop.prompts(context(tmp_path / "aop", first, 1, 20))
    s1 = sop.prompts(context(tmp_path / "sop", first, 1, 20))
    assert [p.text for p in a1] == [p.text for p in s1]  # the same request, the same reply: iteration 1 agrees
    assert {p.category for p in a1} == {"counting"}
    a2 = aop.prompts(context(tmp_path / "aop", later, 2, 20))
    s2 = sop.prompts(context(tmp_path / "sop", later, 2, 20))
    assert {p.category for p in a2} == {"maximum"} and {p.category for p in s2} == {"counting"}


def test_writer_is_deterministic_for_a_seed_and_varies_across_draws():
    prompt = 'Write 12 new questions for an online forum about "uppercase", written like the high-scoring ones.'
    w = Writer()
    assert w.complete([prompt]) == w.complete([prompt])
    other = w.complete([prompt + "\nThis is request 2 with these examples: write questions different from before."])[0]
    assert other != w.complete([prompt])[0]
    from aopcore_testbed.options import WriterOptions

    assert Writer(WriterOptions(seed=1)).complete([prompt]) != w.complete([prompt])
    lines = w.complete([prompt])[0].splitlines()
    assert lines[0] == "Here are 12 questions:" and len(lines) == 13
    assert all(skill_of(line.split(". ", 1)[1]).name == "uppercase" for line in lines[1:])


def test_writer_refuses_a_category_it_cannot_write_and_the_parser_drops_it():
    from aopcore_curricula.parsing import parse_questions

    reply = Writer().complete(['Write 5 different questions that people ask on an online forum about "cooking".'])[0]
    parsed = parse_questions(reply, CATEGORIES)
    assert not parsed.items and parsed.dropped["refusal"] == 1


def test_policy_model_is_built_offline_and_its_vocabulary_covers_every_testbed_question(tmp_path):
    from aopcore_hf.generation import format_prompt
    from aopcore_hf.models import OFFLINE_ALIASES, model_problem
    from aopcore_testbed.model import ensure_alias

    assert "testbed-tiny" in OFFLINE_ALIASES and model_problem("testbed-tiny") is None
    folder = ensure_alias("testbed-tiny-base", tmp_path)
    assert ensure_alias("testbed-tiny-base", tmp_path) == folder  # cached: built once
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert model.config.vocab_size == len(tok)
    for skill in SKILLS.values():
        for q in skill.universe()[::7]:
            ids = tok(format_prompt(tok, q), add_special_tokens=False)["input_ids"]
            assert tok.unk_token_id not in ids, q
            answer = tok(skill.solve(q), add_special_tokens=False)["input_ids"]
            assert len(answer) == 1 and tok.decode(answer) == skill.solve(q)  # every answer is one token
    assert tok.unk_token_id in tok("What is the capital of France?")["input_ids"]  # other text is unknown to it
