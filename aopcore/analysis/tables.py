"""Win-rate tables in the paper's format (tables 2 and 3) as Markdown, CSV and JSON."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from itertools import groupby
from pathlib import Path

from aopcore.analysis.stats import WinRate
from aopcore.storage.store import atomic_write_json, atomic_write_text


def markdown_table(rates: Sequence[WinRate]) -> str:
    """One table per arm pair: Iteration | A Wins | B Wins | Ties, percentages with 95% CIs."""
    blocks = []
    for (a, b), group in groupby(
        sorted(rates, key=lambda r: (r.arm_a, r.arm_b, r.iteration)), key=lambda r: (r.arm_a, r.arm_b)
    ):
        lines = [
            f"### {a} vs {b}",
            "",
            f"| Iteration | {a} wins (%) | {b} wins (%) | Ties (%) | n | dropped |",
            "| ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in group:
            row = r.as_row()
            cells = [
                f"{row[f'{k}_pct']:.2f} [{row[f'{k}_ci_low']:.1f}, {row[f'{k}_ci_high']:.1f}]"
                for k in ("a_wins", "b_wins", "ties")
            ]
            lines.append(f"| {r.iteration} | {' | '.join(cells)} | {r.n} | {r.dropped} |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n" if blocks else "No pairs were judged.\n"


def write_winrate_tables(folder: Path, rates: Sequence[WinRate]) -> list[str]:
    rows = [r.as_row() for r in rates]
    atomic_write_text(folder / "winrates.md", markdown_table(rates))
    atomic_write_json(folder / "winrates.json", rows)
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    atomic_write_text(folder / "winrates.csv", buf.getvalue())
    return ["tables/winrates.md", "tables/winrates.json", "tables/winrates.csv"]
