"""Comparing run directories: what must be identical between an interrupted-and-resumed run and a whole one."""

from __future__ import annotations

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
