"""The plugin API reference (docs/api.md) is generated from the code and must match it."""

from __future__ import annotations

import re

from aopcore import protocols, records
from aopcore.devtools import apidoc

from helpers import ROOT, run_cli


def test_api_reference_is_current():
    assert (ROOT / "docs" / "api.md").read_text() == apidoc.api_reference(), "run: aopcore api-reference > docs/api.md"


def test_cli_prints_the_reference_and_the_readme_links_it():
    result = run_cli("api-reference")
    assert result.returncode == 0, result.stderr
    assert result.stdout == apidoc.api_reference()
    assert "docs/api.md" in (ROOT / "README.md").read_text()
    assert "api.md" in (ROOT / "docs" / "plugins.md").read_text()


def test_every_public_record_field_is_described():
    classes = [
        protocols.CurriculumContext,
        records.Prompt,
        records.Provenance,
        records.EvalRecord,
        records.Question,
        records.JudgeItem,
        records.Verdict,
        records.TrainStats,
    ]
    assert apidoc.undocumented_fields(classes) == []


def test_reference_says_what_a_curriculum_author_needs():
    text = apidoc.api_reference()
    section = text[text.index("### `CurriculumContext`") : text.index("### `Prompt`")]
    for field in ("reward", "generate", "feedback", "embedder"):
        row = next(line for line in section.splitlines() if line.startswith(f"| `{field}` |"))
        cells = re.split(r"(?<!\\)\|", row)
        assert "None" in cells[2] and "None" in cells[4], row  # typed optional, and the description says when
    assert "| `extras` |" in section and "survives a resume" in section
    assert "| `extra` | `dict[str, Any]` |" in text  # the plugin's per-prompt slot in Provenance
    for signature in (
        "generate(policy: Path, prompts: Sequence[str], *, seed: int, sample: bool = False) -> list[str]",
        "score(prompts: Sequence[str], responses: Sequence[str]) -> list[float]",
    ):
        assert signature in text
    assert "### `InputError`" in text and "Exit status 2" in text and "Exit status 1" in text
    assert "### `aopcore.testing.check_curriculum`" in text and "### `register_curricula`" in text


def test_docstring_sections_become_lists():
    body, sections = apidoc.split_docstring("""Summary.

    Args:
        a: first,
            continued.
        b (int): second.

    Returns:
        The thing.
    """)
    assert body == "Summary."
    assert sections["Args"] == [("a", "first, continued."), ("b", "second.")]
    assert sections["Returns"] == [("", "The thing.")]


def test_reference_covers_the_session_the_per_step_channel_and_the_trl_adapter():
    text = (ROOT / "docs" / "api.md").read_text()
    for title in (
        "### `aopcore.CurriculumSession`",
        "### `aopcore.steps.PromptStream`",
        "### `aopcore.steps.StepSelector`",
        "### `aopcore.steps.RolloutGroup`",
        "### `aopcore_integrations.trl.TRLCurriculum`",
    ):
        assert title in text, title
    assert "_registry" not in text  # private keywords are not the API
