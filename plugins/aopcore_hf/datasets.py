"""Hub and file data in the schemas the paper uses: Dolly (SFT), SHP (held-out questions), HH-RLHF (test prompts).

Specs: ``hf:ID[:CONFIG_OR_DATA_DIR][:SPLIT]``, e.g. ``hf:Anthropic/hh-rlhf:helpful-base:test``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from aopcore import InputError, Question
from aopcore.records import load_records

DATA_DIR = Path(__file__).parent / "data"
DOLLY_FIELDS = ("instruction", "context", "response")


def _parse(spec: str) -> tuple[str, str | None, str]:
    parts = spec.split(":")
    hub_id = parts[0]
    subset = parts[1] if len(parts) > 1 and parts[1] else None
    split = parts[2] if len(parts) > 2 else "train"
    return hub_id, subset, split


def _load_hub(spec: str):
    from datasets import load_dataset

    hub_id, subset, split = _parse(spec)
    kwargs: dict[str, Any] = {"split": split}
    if subset:
        kwargs["data_dir" if hub_id == "Anthropic/hh-rlhf" else "name"] = subset
    return load_dataset(hub_id, **kwargs)


def hh_prompt(dialogue: str) -> str:
    """The dialogue up to (and including) the last ``Assistant:`` marker."""
    cut = dialogue.rfind("\n\nAssistant:")
    return dialogue[: cut + len("\n\nAssistant:")].strip() if cut >= 0 else dialogue.strip()


def row_to_question(row: dict[str, Any], index: int) -> Question:
    if "chosen" in row:  # HH-RLHF
        return Question(f"hh-{index}", hh_prompt(row["chosen"]), "helpful")
    if "history" in row and "domain" in row:  # SHP
        domain = row["domain"].rsplit("_", 1)[0] if row["domain"].endswith(("_train", "_test", "_validation")) else row["domain"]
        return Question(str(row.get("post_id", f"shp-{index}")), row["history"], domain)
    if "instruction" in row:  # Dolly
        return Question(f"dolly-{index}", row["instruction"], row.get("category", "general"))
    if "text" in row:
        return Question(str(row.get("id", index)), row["text"], row.get("category", "general"))
    raise InputError(f"hf data set row {index} has no recognised schema (columns: {', '.join(row)})")


def load_hub_questions(spec: str, *, limit: int | None = None) -> list[Question]:
    data = _load_hub(spec)
    out = []
    for i, row in enumerate(data):
        if limit is not None and i >= limit:
            break
        out.append(row_to_question(row, i))
    return out


def load_dolly(spec: str, base_dir: Path | None = None, *, limit: int | None = None) -> list[dict[str, str]]:
    """Dolly-format records (instruction, context, response) from a JSONL file, builtin:NAME or hf:ID."""
    if spec.startswith("hf:"):
        rows = [dict(r) for r in _load_hub(spec[3:])]
    else:
        path = DATA_DIR / f"{spec.split(':', 1)[1]}.jsonl" if spec.startswith("builtin:") else Path(spec)
        if not path.is_absolute() and base_dir is not None and not spec.startswith("builtin:"):
            path = base_dir / path
        rows = load_records(path, ("instruction", "response"), "Dolly (SFT)")
    rows = [{k: r.get(k) or "" for k in DOLLY_FIELDS} for r in rows]
    return rows[:limit] if limit else rows
