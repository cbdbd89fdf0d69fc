from pathlib import Path

import pytest

from aopcore import EvalRecord, InputError, Prompt, Provenance, Verdict
from aopcore.records import load_questions, read_jsonl, write_jsonl


def test_prompt_with_provenance_round_trips(tmp_path: Path):
    prompts = [
        Prompt(
            "p1",
            "ELI5: why is the sky blue?",
            "explainlikeimfive",
            Provenance("aop", 2, "generated", feedback_call="call-7", draw=3, sample_ids=("q1", "q9")),
        ),
        Prompt("p2", "Tips for bread? ünïcode", "askbaking", None),
    ]
    write_jsonl(tmp_path / "p.jsonl", prompts)
    assert read_jsonl(tmp_path / "p.jsonl", Prompt) == prompts


def test_eval_records_and_verdicts_round_trip(tmp_path: Path):
    evals = [EvalRecord("q1", "Q?", "askvet", "A.", -0.25)]
    verdicts = [Verdict("i1", "A", "A"), Verdict("i2", None, "I cannot decide")]
    write_jsonl(tmp_path / "e.jsonl", evals)
    write_jsonl(tmp_path / "v.jsonl", verdicts)
    assert read_jsonl(tmp_path / "e.jsonl", EvalRecord) == evals
    assert read_jsonl(tmp_path / "v.jsonl", Verdict) == verdicts


def test_bad_question_file_names_file_and_line(tmp_path: Path):
    path = tmp_path / "q.jsonl"
    path.write_text('{"id": 1, "text": "ok"}\n\n{"id": 2, "text": 5}\n')
    with pytest.raises(InputError, match=r"q\.jsonl:3: a question needs string 'text'"):
        load_questions(path)
    path.write_text('{"id": 1, "text": "ok"}\n{"id": 2,\n')
    with pytest.raises(InputError, match=r"q\.jsonl:2: not valid JSON"):
        load_questions(path)


def test_atomic_write_leaves_old_file_when_serialisation_fails(tmp_path: Path):
    path = tmp_path / "p.jsonl"
    write_jsonl(path, [Prompt("a", "x", "c")])
    with pytest.raises(TypeError):
        write_jsonl(path, [{"bad": object()}])
    assert read_jsonl(path, Prompt) == [Prompt("a", "x", "c")]
    assert [p.name for p in tmp_path.iterdir()] == ["p.jsonl"]
