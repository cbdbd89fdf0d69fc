"""Parsing recorded feedback-LLM outputs, including malformed ones: never crash, count every drop."""

from aopcore_curricula.parsing import normalise_category, parse_questions

CATS = ["askbaking", "askvet", "explainlikeimfive", "legaladvice"]


def texts(result):
    return [i.text for i in result.items]


def test_numbered_list_with_preamble():
    raw = "Sure! Here are 3 questions:\n1. Why does my bread collapse in the oven?\n2) How long should I proof dough?\n3. Is it ok to use cold butter?"
    r = parse_questions(raw, CATS)
    assert texts(r) == [
        "Why does my bread collapse in the oven?",
        "How long should I proof dough?",
        "Is it ok to use cold butter?",
    ]
    assert r.dropped == {"preamble": 1}


def test_bullets_and_bold():
    r = parse_questions(
        "- **My dog ate chocolate, what now?**\n* Can cats eat tuna every day?\n• Why does my rabbit thump?", CATS
    )
    assert texts(r) == ["My dog ate chocolate, what now?", "Can cats eat tuna every day?", "Why does my rabbit thump?"]


def test_json_objects_with_categories_in_code_fence():
    raw = (
        '```json\n[{"category": "r/AskVet", "question": "Is my cat too fat?"}, {"category": "askcooking", "question": "Best pan for eggs?"},'
        ' {"category": "ELI5", "question": "ELI5: how do magnets work?"}, {"domain": "legaladvice"}]\n```\nHope this helps!'
    )
    r = parse_questions(raw, CATS)
    assert [(i.text, i.category) for i in r.items] == [
        ("Is my cat too fat?", "askvet"),
        ("ELI5: how do magnets work?", "explainlikeimfive"),
    ]
    assert r.dropped == {"unknown category": 1, "json item without question": 1}


def test_json_list_of_strings_and_object_wrapper():
    assert texts(parse_questions('["How do I bake bagels at home?", "Why is my cake dry?"]', CATS)) == [
        "How do I bake bagels at home?",
        "Why is my cake dry?",
    ]
    assert texts(parse_questions('{"questions": ["Can I sue my landlord for mold?"]}', CATS)) == [
        "Can I sue my landlord for mold?"
    ]


def test_labelled_lines_in_several_styles():
    raw = "askbaking | Why is my sourdough so sour?\n[askvet] My puppy limps after walks, why?\nlegaladvice: Can my boss read my texts?\n[cooking] Is this dropped?"
    r = parse_questions(raw, CATS)
    assert [(i.text, i.category) for i in r.items] == [
        ("Why is my sourdough so sour?", "askbaking"),
        ("My puppy limps after walks, why?", "askvet"),
        ("Can my boss read my texts?", "legaladvice"),
    ]
    assert r.dropped["unknown category"] == 1


def test_prose_paragraph_with_several_questions():
    r = parse_questions("What temperature kills yeast? Should I let dough rise overnight? Thanks.", CATS)
    assert texts(r) == ["What temperature kills yeast?", "Should I let dough rise overnight?"]


def test_refusal_empty_and_none():
    assert parse_questions("I'm sorry, but I can't help with that request.", CATS).dropped == {"refusal": 1}
    assert parse_questions("", CATS).dropped == {"empty response": 1}
    assert parse_questions(None, CATS).dropped == {"empty response": 1}
    assert parse_questions("   \n ", CATS).items == []


def test_too_short_too_long_and_prose_lines():
    raw = (
        "1. Why?\n2. "
        + "very long question " * 50
        + "?\nThis line is commentary without a question mark.\n3. How do I price my cookies for a bake sale?"
    )
    r = parse_questions(raw, CATS)
    assert texts(r) == ["How do I price my cookies for a bake sale?"]
    assert r.dropped == {"too short": 1, "too long": 1, "prose, not a question": 1}


def test_category_normalisation():
    assert normalise_category("r/AskBaking", CATS) == "askbaking"
    assert normalise_category("ask_vet_train", CATS) == "askvet"
    assert normalise_category("ELI5", CATS) == "explainlikeimfive"
    assert normalise_category("cooking", CATS) is None


# Each broken kind below is a real SmolLM2 output (benchmarks/data/prompt_filter_raw.jsonl) or the example.


def test_truncated_questions_are_dropped():
    raw = (
        'Here are the 6 more challenging questions:\n1. "How does the human brain regulate emotion?"\n'
        "2. Are career switches considered a\n3. What is the best way to\n4: What happens when you move\n"
        '5. "Is there a way to make money from a tree?"\n6. "Is there a way'
    )
    r = parse_questions(raw, CATS)
    assert texts(r) == ["How does the human brain regulate emotion?", "Is there a way to make money from a tree?"]
    assert r.dropped == {"preamble": 1, "truncated": 4}


def test_a_closing_quote_or_full_stop_shows_an_item_was_finished():
    raw = '1. What does it mean when someone says "education gaps"\n2. "Were the Vikings really as violent as movies make them look"'
    assert texts(parse_questions(raw, CATS)) == [
        'What does it mean when someone says "education gaps',
        "Were the Vikings really as violent as movies make them look",
    ]


def test_list_markers_and_labels_left_in_the_text_are_stripped():
    raw = (
        "1. 1.1.1: What is the meaning of life?\n#IQIQ: How do we know that other minds exist?\nA: Why does ice float on water?\n"
        "[2] How do I find out what my friend loves?\n**4: What happens when you move to a new city?**\nQuestion 5: Why is my cat sneezing?\n"
        '2. "Ladakhim Pass: What\'s the most mystifying bird migration in the world?" - 1211122121'
    )
    assert texts(parse_questions(raw, CATS)) == [
        "What is the meaning of life?",
        "How do we know that other minds exist?",
        "Why does ice float on water?",
        "How do I find out what my friend loves?",
        "What happens when you move to a new city?",
        "Why is my cat sneezing?",
        "What's the most mystifying bird migration in the world?",
    ]


def test_scores_copied_from_the_examples_are_stripped():
    raw = (
        "1. Why did the Library of Alexandria decline, and was there really one big fire? (1.99)\n"
        '- "How can I prevent my dog from chewing shoes?" score 0.48\n3. "What\'s the most exotic bird migration mystery?" -'
    )
    assert texts(parse_questions(raw, CATS)) == [
        "Why did the Library of Alexandria decline, and was there really one big fire?",
        "How can I prevent my dog from chewing shoes?",
        "What's the most exotic bird migration mystery?",
    ]


def test_assistant_style_offers_are_not_questions():
    for raw in (
        "I'm ready to help with any baking-related questions. What can I assist you with today?",
        "I'm here to help. What's your question?",
        "I'm ready to help. What's the first question you'd like to ask?",
        '2. "How can I help you?"',
        "1. Can you tell me what type of engine light you're referring to?",
        "1. Why some people prefer to avoid gluten in baking, I'm not sure I'm the right one to discuss.",
    ):
        r = parse_questions(raw, CATS)
        assert r.items == [] and r.dropped == {"assistant talk, not a question": 1}, raw
    # a question that merely mentions help is still a question
    assert texts(parse_questions("1. Can a vet help my dog with separation anxiety?", CATS)) == [
        "Can a vet help my dog with separation anxiety?"
    ]


def test_listed_statements_are_dropped_but_requests_and_conventions_kept():
    raw = (
        "1. What's the physics of quantum mechanics?\n2. Quantum computing\n3. Looking for advice on sourdough hydration.\n"
        '4. "CMV: Reality TV is harmless entertainment."\n5. ELI5: how do magnets work.\n(1) I am a human who is programmed to find information.'
    )
    r = parse_questions(raw, ["changemyview", "explainlikeimfive"])
    assert [(i.text, i.category) for i in r.items] == [
        ("What's the physics of quantum mechanics?", None),
        ("Looking for advice on sourdough hydration.", None),
        ("CMV: Reality TV is harmless entertainment.", "changemyview"),
        ("ELI5: how do magnets work.", "explainlikeimfive"),
    ]
    assert r.dropped == {"statement, not a question": 2}


def test_json_answers_get_the_same_checks_and_a_bracketed_marker_is_not_json():
    r = parse_questions(
        '["How do I bake bagels at home?", "I\'m happy to help with your baking!", "Sourdough starter"]', CATS
    )
    assert texts(r) == ["How do I bake bagels at home?"]
    assert r.dropped == {"assistant talk, not a question": 1, "statement, not a question": 1}
    assert texts(parse_questions("[1] Why is my cake dry?\n[2] Can I freeze cookie dough?", CATS)) == [
        "Why is my cake dry?",
        "Can I freeze cookie dough?",
    ]


def test_the_filter_beats_the_old_one_on_the_labelled_smollm2_sample():
    """benchmarks/prompt_filter.py on the committed sample: the filter must not slide back to what it was."""
    import json
    import subprocess
    import sys

    from helpers import ROOT

    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "prompt_filter.py")], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    before, after = result["before"]["all"], result["after"]["all"]
    assert before["lines"] == after["lines"] >= 250 and result["labels"]["reject"] >= 80
    assert (
        before["precision"] < 0.8 and after["precision"] >= 0.95
    )  # broken prompts kept: 1 in 4 before, under 1 in 20 now
    assert after["recall"] >= before["recall"] and after["recall"] >= 0.95
    for kind in ("truncated", "assistant-style offer or meta talk", "not a question"):
        assert (
            before["wrongly_kept_by_reason"].get(kind, 0) >= 5 and after["wrongly_kept_by_reason"].get(kind, 0) <= 1
        ), kind
    assert before["kept_with_marker_label_or_score_left"] >= 20 and after["kept_with_marker_label_or_score_left"] <= 3
    held_out = result["after"]["seed 2"]  # labelled after the filter was written
    assert held_out["precision"] >= 0.9 and held_out["recall"] >= 0.95


def test_answers_stay_with_their_questions_on_the_same_line_the_next_line_or_in_json():
    raw = "Here are 3:\n1. What is 2 + 3? Answer: 5\n2. What is the sum of 1 and 1?\nAnswer: 2\n3. What is 9 + 9?"
    items = parse_questions(raw, ["addition"], answers=True).items
    assert [(i.text, i.answer) for i in items] == [
        ("What is 2 + 3?", "5"),
        ("What is the sum of 1 and 1?", "2"),
        ("What is 9 + 9?", None),
    ]
    labelled = parse_questions("addition | What is 4 + 4? Answer: 8", ["addition"], answers=True).items
    assert [(i.text, i.category, i.answer) for i in labelled] == [("What is 4 + 4?", "addition", "8")]
    assert (
        parse_questions('[{"question": "What is 4 + 4?", "answer": 8}]', ["addition"], answers=True).items[0].answer
        == "8"
    )
    # without answers=True a line is kept whole, as before
    whole = parse_questions("1. What is 2 + 3? Answer: 5.", ["addition"]).items
    assert [(i.text, i.answer) for i in whole] == [("What is 2 + 3? Answer: 5.", None)]
