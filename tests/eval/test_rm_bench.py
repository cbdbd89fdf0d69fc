"""`aopcore rm-bench` on SHP-format pairs: exact agreement counts, tables, plot, and config errors."""

import json
from pathlib import Path

from helpers import TOY, run_cli


def write_pairs(path: Path) -> None:
    rows = []
    for c, cat in enumerate(["askbaking_train", "askvet_train", "legaladvice_test"]):
        for k in range(4):
            long, short = "a detailed helpful answer " * (k + 2), "no"
            preferred_a = (k + c) % 2 == 0
            # human prefers the long answer except in the last pair of each category
            human_long = k != 3
            a, b = (long, short) if preferred_a else (short, long)
            label = int(preferred_a == human_long)
            rows.append(
                {
                    "post_id": f"{c}-{k}",
                    "domain": cat,
                    "history": f"question {c}-{k}?",
                    "human_ref_A": a,
                    "human_ref_B": b,
                    "labels": label,
                    "score_A": 1,
                    "score_B": 1,
                }
            )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_rm_bench_counts_agreement_per_category(tmp_path: Path):
    write_pairs(tmp_path / "shp.jsonl")
    (tmp_path / "bench.toml").write_text(
        'data = "shp.jsonl"\nper_category = 4\nplugins = ["toy_components"]\n\n[rewards.length]\nplugin = "toy-length"\n'
    )
    result = run_cli("rm-bench", str(tmp_path / "bench.toml"), env={"PYTHONPATH": str(TOY)})
    assert result.returncode == 0, result.stderr
    assert "length: 9/12 agree (75.0%)" in result.stdout  # the length RM agrees on 3 of 4 pairs per category
    out = json.loads((tmp_path / "rm-bench" / "rm_bench.json").read_text())
    assert out["matches"]["length"] == {"askbaking": 3, "askvet": 3, "legaladvice": 3}
    table = (tmp_path / "rm-bench" / "rm_bench.md").read_text()
    assert "| askbaking (/4) | 3 |" in table and "| No. of matches (/12) | 9 |" in table
    assert (tmp_path / "rm-bench" / "rm_bench.png").stat().st_size > 1000
    assert (tmp_path / "rm-bench" / "rm_bench.csv").read_text().startswith("category,pairs,length")


def test_rm_bench_reports_config_problems(tmp_path: Path):
    (tmp_path / "bench.toml").write_text('data = "missing.jsonl"\n\n[rewards.x]\nplugin = "no-such-rm"\n')
    result = run_cli("rm-bench", str(tmp_path / "bench.toml"))
    assert result.returncode == 2
    assert "rewards.x.plugin: unknown reward plugin 'no-such-rm'" in result.stderr
    assert "data: data file not found" in result.stderr
