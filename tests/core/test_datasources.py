"""Data sources: the paper's schemas in every format `datasets` reads, field mapping, limits while reading, plugins.

Every file here is written by the test; nothing touches a hub.
"""

from __future__ import annotations

import gzip
import itertools
import json
from pathlib import Path

import pytest

from aopcore.data.rows import FieldMap
from aopcore.data.sources import SourceSpec, read_source
from aopcore.errors import InputError
from aopcore.records import Question
from aopcore.registry import load_registry

from helpers import TOY, run_cli

HH = "\n\nHuman: My oven runs hot. What should I do?\n\nAssistant: Check it with a thermometer.\n\nHuman: And then?\n\nAssistant: Lower the dial."
SHP = [
    {
        "post_id": "p1",
        "domain": "askbaking_train",
        "history": "Why did my bread collapse?",
        "human_ref_A": "a",
        "human_ref_B": "b",
        "labels": 1,
    },
    {
        "post_id": "p1",
        "domain": "askbaking_train",
        "history": "Why did my bread collapse?",
        "human_ref_A": "c",
        "human_ref_B": "d",
        "labels": 0,
    },
    {
        "post_id": "p2",
        "domain": "askphysics_test",
        "history": "Why is the sky blue?",
        "human_ref_A": "a",
        "human_ref_B": "b",
        "labels": 1,
    },
]
DOLLY = [
    {"instruction": "Name a prime.", "context": "", "response": "7", "category": "open_qa"},
    {"instruction": "Summarise this.", "context": "Text.", "response": "Short.", "category": "summarization"},
]


@pytest.fixture(scope="module")
def registry():
    return load_registry()


def write_jsonl(path: Path, rows, *, gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r) + "\n" for r in rows)
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


def read(registry, spec, base: Path, fields: FieldMap | None = None, **kw) -> list[Question]:
    return read_source(registry, SourceSpec(spec, fields), base, **kw)


def test_hh_rlhf_gzipped_file_as_published(registry, tmp_path):
    rows = [{"chosen": HH + f" Variant {i}.", "rejected": HH + " No."} for i in range(3)]
    write_jsonl(tmp_path / "hh" / "harmless-base" / "test.jsonl.gz", rows, gz=True)
    qs = read(registry, "hh/harmless-base/test.jsonl.gz", tmp_path)
    assert [q.category for q in qs] == ["harmless"] * 3
    assert qs[0].text.endswith("Human: And then?\n\nAssistant:")  # up to the last assistant turn, answer cut
    assert "Lower the dial" not in qs[0].text
    assert len({q.id for q in qs}) == 3


def test_hh_folder_of_subsets_gets_category_per_subset(registry, tmp_path):
    for subset in ("harmless-base", "helpful-base", "helpful-online"):
        write_jsonl(tmp_path / "hh" / subset / "test.jsonl.gz", [{"chosen": HH, "rejected": HH}] * 2, gz=True)
    qs = read(registry, "hh", tmp_path)
    assert sorted(q.category for q in qs) == ["harmless"] * 2 + ["helpful"] * 4
    assert len({q.id for q in qs}) == 6  # ids carry the subset, so subsets in one folder do not clash


def test_shp_history_and_domain_one_question_per_post(registry, tmp_path):
    write_jsonl(tmp_path / "shp.jsonl", SHP)
    qs = read(registry, "shp.jsonl", tmp_path)
    assert [(q.id, q.category) for q in qs] == [("p1", "askbaking"), ("p2", "askphysics")]


def test_dolly_as_a_json_array(registry, tmp_path):
    (tmp_path / "dolly.json").write_text(json.dumps(DOLLY))
    qs = read(registry, "dolly.json", tmp_path)
    assert [(q.text, q.category) for q in qs] == [("Name a prime.", "open_qa"), ("Summarise this.", "summarization")]


def test_plain_csv_and_parquet_with_field_mapping(registry, tmp_path):
    pd = pytest.importorskip("pandas")
    pd.DataFrame({"id": ["a", "b"], "text": ["Q1?", "Q2?"], "category": ["x", "y"]}).to_csv(
        tmp_path / "plain.csv", index=False
    )
    assert [(q.id, q.text, q.category) for q in read(registry, "plain.csv", tmp_path)] == [
        ("a", "Q1?", "x"),
        ("b", "Q2?", "y"),
    ]
    pd.DataFrame({"qid": [7, 8], "question": ["Why?", "How?"], "topic": ["t1", "t2"]}).to_parquet(
        tmp_path / "q.parquet"
    )
    mapped = read(registry, "q.parquet", tmp_path, FieldMap(text="question", id="qid", category="topic"))
    assert [(q.id, q.text, q.category) for q in mapped] == [("7", "Why?", "t1"), ("8", "How?", "t2")]


def test_table_form_in_a_config_maps_fields(toy_config, tmp_path):
    write_jsonl(
        tmp_path / "mine.jsonl.gz",
        [{"question": f"Q{i}?", "topic": "alpha" if i % 2 else "beta"} for i in range(6)],
        gz=True,
    )
    config = toy_config()
    text = config.read_text().replace(
        "[data]\n", '[data]\nheldout = {path = "mine.jsonl.gz", text = "question", category = "topic"}\n'
    )
    config.write_text(text)
    result = run_cli("validate", str(config), env={"HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr
    assert (
        "data.heldout: 4 questions from mine.jsonl.gz (2 categories: alpha 2, beta 2)" in result.stdout
    )  # 2 per category kept


def test_bad_lines_are_named_by_file_and_line(registry, tmp_path):
    path = tmp_path / "h.jsonl"
    path.write_text('{"id": "1", "text": "a"}\n\n{"id": "2", "text": "b"}\n{"id": 3, "text": oops}\n')
    with pytest.raises(InputError, match=rf"^{path}:4: not valid JSON"):
        read(registry, "h.jsonl", tmp_path)
    gz = write_jsonl(tmp_path / "g.jsonl.gz", [{"id": "1", "text": "a"}, {"idx": "2"}], gz=True)
    with pytest.raises(InputError, match=rf"^{gz}:2: no recognised schema \(columns: idx\)"):
        read(registry, "g.jsonl.gz", tmp_path)


def test_corrupt_gzip_and_lfs_pointer_and_wrong_encoding(registry, tmp_path):
    good = gzip.compress(b'{"id": "1", "text": "a"}\n' * 200)
    (tmp_path / "cut.jsonl.gz").write_bytes(good[: len(good) // 2])
    with pytest.raises(InputError, match="cut.jsonl.gz:.*corrupt gzip data"):
        read(registry, "cut.jsonl.gz", tmp_path)
    (tmp_path / "ptr.jsonl.gz").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 12\n")
    with pytest.raises(InputError, match="Git LFS pointer"):
        read(registry, "ptr.jsonl.gz", tmp_path)
    (tmp_path / "latin.jsonl").write_bytes('{"id": "1", "text": "caf\xe9"}\n'.encode("latin-1"))
    with pytest.raises(InputError, match="latin.jsonl:1: not UTF-8"):
        read(registry, "latin.jsonl", tmp_path)
    # a gzipped file without .gz in its name is still read (the gzip header is what counts)
    (tmp_path / "hidden.jsonl").write_bytes(gzip.compress(b'{"id": "1", "text": "a"}\n'))
    assert [q.id for q in read(registry, "hidden.jsonl", tmp_path)] == ["1"]


def test_hub_spelling_reads_a_local_folder_in_hub_layout(registry, tmp_path):
    write_jsonl(tmp_path / "hub" / "test.jsonl", [{"id": f"t{i}", "text": f"T{i}?"} for i in range(3)])
    write_jsonl(tmp_path / "hub" / "train.jsonl", [{"id": "x", "text": "X?"}])
    qs = read(registry, f"hf:{tmp_path / 'hub'}::test", tmp_path)
    assert [q.id for q in qs] == ["t0", "t1", "t2"]


def test_limits_are_applied_while_reading(registry, tmp_path):
    """An endless source still returns: reading stops once test_size / per-category limits are met."""
    pulled = itertools.count()

    def endless(arg: str, base_dir: Path):
        for i in itertools.count():
            next(pulled)
            yield Question(f"q{i}", f"text {i}", "ab"[i % 2])

    registry.implementations["data"]["endless"] = registry.implementations["data"]["builtin"].__class__(
        "data", "endless", endless, registry.implementations["data"]["builtin"].options, "test", "test", ""
    )
    try:
        assert len(read(registry, "endless:x", tmp_path, limit=5)) == 5
        qs = read(registry, "endless:x", tmp_path, per_category=3, categories=["a", "b"])
        assert sorted(q.category for q in qs) == ["a"] * 3 + ["b"] * 3
        assert next(pulled) < 20  # it read a handful of rows, not everything
    finally:
        del registry.implementations["data"]["endless"]


THIRD_PARTY = '''
from pathlib import Path
from aopcore import Question, hookimpl


def load(arg: str, base_dir: Path):
    """One question per line of a text file: category<TAB>question."""
    out = []
    for i, line in enumerate((base_dir / arg).read_text().splitlines()):
        category, _, text = line.partition("\\t")
        out.append(Question(f"line-{i}", text, category))
    return out


@hookimpl
def register_data_sources(register):
    register("lines", load)
'''


def test_third_party_data_source_through_an_entry_point(toy_config, tmp_path):
    site = tmp_path / "site"
    dist = site / "aopcore_lines-0.3.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: aopcore-lines\nVersion: 0.3\n")
    (dist / "entry_points.txt").write_text("[aopcore]\nlines = aopcore_lines_plugin\n")
    (site / "aopcore_lines_plugin.py").write_text(THIRD_PARTY)
    (tmp_path / "qs.txt").write_text(
        "cooking\tHow long do I rest a steak?\ncooking\tWhy salt pasta water?\ncars\tWhat is torque?\n"
    )
    config = toy_config()
    config.write_text(config.read_text().replace("[data]\n", '[data]\nheldout = "lines:qs.txt"\n'))
    env = {"PYTHONPATH": f"{site}:{TOY}", "HF_HUB_OFFLINE": "1"}
    result = run_cli("validate", str(config), env=env)
    assert result.returncode == 0, result.stderr
    assert "data.heldout: 3 questions from lines:qs.txt (2 categories: cars 1, cooking 2)" in result.stdout
    listing = run_cli("plugins", env=env)
    assert any(line.split()[:3] == ["lines", "aopcore-lines", "0.3"] for line in listing.stdout.splitlines()), (
        listing.stdout
    )
    wrong = config.read_text().replace('"lines:qs.txt"', '"line:qs.txt"')
    config.write_text(wrong)
    result = run_cli("validate", str(config), env=env)
    assert result.returncode == 2
    assert "data.heldout: unknown data source 'line' (installed: builtin, file, hf, lines" in result.stderr


def test_the_old_module_path_aopcore_data_still_imports_and_registers_nothing():
    """aopcore.data (beside the folder of the built-in sets) became aopcore.data.rows and aopcore.data.builtin; the
    published names stay importable for a release, and an entry point still naming aopcore.data adds no second
    `builtin` source."""
    import aopcore.data
    from aopcore.data import builtin as builtin_data
    from aopcore.data import rows

    assert aopcore.data.FieldMap is rows.FieldMap and aopcore.data.RowMapper is rows.RowMapper
    assert aopcore.data.load_builtin is builtin_data.load_builtin
    assert not hasattr(aopcore.data, "register_data_sources")
    assert load_registry().get("data", "builtin").factory is builtin_data.load_builtin
