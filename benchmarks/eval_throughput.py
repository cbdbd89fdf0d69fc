"""Batched, length-sorted evaluation vs a one-prompt-at-a-time loop, same model, prompts and decoding.

Default: the packaged SmolLM2-135M on CPU, 32 held-out questions, 32 new tokens, greedy, batch 16.
Goal: batched at least 5x faster. JSON to stdout (and --out).

    .venv/bin/python benchmarks/eval_throughput.py
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _output import emit  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    import torch

    from aopcore.data.sources import load_source
    from aopcore_hf.generation import (
        GenerationSettings,
        decode_responses,
        encode_queries,
        generate_rollouts,
    )
    from aopcore_hf.models import choose_device, load_causal_lm

    questions = [q.text for q in load_source("builtin:heldout", Path("."))][: args.prompts]
    choice = choose_device()
    model, tok = load_causal_lm(args.model, choice)
    queries = encode_queries(tok, questions, 512)

    # min_new_tokens makes both sides generate exactly the same number of tokens
    def settings(bs: int) -> GenerationSettings:
        return GenerationSettings(max_new_tokens=args.new_tokens, do_sample=False, batch_size=bs)

    generate_rollouts(model, tok, queries[:2], settings(2))  # warm-up
    t0 = time.perf_counter()
    batched = generate_rollouts(model, tok, queries, settings(args.batch_size))
    t1 = time.perf_counter()
    single = [generate_rollouts(model, tok, [q], settings(1))[0] for q in queries]
    t2 = time.perf_counter()
    tokens_b = sum(len(r.response) for r in batched)
    tokens_s = sum(len(r.response) for r in single)
    same = sum(a == b for a, b in zip(decode_responses(tok, batched), decode_responses(tok, single)))
    result = {
        "benchmark": "eval_throughput",
        "model": args.model,
        "device": choice.device,
        "threads": torch.get_num_threads(),
        "prompts": len(queries),
        "max_new_tokens": args.new_tokens,
        "batch_size": args.batch_size,
        "batched_s": round(t1 - t0, 2),
        "one_at_a_time_s": round(t2 - t1, 2),
        "speedup": round((t2 - t1) / (t1 - t0), 2),
        "batched_tokens_per_s": round(tokens_b / (t1 - t0), 1),
        "one_at_a_time_tokens_per_s": round(tokens_s / (t2 - t1), 1),
        "identical_answers": f"{same}/{len(queries)}",
        "goal_speedup": 5.0,
        "meets_goal": (t2 - t1) / (t1 - t0) >= 5.0,
    }
    emit(result, args.out)


if __name__ == "__main__":
    main()
