"""JSONL files: a problem names the file and the true line in clean words; records round-trip with their provenance."""

from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path

import pytest

from aopcore import InputError, Prompt, Provenance
from aopcore.data.rows import jsonl_rows
from aopcore.records import JSONLDecodeError, iter_jsonl, load_questions, load_records, read_jsonl, write_jsonl


@pytest.mark.parametrize("bad_line", [2, 4])
def test_jsonl_errors_name_the_line_in_the_file(bad_line: int, tmp_path: Path):
    lines = ['{"id": "1", "text": "fine", "category": "c"}', "", '{"id": "3", "text": "fine", "category": "c"}', ""]
    lines[bad_line - 1] = '{"id": "x", "text": "broken", '  # cut off mid-object
    path = tmp_path / "badpool.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=rf"badpool\.jsonl:{bad_line}: not valid JSON"):
        load_questions(path)
    with pytest.raises(InputError, match=rf"badpool\.jsonl:{bad_line}: not valid JSON"):
        load_records(path, ("id", "text"), "pool")
    with pytest.raises(JSONLDecodeError) as info:
        list(iter_jsonl(path))
    assert info.value.lineno == bad_line and str(info.value).startswith(f"{path}:{bad_line}: not valid JSON")


def test_provenance_keeps_plugin_data_through_the_run_store(tmp_path: Path):
    prompts = [
        Prompt("p1", "q?", "c", Provenance("mine", 2, "pool", extra={"score": 0.25, "why": ["weak", "rare"]})),
        Prompt("p2", "q2?", "c", Provenance("mine", 2)),
    ]
    write_jsonl(tmp_path / "p.jsonl", prompts)
    back = read_jsonl(tmp_path / "p.jsonl", Prompt)
    assert back == prompts and back[0].provenance.extra["why"] == ["weak", "rare"] and back[1].provenance.extra == {}
    old = '{"category": "c", "id": "p0", "provenance": {"curriculum": "aop", "iteration": 1}, "text": "q"}\n'
    (tmp_path / "old.jsonl").write_text(old)  # written before the slot existed
    assert read_jsonl(tmp_path / "old.jsonl", Prompt)[0].provenance.extra == {}
    assert hash(prompts[0]) == hash(
        Prompt("p1", "q?", "c", Provenance("mine", 2, "pool", extra={"other": 1}))
    )  # still hashable


def _rows(path: Path) -> list[int]:
    return [lineno for lineno, _ in jsonl_rows(path)]


def test_bad_utf8_byte_is_reported_on_its_own_line(tmp_path):
    path = tmp_path / "latin5.jsonl"
    rows = [json.dumps({"text": f"row {i}"}).encode() for i in range(1, 5)] + ['{"text": "caf\xe9"}'.encode("latin-1")]
    path.write_bytes(b"\n".join(rows + [b'{"text": "after"}']) + b"\n")
    with pytest.raises(InputError, match=rf"^{path}:5: not UTF-8 text \(byte 0xe9 at column 14\)$"):
        _rows(path)


def test_truncated_gzip_names_the_line_it_cut(tmp_path):
    """A guard more than a fix: with lines now read as bytes, the cut line must still be the one after the last whole one."""
    data = b"".join(json.dumps({"text": f"row {i} " + "x" * 40}).encode() + b"\n" for i in range(4000))
    packed = gzip.compress(data)
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(packed[: len(packed) // 2])
    whole = zlib.decompressobj(31).decompress(path.read_bytes()).count(b"\n")  # complete lines in what is left
    assert 0 < whole < 4000
    with pytest.raises(InputError, match=rf"^{path}:{whole + 1}: corrupt gzip data \(Compressed file ended"):
        _rows(path)


def test_json_error_wording_is_clean(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "a"}\n\n{"text": "tab\there"}\n')
    with pytest.raises(InputError) as info:
        _rows(path)
    assert str(info.value) == f"{path}:3: not valid JSON (Invalid control character at column 14)"
    path.write_text('{"text": "a"}\n{"text": }\n')
    with pytest.raises(InputError) as info:
        _rows(path)
    assert str(info.value) == f"{path}:2: not valid JSON (Expecting value at column 10)"
