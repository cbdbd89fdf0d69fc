"""Comparing run directories: what must be identical between an interrupted-and-resumed run and a whole one."""

from __future__ import annotations

import difflib
import json
from pathlib import Path


def outputs(run: Path) -> dict[str, str]:
    """Every result file of a run, minus wall-clock times (the only thing allowed to differ)."""
    out = {}
    for path in sorted(run.rglob("*")):
        if not path.is_file():
            continue
        rel = str(path.relative_to(run))
        text = path.read_text()
        if rel.startswith("stages/"):
            record = json.loads(text)
            for timing in ("wall_s", "lost_wall_s", "attempts"):  # an interrupted stage books its lost attempt
                record.pop(timing, None)
            text = json.dumps(record, sort_keys=True)
        if rel == "report.md":
            text = text.split("## Compute ledger")[0]  # the ledger holds wall times
        if rel == "report.html":
            head, _, rest = text.partition("<h2>Compute ledger")
            text = head + rest[rest.find("<h2>") :]  # drop the ledger table (wall times), keep everything else
        out[rel] = text
    return out


def assert_same_outputs(got: dict[str, str | bytes], reference: dict[str, str | bytes]) -> None:
    """Assert two ``outputs`` maps are equal, failing with the files that differ and the first lines that do.

    A plain ``==`` on two maps of whole files prints both in full, which buries the difference (and CI keeps only
    the tail of its log)."""
    if got == reference:
        return
    missing = sorted(set(reference) - set(got))
    extra = sorted(set(got) - set(reference))
    changed = sorted(k for k in set(got) & set(reference) if got[k] != reference[k])
    lines = [f"missing: {missing}", f"extra: {extra}", f"changed: {changed}"]
    for key in changed[:5]:
        a, b = reference[key], got[key]
        if isinstance(a, bytes) or isinstance(b, bytes):
            lines.append(f"--- {key}: bytes differ")
            continue
        diff = difflib.unified_diff(a.splitlines(), b.splitlines(), "reference", "got", lineterm="", n=1)
        lines.append(f"--- {key}")
        lines.extend(list(diff)[2:30])
    raise AssertionError("run directories differ\n" + "\n".join(lines))
