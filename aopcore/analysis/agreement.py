"""The LLM judge against the human raters: the human majority beside the judge's verdict per item, how often they
agree (with Cohen's kappa), and the sentence every aggregate format states it in (the paper's judge validation)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aopcore.analysis.stats import cohen_kappa
from aopcore.records import iter_jsonl
from aopcore.storage.rundir import RunLayout


def human_judge_labels(run_dir: Path, items: Sequence[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Human majority beside the LLM judge's verdict, per human-rated item the judge also decided.

    ``items`` are the per-item majorities of a human-evaluation tally (``tables/human_eval.json``, written by
    ``aopcore human-eval results``: pair, iteration, question id, majority in the pair's (a, b) frame); the
    judge's verdicts are ``judge/<pair>/iter-XX.jsonl`` in the same frame. Dropped judge verdicts are left out.
    """
    layout = RunLayout.of(run_dir)
    if items is None:
        tally = layout.human_eval_tally
        items = json.loads(tally.read_text()).get("items", []) if tally.exists() else []
    verdicts: dict[tuple[str, int], dict[str, Any]] = {}
    rows = []
    for item in items:
        key = (str(item["pair"]), int(item["iteration"]))
        if key not in verdicts:
            path = layout.pair_verdicts(key[0], key[1])
            verdicts[key] = {rec["item_id"]: rec["choice"] for _, rec in iter_jsonl(path)} if path.exists() else {}
        judge = verdicts[key].get(str(item["question"]))
        if judge is not None:
            rows.append(
                {
                    "pair": key[0],
                    "iteration": key[1],
                    "question": item["question"],
                    "human": item["majority"],
                    "judge": judge,
                }
            )
    return rows


def judge_agreement(rows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """How often the LLM judge agrees with the human majority, and Cohen's kappa, over rows {human, judge}."""
    rows = [r for r in rows if r.get("judge") in ("A", "B", "C") and r.get("human") in ("A", "B", "C")]
    if not rows:
        return None
    human, judge = [r["human"] for r in rows], [r["judge"] for r in rows]
    kappa = cohen_kappa(human, judge)
    return {
        "items": len(rows),
        "agreement": round(sum(h == j for h, j in zip(human, judge)) / len(rows), 6),
        "cohen_kappa": None if kappa != kappa else round(kappa, 6),
    }


def agreement_sentence(agree: dict[str, Any] | None) -> str:
    """How often the LLM judge agrees with the human majority, as every aggregate format states it."""
    if not agree:
        return "No human-evaluation tally (`aopcore human-eval results SEED_DIR`) in any seed."
    kappa = "n/a" if agree["cohen_kappa"] is None else f"{agree['cohen_kappa']:.3f}"
    return (
        f"The LLM judge agrees with the human majority on {100 * agree['agreement']:.1f}% of {agree['items']} items "
        f"(Cohen's kappa {kappa}; labels A, B, tie; pooled over seeds)."
    )
