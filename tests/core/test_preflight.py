"""Preflight: every input problem is found by `validate` and by `run` before anything loads.

The corpus below holds one defect per config. Each must exit 2 from both commands with a line that
names the config key or the data file and line, no traceback, and no run directory. The configs use
the toy components (or a PPO section whose model folder the test writes), so no model loads.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from aopcore.cli import main

from helpers import TOY, run_cli

BASE = f'''
[experiment]
name = "broken"
output_dir = "runs"
iterations = 2
records_per_iteration = 4
passes = 1
plugins = ["toy_components"]
plugin_paths = ["{TOY}"]

[data]
heldout = "heldout.jsonl"
test_prompts = "tests.jsonl.gz"
test_size = 4

[trainer]
plugin = "toy"

[reward]
plugin = "toy-length"

[judge]
plugin = "toy-length"

[arms.static]
curriculum = "toy-static"

[arms.weakest]
curriculum = "toy-weakest"

[evaluation]
pairs = [["static", "weakest"]]
'''

PPO = """[trainer]
plugin = "ppo"
model = "model"
batch_size = 8
mini_batch_size = 4
"""


def _heldout(n: int = 4) -> str:
    return "".join(
        json.dumps({"id": f"{c}-{i}", "text": f"{c} question {i}?", "category": c}) + "\n"
        for c in ("alpha", "beta")
        for i in range(n)
    )


def _write_workspace(d: Path) -> None:
    (d / "heldout.jsonl").write_text(_heldout())
    with gzip.open(d / "tests.jsonl.gz", "wt") as fh:
        fh.writelines(json.dumps({"id": f"t{i}", "text": f"test {i}?"}) + "\n" for i in range(6))
    (d / "model").mkdir()
    (d / "model" / "config.json").write_text("{}")  # enough for the preflight; nothing loads it
    (d / "dolly.jsonl").write_text(
        json.dumps({"instruction": "Say hi.", "response": "Hi."}) + "\n" + json.dumps({"instruction": "x"}) + "\n"
    )


def sub(old: str, new: str):
    def edit(text: str, d: Path) -> str:
        assert old in text, old
        return text.replace(old, new, 1)

    return edit


def data_file(name: str, content: bytes | str):
    def edit(text: str, d: Path) -> str:
        (d / name).write_bytes(content if isinstance(content, bytes) else content.encode())
        return text.replace('heldout = "heldout.jsonl"', f'heldout = "{name}"', 1)

    return edit


def ppo(extra: str = "", model: str = '"model"'):
    return sub('[trainer]\nplugin = "toy"\n', PPO.replace('"model"', model) + extra)


_gz = gzip.compress(_heldout(50).encode())
# (case id, edit, expected error line: a regex matched after "error: <config>:<line>: " or "error: <config>: ")
CORPUS = [
    (
        "unknown-arm-in-pairs",
        sub('pairs = [["static", "weakest"]]', 'pairs = [["static", "strongest"]]'),
        r"evaluation\.pairs: unknown arm 'strongest' \(arms: static, weakest\)",
    ),
    (
        "pair-of-one-arm",
        sub('pairs = [["static", "weakest"]]', 'pairs = [["static", "static"]]'),
        r"evaluation\.pairs: the pair \['static', 'static'\] compares an arm with itself",
    ),
    (
        "judged-iteration-not-run",
        sub("[evaluation]\n", "[evaluation]\niterations = [1, 3]\n"),
        r"evaluation\.iterations: 3 is outside 1\.\.2",
    ),
    (
        "malformed-data-line",
        data_file("bad.jsonl", _heldout().replace('"beta-1"', "beta-1")),
        r"data\.heldout: {d}/bad\.jsonl:6: not valid JSON",
    ),
    ("empty-data-file", data_file("empty.jsonl", ""), r"data\.heldout: empty\.jsonl: no questions"),
    (
        "duplicate-ids",
        data_file("dup.jsonl", _heldout().replace('"beta-2"', '"beta-1"')),
        r"data\.heldout: dup\.jsonl: duplicate question ids 'beta-1'",
    ),
    (
        "category-missing-from-data",
        sub("test_size = 4\n", 'test_size = 4\ncategories = ["alpha", "gamma"]\n'),
        r"data\.categories: no held-out questions for gamma in heldout\.jsonl \(its categories: alpha, beta\)",
    ),
    (
        "corrupt-gzip",
        data_file("cut.jsonl.gz", _gz[: len(_gz) // 2]),
        r"data\.heldout: {d}/cut\.jsonl\.gz:\d+: corrupt gzip data",
    ),
    (
        "git-lfs-pointer",
        data_file("lfs.jsonl.gz", "version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 1\n"),
        r"data\.heldout: {d}/lfs\.jsonl\.gz: a Git LFS pointer",
    ),
    (
        "unknown-schema",
        data_file("odd.jsonl", '{"prompt": "hi"}\n'),
        r"data\.heldout: {d}/odd\.jsonl:1: no recognised schema \(columns: prompt\)",
    ),
    (
        "missing-data-file",
        sub('heldout = "heldout.jsonl"', 'heldout = "nowhere.jsonl"'),
        r"data\.heldout: data file not found: {d}/nowhere\.jsonl",
    ),
    (
        "unknown-data-scheme",
        sub('heldout = "heldout.jsonl"', 'heldout = "hff:org/set"'),
        r"data\.heldout: unknown data source 'hff'",
    ),
    (
        "mapped-column-missing",
        sub('heldout = "heldout.jsonl"', 'heldout = {source = "heldout.jsonl", text = "question"}'),
        r"data\.heldout: {d}/heldout\.jsonl:1: column 'question' is missing or not text",
    ),
    (
        "test-size-too-large",
        sub("test_size = 4", "test_size = 50"),
        r"data\.test_size: 50 is more than the 6 test prompts in tests\.jsonl\.gz",
    ),
    (
        "per-category-zero",
        sub("test_size = 4\n", "test_size = 4\nheldout_per_category = 0\n"),
        r"data\.heldout_per_category: Input should be greater than or equal to 1",
    ),
    (
        "negative-learning-rate",
        ppo("learning_rate = -1e-5\n"),
        r"trainer\.learning_rate: Input should be greater than 0",
    ),
    (
        "top-p-above-one",
        ppo("\n[trainer.generation]\ntop_p = 1.5\n"),
        r"trainer\.generation\.top_p: Input should be less than or equal to 1",
    ),
    (
        "batch-size-zero",
        sub('[trainer]\nplugin = "toy"\n', PPO.replace("batch_size = 8\nmini_batch_size = 4\n", "batch_size = 0\n")),
        r"trainer\.batch_size: Input should be greater than or equal to 1",
    ),
    ("gamma-above-one", ppo("gamma = 1.2\n"), r"trainer\.gamma: Input should be less than or equal to 1"),
    (
        "missing-local-model-folder",
        ppo(model='"./checkpoints/sft"'),
        r"trainer\.model: model folder not found: {d}/checkpoints/sft",
    ),
    (
        "hub-id-not-cached-offline",
        ppo(model='"aopcore-tests/no-such-model"'),
        r"trainer\.model: 'aopcore-tests/no-such-model' is not in the Hugging Face cache and HF_HUB_OFFLINE is set: "
        r"cache it once .*HF_HOME.*local folder",
    ),
    (
        "bad-sft-record",
        ppo('\n[trainer.sft]\ndataset = "dolly.jsonl"\n'),
        r"trainer\.sft\.dataset: {d}/dolly\.jsonl:2: a Dolly \(SFT\) record needs field\(s\) response",
    ),
    (
        "missing-sft-file",
        ppo('\n[trainer.sft]\ndataset = "dolly-15k.jsonl"\n'),
        r"trainer\.sft\.dataset: path not found: {d}/dolly-15k\.jsonl",
    ),
    (
        "unknown-plugin-option",
        sub('plugin = "toy"\n', 'plugin = "toy"\nlearning_rte = 0.1\n'),
        r"trainer\.learning_rte: unknown key \(did you mean 'learning_rate'\?\)",
    ),
    (
        "iterations-zero",
        sub("iterations = 2", "iterations = 0"),
        r"experiment\.iterations: Input should be greater than or equal to 1",
    ),
]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    _write_workspace(tmp_path)
    return tmp_path


def _cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_base_config_of_the_corpus_is_valid(workspace, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = workspace / "c.toml"
    for text in (BASE, ppo()(BASE, workspace)):
        config.write_text(text)
        code, out, err = _cli(capsys, "validate", str(config))
        assert code == 0, err
    assert "data.heldout: 8 questions from heldout.jsonl (2 categories: alpha 4, beta 4)" in out
    assert "data.test_prompts: 4 questions from tests.jsonl.gz" in out


@pytest.mark.parametrize("case, edit, expected", CORPUS, ids=[c[0] for c in CORPUS])
def test_broken_config_exits_2_from_validate_and_run_before_anything_runs(
    case, edit, expected, workspace, capsys, monkeypatch
):
    import re

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = workspace / "c.toml"
    config.write_text(edit(BASE, workspace))
    pattern = re.compile(
        rf"^error: {re.escape(str(config))}(:\d+)?: " + expected.replace("{d}", re.escape(str(workspace)))
    )
    for command in ("validate", "run"):
        code, out, err = _cli(capsys, command, str(config))
        lines = err.strip().splitlines()
        assert code == 2, f"{command}: exit {code}\n{err}"
        assert "Traceback" not in err
        assert len(lines) == 1 and pattern.match(lines[0]), (
            f"{command}: expected one line matching {pattern.pattern!r}, got:\n{err}"
        )
        assert not (workspace / "runs").exists(), f"{command} wrote a run directory"
    assert len(CORPUS) >= 20


def test_every_problem_is_listed_at_once_across_sections(workspace, capsys, monkeypatch):
    """An option error in one section hides nothing in another: core, plugin, data and cross-reference problems together."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    text = BASE.replace("iterations = 2", "iterations = 0").replace(
        'pairs = [["static", "weakest"]]', 'pairs = [["static", "nope"]]'
    )
    text = ppo("learning_rate = -1.0\n\n[trainer.generation]\ntop_p = 1.5\n", model='"./gone"')(text, workspace)
    (workspace / "bad.jsonl").write_text('{"id": "1", "text": "a", "category": "alpha"}\n{broken\n')
    text = text.replace('heldout = "heldout.jsonl"', 'heldout = "bad.jsonl"').replace(
        "test_size = 4", "test_size = 40\nheldout_per_categry = 2"
    )
    config = workspace / "c.toml"
    config.write_text(text)
    code, _, err = _cli(capsys, "validate", str(config))
    assert code == 2
    for needle in (
        "experiment.iterations: Input should be greater than or equal to 1",
        "trainer.learning_rate: Input should be greater than 0",
        "trainer.generation.top_p: Input should be less than or equal to 1",
        "bad.jsonl:2: not valid JSON",
        "data.test_size: 40 is more than the 6 test prompts",
        "evaluation.pairs: unknown arm 'nope'",
        "data.heldout_per_categry: unknown key",
    ):
        assert needle in err, f"{needle!r} missing:\n{err}"


def test_cli_subprocess_prints_one_line_and_writes_nothing(workspace):
    """The same through the real command line, for one data and one model defect."""
    config = workspace / "c.toml"
    config.write_text(ppo(model='"org/missing-model"')(BASE, workspace).replace("test_size = 4", "test_size = 9"))
    for command in ("validate", "run"):
        result = run_cli(command, str(config), env={"HF_HUB_OFFLINE": "1"})
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        errors = result.stderr.strip().splitlines()
        assert any("trainer.model: 'org/missing-model' is not in the Hugging Face cache" in e for e in errors), (
            result.stderr
        )
        assert any("data.test_size: 9 is more than the 6 test prompts" in e for e in errors), result.stderr
        assert len(errors) == 2
    assert not (workspace / "runs").exists()
