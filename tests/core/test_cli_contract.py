"""The CLI's documented contract: docs/cli.md lists every flag, and exit statuses follow the documented rule."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from helpers import ROOT, TOY, run_cli


def _flags(command: str) -> list[tuple[str, ...]]:
    """Each option of ``aopcore COMMAND`` as its spellings (``("-v", "--verbose")``)."""
    from aopcore.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return [
        tuple(a.option_strings)
        for a in sub.choices[command]._actions
        if a.option_strings and "--help" not in a.option_strings
    ]


@pytest.mark.parametrize("command", ["run", "validate", "new-plugin", "api-reference"])
def test_cli_docs_list_every_flag(command: str):
    doc = (ROOT / "docs" / "cli.md").read_text()
    row = next((line for line in doc.splitlines() if line.startswith(f"| `aopcore {command}")), None)
    assert row is not None, f"docs/cli.md has no row for `aopcore {command}`"
    shown = row.split("|")[1] + row.split("|")[2]
    missing = [
        spellings[-1] for spellings in _flags(command) if not any(re.search(rf"{s}\b", shown) for s in spellings)
    ]
    assert not missing, f"docs/cli.md: `aopcore {command}` does not show {missing}"
    assert "--set KEY=VALUE" in doc and "experiment.iterations" in doc  # and says what it takes


def test_docs_agree_on_which_error_a_curriculum_raises():
    """'Cannot meet its budget' because of the config is an InputError (exit 2) everywhere the docs say it."""
    for name in ("cli.md", "plugins.md", "api.md"):
        text = " ".join((ROOT / "docs" / name).read_text().split())
        hits = [s for s in re.split(r"(?<=[.!?])\s+", text) if "cannot meet its budget" in s]
        assert any("InputError" in s for s in hits), (
            f"docs/{name} does not say a curriculum that cannot meet its budget raises InputError"
        )
        for sentence in hits:
            wrong = (
                re.search(r"runtime failure|RuntimeFailure|exits? (status )?1", sentence)
                and "InputError" not in sentence
            )
            assert not wrong, f"docs/{name}: {sentence!r}"


BUDGET_PLUGIN = """
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
"""


@pytest.mark.parametrize(
    "curriculum, status, message",
    [
        ("pool-too-small", 2, "error: arms.only.pool: holds 3 prompts, iteration 1 needs 12"),
        ("one-short", 1, "error: arms.only: curriculum returned 11 prompts for iteration 1, budget is 12"),
    ],
)
def test_exit_status_follows_the_documented_rule(
    curriculum: str, status: int, message: str, tmp_path: Path, toy_config
):
    (tmp_path / "budget_plugin.py").write_text(BUDGET_PLUGIN)
    text = (TOY / "toy.toml").read_text()
    text = text.replace('plugins = ["toy_components"]', 'plugins = ["toy_components", "budget_plugin"]')
    text = text.replace('plugin_paths = ["."]', f'plugin_paths = ["{TOY}", "{tmp_path}"]')
    text = text[: text.index("[arms.static]")] + f'[arms.only]\ncurriculum = "{curriculum}"\n'
    config = toy_config(text)
    result = run_cli("run", str(config))
    assert result.returncode == status, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
