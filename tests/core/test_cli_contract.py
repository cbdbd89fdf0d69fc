"""Papercuts a plugin author met (issue 14): JSONL line numbers, --set in the docs, exit statuses, a spurious warning."""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest
from helpers import ROOT, TOY, run_cli

from aopcore import InputError, Prompt, Provenance
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
    prompts = [Prompt("p1", "q?", "c", Provenance("mine", 2, "pool", extra={"score": 0.25, "why": ["weak", "rare"]})),
               Prompt("p2", "q2?", "c", Provenance("mine", 2))]
    write_jsonl(tmp_path / "p.jsonl", prompts)
    back = read_jsonl(tmp_path / "p.jsonl", Prompt)
    assert back == prompts and back[0].provenance.extra["why"] == ["weak", "rare"] and back[1].provenance.extra == {}
    old = '{"category": "c", "id": "p0", "provenance": {"curriculum": "aop", "iteration": 1}, "text": "q"}\n'
    (tmp_path / "old.jsonl").write_text(old)  # written before the slot existed
    assert read_jsonl(tmp_path / "old.jsonl", Prompt)[0].provenance.extra == {}
    assert hash(prompts[0]) == hash(Prompt("p1", "q?", "c", Provenance("mine", 2, "pool", extra={"other": 1})))  # still hashable


def _flags(command: str) -> list[tuple[str, ...]]:
    """Each option of ``aopcore COMMAND`` as its spellings (``("-v", "--verbose")``)."""
    from aopcore.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return [tuple(a.option_strings) for a in sub.choices[command]._actions if a.option_strings and "--help" not in a.option_strings]


@pytest.mark.parametrize("command", ["run", "validate", "new-plugin", "api-reference"])
def test_cli_docs_list_every_flag(command: str):
    doc = (ROOT / "docs" / "cli.md").read_text()
    row = next((line for line in doc.splitlines() if line.startswith(f"| `aopcore {command}")), None)
    assert row is not None, f"docs/cli.md has no row for `aopcore {command}`"
    shown = row.split("|")[1] + row.split("|")[2]
    missing = [spellings[-1] for spellings in _flags(command) if not any(re.search(rf"{s}\b", shown) for s in spellings)]
    assert not missing, f"docs/cli.md: `aopcore {command}` does not show {missing}"
    assert "--set KEY=VALUE" in doc and "experiment.iterations" in doc  # and says what it takes


def test_docs_agree_on_which_error_a_curriculum_raises():
    """'Cannot meet its budget' because of the config is an InputError (exit 2) everywhere the docs say it."""
    for name in ("cli.md", "plugins.md", "api.md"):
        text = " ".join((ROOT / "docs" / name).read_text().split())
        hits = [s for s in re.split(r"(?<=[.!?])\s+", text) if "cannot meet its budget" in s]
        assert any("InputError" in s for s in hits), f"docs/{name} does not say a curriculum that cannot meet its budget raises InputError"
        for sentence in hits:
            wrong = re.search(r"runtime failure|RuntimeFailure|exits? (status )?1", sentence) and "InputError" not in sentence
            assert not wrong, f"docs/{name}: {sentence!r}"


BUDGET_PLUGIN = '''
from aopcore import InputError, Prompt, hookimpl

class PoolTooSmall:
    def __init__(self, options):
        pass
    def prompts(self, ctx):
        raise InputError(f"arms.{ctx.arm}.pool: holds 3 prompts, iteration {ctx.iteration} needs {ctx.budget}")

class OneShort:
    def __init__(self, options):
        pass
    def prompts(self, ctx):
        return [Prompt(f"p{k}", f"question {k}?", ctx.categories[0]) for k in range(ctx.budget - 1)]

@hookimpl
def register_curricula(register):
    register("pool-too-small", PoolTooSmall)
    register("one-short", OneShort)
'''


@pytest.mark.parametrize("curriculum, status, message", [
    ("pool-too-small", 2, "error: arms.only.pool: holds 3 prompts, iteration 1 needs 12"),
    ("one-short", 1, "error: arms.only: curriculum returned 11 prompts for iteration 1, budget is 12"),
])
def test_exit_status_follows_the_documented_rule(curriculum: str, status: int, message: str, tmp_path: Path, toy_config):
    (tmp_path / "budget_plugin.py").write_text(BUDGET_PLUGIN)
    text = (TOY / "toy.toml").read_text()
    text = text.replace('plugins = ["toy_components"]', 'plugins = ["toy_components", "budget_plugin"]')
    text = text.replace('plugin_paths = ["."]', f'plugin_paths = ["{TOY}", "{tmp_path}"]')
    text = text[: text.index("[arms.static]")] + f'[arms.only]\ncurriculum = "{curriculum}"\n'
    config = toy_config(text)
    result = run_cli("run", str(config))
    assert result.returncode == status, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


def test_sft_of_a_tied_model_reloads_its_best_epoch_without_a_missing_keys_warning(tmp_path: Path, capfd):
    """SmolLM2 and GPT-2 tie lm_head to the embeddings; reloading the best SFT epoch used to warn about lm_head.weight."""
    torch = pytest.importorskip("torch")
    from aopcore_hf.models import choose_device, load_causal_lm
    from aopcore_hf.options import SFTOptions
    from aopcore_hf.sft import run_sft
    from helpers.tiny_models import save_tiny_gpt2

    base = save_tiny_gpt2(tmp_path / "gpt2")
    out = tmp_path / "sft"
    out.mkdir()
    run_sft(str(base), SFTOptions(dataset="builtin:dolly-mini", max_epochs=1, limit=16, batch_size=8, learning_rate=5e-3),
            out, choice=choose_device("cpu"), seed=0)
    err = capfd.readouterr().err
    assert "missing keys" not in err, err[-2000:]
    model, _ = load_causal_lm(str(out), choose_device("cpu"))
    before, _ = load_causal_lm(str(base), choose_device("cpu"))
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()  # still tied after the reload
    assert not torch.equal(model.transformer.wte.weight, before.transformer.wte.weight)  # and it is the trained model
