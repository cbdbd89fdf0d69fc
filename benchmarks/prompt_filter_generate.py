"""Write the raw feedback-LLM outputs behind benchmarks/data/prompt_filter_sample.jsonl.

Runs the packaged SmolLM2 (the quickstart's `local` feedback LLM: 72 new tokens, sampling at
temperature 0.7) on the compact vanilla and score-based prompts the curricula send, for every SHP
category, once per seed. One JSON line per call: seed, kind (vanilla | score-based), category, prompt,
response. Offline; a few minutes per seed on 2 cores.

    nice .venv/bin/python benchmarks/prompt_filter_generate.py --out benchmarks/data/prompt_filter_raw.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from aopcore import EvalRecord
from aopcore.data.sources import load_source


def prompts(seed: int) -> list[dict]:
    from aopcore_curricula import templates

    rng = random.Random(seed)
    heldout = load_source("builtin:heldout", Path("."))
    by_cat: dict[str, list] = {}
    for q in heldout:
        by_cat.setdefault(q.category, []).append(q)
    out = []
    for cat in sorted(templates.category_info()):
        keyword = rng.choice(templates.keywords(cat))
        out.append({"kind": "vanilla", "category": cat, "prompt": templates.vanilla_prompt(cat, keyword, 5, "compact")})
        # a draw as the score-based curricula make it: one held-out question per category, scored
        sample = [
            EvalRecord(q.id, q.text, q.category, "", round(rng.uniform(-1, 1), 2))
            for q in (rng.choice(v) for v in by_cat.values())
        ]
        conv = templates.convention(cat)
        out.append(
            {
                "kind": "score-based",
                "category": cat,
                "prompt": templates.SCORE_BASED_COMPACT.format(
                    examples=templates.compact_examples(sample, cat),
                    n=6,
                    target=cat,
                    venue=f"the Reddit forum r/{cat}",
                    convention=f"{conv} " if conv else "",
                ),
            }
        )
    return out


def main() -> None:
    from aopcore_hf.feedback import LocalFeedbackLLM, LocalLLMOptions

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--max-new-tokens", type=int, default=72)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    rows = []
    for seed in args.seeds:
        llm = LocalFeedbackLLM(
            LocalLLMOptions(
                max_new_tokens=args.max_new_tokens, batch_size=16, seed=seed, cache=False, engine="transformers"
            )
        )  # the committed labels came from transformers
        calls = prompts(seed)
        for call, response in zip(calls, llm.complete([c["prompt"] for c in calls])):
            rows.append({"seed": seed, **call, "response": response})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"{len(rows)} responses -> {args.out}")


if __name__ == "__main__":
    main()
