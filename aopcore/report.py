"""A Markdown report built only from the run directory, so it can be regenerated at any time."""
from __future__ import annotations

import importlib.util
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


LEDGER_KEYS = ("wall_s", "tokens_generated", "prompt_tokens", "feedback_calls", "judge_calls", "cached_calls", "cost_usd")
LEDGER_HEADER = ["owner", "stage group", "wall s", "tokens generated", "prompt tokens sent", "feedback calls", "judge calls",
                 "cached calls", "cost USD"]


def ledger_summary(run_dir: Path) -> dict[tuple[str, str], dict[str, float]]:
    """Per (arm or "(shared)", stage group): wall time and usage, with choosing prompts apart from training."""
    out: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for rec in RunStore(run_dir).stage_records():
        group = "choosing" if rec["kind"] in CHOOSING else rec["kind"]
        for key in LEDGER_KEYS:
            out[(rec.get("arm") or "(shared)", group)][key] += rec.get(key, 0.0)
    return {k: dict(v) for k, v in sorted(out.items())}


def ledger_rows(run_dir: Path) -> list[list[str]]:
    """The ledger as table rows (LEDGER_HEADER), shared by the Markdown and HTML reports."""
    return [[owner, group, f"{v['wall_s']:.1f}", *(str(int(v[k])) for k in LEDGER_KEYS[1:-1]), f"{v['cost_usd']:.4f}"]
            for (owner, group), v in ledger_summary(run_dir).items()]


def targeting(run_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Per arm and iteration: the weakest categories of the evaluation the prompts were chosen from, and where the prompts went."""
    out: dict[str, list[dict[str, Any]]] = {}
    rewards = category_rewards(run_dir)
    for arm_dir in sorted((run_dir / "arms").glob("*")):
        rows = []
        for it in sorted(arm_dir.glob("iter-*")):
            i = int(it.name.split("-")[1])
            prompts = it / "prompts.jsonl"
            if not prompts.exists():
                continue
            counts: dict[str, int] = defaultdict(int)
            for _, p in iter_jsonl(prompts):
                counts[p["category"]] += 1
            before = {c: r for c, r in rewards.get(arm_dir.name, {}).get(i - 1, {}).items() if c != "(all)"}
            weakest = sorted(before, key=lambda c: before[c])[:3]
            log_file = arm_dir / "curriculum" / f"{it.name}.log.json"
            if not log_file.exists() and i == 1:
                log_file = arm_dir / "curriculum" / "pool.log.json"
            gen_log = json.loads(log_file.read_text()) if log_file.exists() else {}
            rows.append({"iteration": i, "prompts": dict(sorted(counts.items(), key=lambda kv: -kv[1])),
                         "weakest_before": [(c, round(before[c], 3)) for c in weakest], "log": gen_log})
        out[arm_dir.name] = rows
    return out


def samples(run_dir: Path, n: int) -> dict[str, list[dict[str, str]]]:
    """The first ``n`` test answers of each arm's latest answered iteration."""
    out = {}
    for arm_dir in sorted((run_dir / "arms").glob("*")):
        answered = sorted(arm_dir.glob("iter-*/test_answers.jsonl"))
        if answered and n:
            iteration = answered[-1].parent.name
            out[arm_dir.name] = [{**o, "iteration": iteration} for _, o in iter_jsonl(answered[-1])][:n]
    return out


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
    parts += ["## Prompt categories per iteration, and why", "",
              "Weakest categories of the evaluation each iteration's prompts were chosen from, then where the prompts went.", ""]
    for arm, rows in targeting(run_dir).items():
        for row in rows:
            weak = ", ".join(f"{c} ({r:.3f})" for c, r in row["weakest_before"])
            went = ", ".join(f"{c} {n}" for c, n in list(row["prompts"].items())[:6])
            log = row["log"]
            calls = f"; {log['calls']} feedback calls, {log['parsed']} questions parsed, {log['accepted']} kept" if log else ""
            parts.append(f"- **{arm}** iteration {row['iteration']}: weakest before: {weak or 'n/a'} → prompts: {went}{calls}")
    parts.append("")
    winrates = run_dir / "tables" / "winrates.md"
    parts += ["## Win rates (pairwise judge)", "", winrates.read_text() if winrates.exists() else "not judged yet", ""]
    parts += ["## Compute ledger", "", "| " + " | ".join(LEDGER_HEADER) + " |", "| --- | --- |" + " ---: |" * (len(LEDGER_HEADER) - 2)]
    parts += ["| " + " | ".join(row) + " |" for row in ledger_rows(run_dir)]
    parts.append("")
    n_samples = config.get("evaluation", {}).get("samples_in_report", 3)
    picked = samples(run_dir, n_samples)
    if picked:
        parts += ["## Sample generations (test prompts)", ""]
        for arm, rows in picked.items():
            for r in rows:
                parts += [f"**{arm}** ({r['iteration']}) — *{r['question']}*", "", f"> {r['answer'] or '(empty)'}", ""]
    atomic_write_text(run_dir / "report.md", "\n".join(parts))
    return ["report.md"]


def write_reports(run_dir: Path) -> list[str]:
    """Markdown always; HTML with plots when the evaluation family (and matplotlib) is installed."""
    files = write_markdown_report(run_dir)
    if importlib.util.find_spec("aopcore_eval") and importlib.util.find_spec("matplotlib"):
        from aopcore_eval.html_report import write_html_report

        files += write_html_report(run_dir)
    return files
