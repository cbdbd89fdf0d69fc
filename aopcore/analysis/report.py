"""A Markdown report built only from the run directory, so it can be regenerated at any time."""

from __future__ import annotations

import json
import logging
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from aopcore.records import iter_jsonl
from aopcore.storage.store import RunStore, atomic_write_text

log = logging.getLogger("aopcore")

CHOOSING = ("evaluate", "prompts")


def category_rewards(run_dir: Path) -> dict[str, dict[int, dict[str, float]]]:
    """arm -> iteration -> category -> mean held-out reward (iteration 0 is the SFT policy)."""
    out: dict[str, dict[int, dict[str, float]]] = {}
    from aopcore.storage.rundir import EVALUATION, RunLayout

    layout = RunLayout.of(run_dir)
    sft = layout.evaluation(None, 0)
    base = _mean_by_category(sft) if sft.exists() else {}
    for arm in layout.arms():
        per_iter = {0: base} if base else {}
        for i in layout.iterations_with(arm, EVALUATION):
            per_iter[i] = _mean_by_category(layout.evaluation(arm, i))
        out[arm] = per_iter
    return out


def _mean_by_category(path: Path) -> dict[str, float]:
    sums: dict[str, list[float]] = defaultdict(list)
    for _, rec in iter_jsonl(path):
        sums[rec["category"]].append(rec["reward"])
        sums["(all)"].append(rec["reward"])
    return {k: sum(v) / len(v) for k, v in sorted(sums.items())}


# judge_calls_saved: items with identical answers, a tie without asking; coalesced_calls: identical requests in flight
# at once, sent once. Both are calls not paid for, beside cached_calls (answered from the response cache).
LEDGER_KEYS = (
    "wall_s",
    "tokens_generated",
    "prompt_tokens",
    "feedback_calls",
    "judge_calls",
    "cached_calls",
    "judge_calls_saved",
    "coalesced_calls",
    "cost_usd",
)
LEDGER_HEADER = [
    "owner",
    "stage group",
    "wall s",
    "tokens generated",
    "prompt tokens sent",
    "feedback calls",
    "judge calls",
    "cached calls",
    "judge calls saved (identical answers)",
    "coalesced calls",
    "cost USD",
    "where (host/executor × stages)",
]


def ledger_group(rec: dict[str, Any]) -> str:
    """Prompt generation, and the evaluations a curriculum reads, are choosing cost; an evaluation no curriculum
    reads (vanilla's, every arm's last) is booked as ``evaluate`` (the report's per-category plot needs it)."""
    if rec["kind"] == "evaluate":
        return "choosing" if rec.get("used_for_choosing", True) else "evaluate"
    return "choosing" if rec["kind"] in CHOOSING else rec["kind"]


def ledger_summary(run_dir: Path) -> dict[tuple[str, str], dict[str, float]]:
    """Per (arm or "(shared)", stage group): wall time and usage, with choosing prompts apart from training."""
    out: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for rec in RunStore(run_dir).stage_records():
        group = ledger_group(rec)
        for key in LEDGER_KEYS:
            out[(rec.get("arm") or "(shared)", group)][key] += rec.get(key, 0.0)
    return {k: dict(v) for k, v in sorted(out.items())}


def ledger_places(run_dir: Path) -> dict[tuple[str, str], str]:
    """Per ledger row: the machines and executors its stages ran on (each stage record holds its host and worker)."""
    counts: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for rec in RunStore(run_dir).stage_records():
        if "host" in rec:
            counts[(rec.get("arm") or "(shared)", ledger_group(rec))][
                f"{rec['host']}/{str(rec.get('worker', '')).split(':')[0]}"
            ] += 1
    return {k: ", ".join(f"{place} ×{n}" for place, n in sorted(v.items())) for k, v in counts.items()}


def ledger_rows(run_dir: Path) -> list[list[str]]:
    """The ledger as table rows (LEDGER_HEADER), shared by the Markdown and HTML reports."""
    places = ledger_places(run_dir)
    return [
        [
            owner,
            group,
            f"{v['wall_s']:.1f}",
            *(str(int(v[k])) for k in LEDGER_KEYS[1:-1]),
            f"{v['cost_usd']:.4f}",
            places.get((owner, group), ""),
        ]
        for (owner, group), v in ledger_summary(run_dir).items()
    ]


def targeting(run_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Per arm and iteration: where the prompts went, and how they were chosen.

    Read from the prompts' provenance and the curriculum's log, never assumed: only prompts written from
    an evaluation's scored samples (SOP, AOP, eva) were chosen for weak categories; for those,
    ``weakest_before`` lists the weakest categories of the evaluation they were written from (as many as the
    prompts went to, at most three). A static pool
    (vanilla) or a fixed candidate pool (pool) was not chosen from an evaluation (``weakest_before`` empty).
    """
    out: dict[str, list[dict[str, Any]]] = {}
    rewards = category_rewards(run_dir)
    from aopcore.storage.rundir import PROMPTS, RunLayout

    layout = RunLayout.of(run_dir)
    for arm in layout.arms():
        rows = []
        for i in layout.iterations_with(arm, PROMPTS):
            prompts = layout.prompts(arm, i)
            counts: dict[str, int] = defaultdict(int)
            written_at: set[int] = set()
            sources: set[str] = set()
            upfront = True  # every prompt written before the first iteration (Provenance.iteration 0): a static pool
            for _, p in iter_jsonl(prompts):
                counts[p["category"]] += 1
                prov = p.get("provenance") or {}
                sources.add(prov.get("source") or "unknown")
                upfront = upfront and prov.get("iteration") == 0
                if prov.get("sample_ids"):  # written from scored evaluation samples
                    call = re.search(r"-i(\d+)-", prov.get("feedback_call") or "")
                    written_at.add(int(call.group(1)) if call else i)
            # the iteration's log, else (iteration 1) a pool written once: its cost belongs to iteration 1
            logs = [layout.path(f) for f in layout.curriculum_logs(arm, i)]
            log_file = next((f for f in logs if f.exists()), logs[0])
            gen_log = json.loads(log_file.read_text()) if log_file.exists() else {}
            evaluated = min(written_at) - 1 if written_at else None
            before = (
                {c: r for c, r in rewards.get(arm, {}).get(evaluated, {}).items() if c != "(all)"}
                if evaluated is not None
                else {}
            )
            # as many as the prompts went to (at most three): a curriculum that targets two weak categories is shown
            # beside the two weakest, not three
            weakest = sorted(before, key=lambda c: before[c])[: max(1, min(3, len(counts)))]
            rows.append(
                {
                    "iteration": i,
                    "prompts": dict(sorted(counts.items(), key=lambda kv: -kv[1])),
                    "targeted": evaluated is not None,
                    "evaluated_at": evaluated,
                    "basis": _basis(evaluated, i, sources, upfront),
                    "weakest_before": [(c, round(before[c], 3)) for c in weakest],
                    "log": gen_log,
                }
            )
        out[arm] = rows
    return out


def _basis(evaluated: int | None, iteration: int, sources: set[str], upfront: bool) -> str:
    """One phrase: how this iteration's prompts were chosen, claiming no more than their provenance shows."""
    if evaluated is not None:
        of = "the SFT policy's evaluation" if evaluated == 0 else f"the iteration-{evaluated} evaluation"
        when = "" if evaluated == iteration - 1 else f" (written at iteration {evaluated + 1})"
        return f"written for the weakest categories of {of}{when}"
    if sources == {"pool"}:
        return "picked from a fixed candidate pool, not written from an evaluation"
    if sources == {"generated"} and upfront:
        return "a static pool written before the first iteration, not chosen from an evaluation"
    # a curriculum of its own may well read ctx.evaluation; without sample_ids its prompts do not say so
    return f"{', '.join(sorted(sources))} prompts (their provenance names no evaluation samples)"


def samples(run_dir: Path, n: int) -> dict[str, list[dict[str, str]]]:
    """The first ``n`` test answers of each arm's latest answered iteration."""
    out = {}
    from aopcore.storage.rundir import TEST_ANSWERS, RunLayout, iteration_name

    layout = RunLayout.of(run_dir)
    for arm in layout.arms():
        answered = layout.iterations_with(arm, TEST_ANSWERS)
        if answered and n:
            out[arm] = [
                {**o, "iteration": iteration_name(answered[-1])}
                for _, o in iter_jsonl(layout.test_answers(arm, answered[-1]))
            ][:n]
    return out


def write_markdown_report(run_dir: Path) -> list[str]:
    run_dir = Path(run_dir)
    config: dict[str, Any] = (
        json.loads((run_dir / "config.json").read_text()) if (run_dir / "config.json").exists() else {}
    )
    parts = [f"# aopcore report: {run_dir.name}", ""]
    exp = config.get("experiment", {})
    if exp:
        parts += [
            "## Budget (identical for every arm)",
            "",
            f"- iterations: {exp.get('iterations')}",
            f"- records per iteration: {exp.get('records_per_iteration')}",
            f"- passes per record: {exp.get('passes')}",
            "",
        ]
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
            parts.append(
                f"| {c} | " + " | ".join(f"{per_iter[i].get(c, float('nan')):.3f}" for i in sorted(per_iter)) + " |"
            )
        parts.append("")
    parts += [
        "## Prompt categories per iteration, and why",
        "",
        "How each iteration's prompts were chosen (from the prompts' provenance), the weakest categories of the "
        "evaluation they were written from where they were, and where the prompts went.",
        "",
    ]
    for arm, rows in targeting(run_dir).items():
        for row in rows:
            weak = ", ".join(f"{c} ({r:.3f})" for c, r in row["weakest_before"])
            went = ", ".join(f"{c} {n}" for c, n in list(row["prompts"].items())[:6])
            log = row["log"]
            calls = (
                f"; {log['calls']} feedback calls, {log['parsed']} questions parsed, {log['accepted']} kept"
                if log.get("calls") is not None
                else ""
            )
            why = f"{row['basis']}: {weak}" if weak else row["basis"]
            parts.append(f"- **{arm}** iteration {row['iteration']}: {why} → prompts: {went}{calls}")
    parts.append("")
    winrates = run_dir / "tables" / "winrates.md"
    parts += ["## Win rates (pairwise judge)", "", winrates.read_text() if winrates.exists() else "not judged yet", ""]
    parts += [
        "## Compute ledger",
        "",
        "| " + " | ".join(LEDGER_HEADER) + " |",
        "| --- | --- |" + " ---: |" * (len(LEDGER_HEADER) - 3) + " --- |",
    ]
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


def report_writers(extra_modules: Iterable[str] = ()) -> list[tuple[str, Callable[[Path], list[str]]]]:
    """Every (name, write) a plugin registered through ``register_report_writers``; a failing hook is logged and skipped."""
    from aopcore.registry import registered_pairs

    return registered_pairs("register_report_writers", extra_modules)


def write_reports(run_dir: Path) -> list[str]:
    """Markdown always, then every report format a plugin registered (the evaluation family adds HTML with plots)."""
    run_dir = Path(run_dir)
    config = json.loads((run_dir / "config.json").read_text()) if (run_dir / "config.json").exists() else {}
    files = write_markdown_report(run_dir)
    for name, write in report_writers(config.get("experiment", {}).get("plugins", [])):
        try:
            files += write(run_dir)
        except Exception as exc:  # noqa: BLE001 - one format failing leaves the others
            log.warning("report writer %r failed: %s: %s", name, type(exc).__name__, exc)
    return files
