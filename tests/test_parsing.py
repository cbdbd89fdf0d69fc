"""Parsing recorded feedback-LLM outputs, including malformed ones: never crash, count every drop."""
from aopcore_curricula.parsing import normalise_category, parse_questions

CATS = ["askbaking", "askvet", "explainlikeimfive", "legaladvice"]


def texts(result):
    return [i.text for i in result.items]


def test_numbered_list_with_preamble():
    raw = "Sure! Here are 3 questions:\n1. Why does my bread collapse in the oven?\n2) How long should I proof dough?\n3. Is it ok to use cold butter?"
    r = parse_questions(raw, CATS)
    assert texts(r) == ["Why does my bread collapse in the oven?", "How long should I proof dough?", "Is it ok to use cold butter?"]
    assert r.dropped == {"preamble": 1}


def test_bullets_and_bold():
    r = parse_questions("- **My dog ate chocolate, what now?**\n* Can cats eat tuna every day?\n• Why does my rabbit thump?", CATS)
    assert texts(r) == ["My dog ate chocolate, what now?", "Can cats eat tuna every day?", "Why does my rabbit thump?"]


def test_json_objects_with_categories_in_code_fence():
    raw = '```json\n[{"category": "r/AskVet", "question": "Is my cat too fat?"}, {"category": "askcooking", "question": "Best pan for eggs?"},' \
          ' {"category": "ELI5", "question": "ELI5: how do magnets work?"}, {"domain": "legaladvice"}]\n```\nHope this helps!'
    r = parse_questions(raw, CATS)
    assert [(i.text, i.category) for i in r.items] == [("Is my cat too fat?", "askvet"), ("ELI5: how do magnets work?", "explainlikeimfive")]
    assert r.dropped == {"unknown category": 1, "json item without question": 1}


def test_json_list_of_strings_and_object_wrapper():
    assert texts(parse_questions('["How do I bake bagels at home?", "Why is my cake dry?"]', CATS)) == ["How do I bake bagels at home?", "Why is my cake dry?"]
    assert texts(parse_questions('{"questions": ["Can I sue my landlord for mold?"]}', CATS)) == ["Can I sue my landlord for mold?"]


def test_labelled_lines_in_several_styles():
    raw = "askbaking | Why is my sourdough so sour?\n[askvet] My puppy limps after walks, why?\nlegaladvice: Can my boss read my texts?\n[cooking] Is this dropped?"
    r = parse_questions(raw, CATS)
    assert [(i.text, i.category) for i in r.items] == [
        ("Why is my sourdough so sour?", "askbaking"), ("My puppy limps after walks, why?", "askvet"), ("Can my boss read my texts?", "legaladvice")]
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
    raw = "1. Why?\n2. " + "very long question " * 50 + "?\nThis line is commentary without a question mark.\n3. How do I price my cookies for a bake sale?"
    r = parse_questions(raw, CATS)
    assert texts(r) == ["How do I price my cookies for a bake sale?"]
    assert r.dropped == {"too short": 1, "too long": 1, "prose, not a question": 1}


def test_category_normalisation():
    assert normalise_category("r/AskBaking", CATS) == "askbaking"
    assert normalise_category("ask_vet_train", CATS) == "askvet"
    assert normalise_category("ELI5", CATS) == "explainlikeimfive"
    assert normalise_category("cooking", CATS) is None
