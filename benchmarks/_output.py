"""Shared output of the benchmark scripts: pretty JSON on stdout, and to --out when given."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def emit(result: dict[str, Any], out: Path | None) -> None:
    text = json.dumps(result, indent=2)
    print(text)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")


def emit_lines(results: list[dict[str, Any]], out: Path | None) -> None:
    """One JSON object per line (a sweep), on stdout and to --out when given."""
    text = "\n".join(json.dumps(r) for r in results)
    print(text)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
