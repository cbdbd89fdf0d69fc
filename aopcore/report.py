"""A Markdown report built only from the run directory, so it can be regenerated at any time."""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from aopcore.records import iter_jsonl
from aopcore.store import RunStore, atomic_write_text

CHOOSING = ("evaluate", "prompts")


def category_rewards(run_dir: Path) -> dict[str, dict[int, dict[str, float]]]:
    """arm -> iteration -> category -> mean held-out reward (iteration 0 is the SFT policy)."""
    out: dict[str, dict[int, dict[str, float]]] = {}
    sft = run_dir / "sft" / "evaluation.jsonl"
    base = _mean_by_category(sft) if sft.exists() else {}
    for arm_dir in sorted((run_dir / "arms").glob("*")):
        per_iter = {0: base} if base else {}
        for it in sorted(arm_dir.glob("iter-*")):
            ev = it / "evaluation.jsonl"
            if ev.exists():
                per_iter[int(it.name.split("-")[1])] = _mean_by_category(ev)
        out[arm_dir.name] = per_iter
    return out


def _mean_by_category(path: Path) -> dict[str, float]:
    sums: dict[str, list[float]] = defaultdict(list)
    for _, rec in iter_jsonl(path):
        sums[rec["category"]].append(rec["reward"])
        sums["(all)"].append(rec["reward"])
    return {k: sum(v) / len(v) for k, v in sorted(sums.items())}


def ledger_summary(run_dir: Path) -> dict[str, dict[str, float]]:
    """Per arm (and shared stages): wall time and usage split into choosing prompts vs training."""
    out: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for rec in RunStore(run_dir).stage_records():
        owner = rec.get("arm") or "(shared)"
        group = "choosing" if rec["kind"] in CHOOSING else rec["kind"]
        out[owner][f"{group}_wall_s"] += rec.get("wall_s", 0.0)
        for key in ("tokens_generated", "feedback_calls", "judge_calls"):
            if key in rec:
                out[owner][f"{group}_{key}"] += rec[key]
    return {k: dict(v) for k, v in out.items()}


def write_markdown_report(run_dir: Path) -> list[str]:
    run_dir = Path(run_dir)
    config: dict[str, Any] = json.loads((run_dir / "config.json").read_text()) if (run_dir / "config.json").exists() else {}
    parts = [f"# aopcore report: {run_dir.name}", ""]
    exp = config.get("experiment", {})
    if exp:
        parts += ["## Budget (identical for every arm)", "",
                  f"- iterations: {exp.get('iterations')}", f"- records per iteration: {exp.get('records_per_iteration')}",
                  f"- passes per record: {exp.get('passes')}", ""]
    parts += ["## Held-out reward per category", ""]
    for arm, per_iter in category_rewards(run_dir).items():
        if not per_iter:
            continue
        cats = sorted({c for d in per_iter.values() for c in d})
        parts.append(f"### {arm}")
        parts.append("")
        parts.append("| category | " + " | ".join(f"iter {i}" for i in sorted(per_iter)) + " |")
        parts.append("| --- |" + " ---: |" * len(per_iter))
        for c in cats:
            parts.append(f"| {c} | " + " | ".join(f"{per_iter[i].get(c, float('nan')):.3f}" for i in sorted(per_iter)) + " |")
        parts.append("")
    parts += ["## Prompt categories per iteration", ""]
    for arm_dir in sorted((run_dir / "arms").glob("*")):
        for it in sorted(arm_dir.glob("iter-*")):
            rec_path = RunStore(run_dir).stage_file(f"arms/{arm_dir.name}/{it.name}/prompts")
            if rec_path.exists():
                cats = json.loads(rec_path.read_text()).get("categories", {})
                top = ", ".join(f"{c} {n}" for c, n in sorted(cats.items(), key=lambda kv: -kv[1])[:6])
                parts.append(f"- {arm_dir.name} {it.name}: {top}")
    parts.append("")
    winrates = run_dir / "tables" / "winrates.md"
    parts += ["## Win rates (pairwise judge)", "", winrates.read_text() if winrates.exists() else "not judged yet", ""]
    parts += ["## Compute ledger", "", "| owner | stage group | wall s | tokens generated | feedback calls | judge calls |",
              "| --- | --- | ---: | ---: | ---: | ---: |"]
    for owner, vals in sorted(ledger_summary(run_dir).items()):
        groups = sorted({k.split("_", 1)[0] for k in vals})
        for g in groups:
            parts.append(f"| {owner} | {g} | {vals.get(f'{g}_wall_s', 0):.1f} | {int(vals.get(f'{g}_tokens_generated', 0))} | "
                         f"{int(vals.get(f'{g}_feedback_calls', 0))} | {int(vals.get(f'{g}_judge_calls', 0))} |")
    parts.append("")
    atomic_write_text(run_dir / "report.md", "\n".join(parts))
    return ["report.md"]
