"""Precision and recall of the score-based prompt filter on real SmolLM2 outputs, before and after.

The sample (`data/prompt_filter_sample.jsonl`) is every candidate line of the raw feedback-LLM outputs in
`data/prompt_filter_raw.jsonl` (written by `prompt_filter_generate.py`), each labelled `keep` (a complete
question a user could post) or `reject` (truncated, a list marker or label left as the text, an
assistant-style offer, a preamble, ...) with the reason. Both filters parse each raw response whole, as the
curricula do; a line counts as kept when a kept question came from it. A kept question that still starts with
a list marker or a label ("4: What ...", "Question 2: ...") counts as a wrong keep whatever the line's label.

Baseline: the filter at commit 93e6333, kept verbatim in `data/parsing_93e6333.py`. Figures are given for all
lines and per seed: the outputs of seeds 0 and 1 were read while the filter was written; seed 2's were generated
and labelled after it was finished (the check on overfitting to the lines the rules were made from).

    .venv/bin/python benchmarks/prompt_filter.py --out benchmarks/results/prompt_filter.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from _output import emit

HERE = Path(__file__).parent
DATA = HERE / "data"
# what a kept question must not still carry: a list marker or label in front ("4:", "[2]", "Question 3:", "#Tag:",
# "A:", "Challenge:"; "ELI5:" and "CMV:" are conventions, not labels), or a copied score behind ("(1.99)", "score 0.48")
LEFTOVER = re.compile(
    r"^\W*(?:\d{1,3}(?:\.\d+)*\s*[.:)\]\-]|(?:question|q)\s*\d{0,3}\s*[.:)\-]|#\w+\s*:|[a-h]\s*[:)]\s|"
    r"(?!(?:eli5|cmv)\s*:)[a-z][\w'’]*(?: [\w'’]+)?:\s)|(?:\(\s*-?\d+(?:\.\d+)?\s*\)|\([^()]*\bscore\b[^()]*\)|\bscore:?\s*-?\d+(?:\.\d+)?|\s-\s*\d*)\s*$",
    re.I,
)


def _load_baseline() -> Callable:
    spec = importlib.util.spec_from_file_location("parsing_93e6333", DATA / "parsing_93e6333.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module.parse_questions


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def decisions(
    parse: Callable, responses: list[dict], rows: list[dict], categories: list[str]
) -> list[tuple[bool, bool]]:
    """(kept, kept text clean) per sample row, parsing each response whole as the curricula do."""
    kept_by_response = {}
    for n, r in enumerate(responses):
        kept_by_response[n] = [_norm(item.text) for item in parse(r["response"], categories).items]
    out = []
    for row in rows:
        line = _norm(row["text"])
        texts = [t for t in kept_by_response[row["response"]] if t and t in line]
        out.append((bool(texts), all(not LEFTOVER.search(t) for t in texts)))
    return out


def score(rows: list[dict], decided: list[tuple[bool, bool]]) -> dict:
    tp = sum(kept and clean and r["label"] == "keep" for r, (kept, clean) in zip(rows, decided))
    kept = sum(k for k, _ in decided)
    should = sum(r["label"] == "keep" for r in rows)
    wrong = Counter(r["reason"] for r, (k, c) in zip(rows, decided) if k and r["label"] == "reject")
    return {
        "lines": len(rows),
        "should_keep": should,
        "kept": kept,
        "kept_correctly": tp,
        "precision": round(tp / kept, 4) if kept else None,
        "recall": round(tp / should, 4) if should else None,
        "wrongly_kept_by_reason": dict(wrong.most_common()),
        "kept_with_marker_label_or_score_left": sum(
            k and not c and r["label"] == "keep" for r, (k, c) in zip(rows, decided)
        ),
        "missed": sum(not k and r["label"] == "keep" for r, (k, _) in zip(rows, decided)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--raw", type=Path, default=DATA / "prompt_filter_raw.jsonl")
    ap.add_argument("--sample", type=Path, default=DATA / "prompt_filter_sample.jsonl")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    from aopcore_curricula import templates
    from aopcore_curricula.parsing import parse_questions

    responses = [json.loads(line) for line in args.raw.read_text().splitlines()]
    rows = [json.loads(line) for line in args.sample.read_text().splitlines()]
    categories = sorted(templates.category_info())
    result: dict = {
        "sample": str(args.sample.relative_to(HERE.parent))
        if args.sample.is_relative_to(HERE.parent)
        else str(args.sample),
        "responses": len(responses),
        "labels": dict(Counter(r["label"] for r in rows)),
        "reject_reasons": dict(Counter(r["reason"] for r in rows if r["label"] == "reject").most_common()),
    }
    for name, parse in (("before", _load_baseline()), ("after", parse_questions)):
        decided = decisions(parse, responses, rows, categories)
        result[name] = {"all": score(rows, decided)}
        for seed in sorted({responses[r["response"]]["seed"] for r in rows}):
            pick = [i for i, r in enumerate(rows) if responses[r["response"]]["seed"] == seed]
            result[name][f"seed {seed}"] = score([rows[i] for i in pick], [decided[i] for i in pick])
    emit(result, args.out)


if __name__ == "__main__":
    main()
