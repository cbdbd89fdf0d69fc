"""De-duplication at scale: time and peak memory of cluster_dedup at 10k, 30k and 100k questions.

Questions are synthetic (templates x topics x details, so near-duplicates are common) and
embedded with the packaged MiniLM unless --synthetic-embeddings is given (random vectors
with planted near-duplicates: measures the de-duplication alone). Each size runs in a fresh
subprocess so peak RSS is per size. Output: JSON lines, one per size.

    .venv/bin/python benchmarks/dedup_scale.py --sizes 10000 30000 100000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def questions(n: int) -> list[str]:
    forms = [
        "How do I {v} my {o} when it {p}?",
        "Why does my {o} {p} after I {v} it?",
        "Is it normal that my {o} {p}?",
        "What's the best way to {v} a {o} that {p}?",
        "ELI5: why would a {o} {p}?",
        "My {o} {p}. Should I {v} it myself?",
    ]
    verbs = ["fix", "clean", "store", "replace", "check", "heat", "cool", "train", "feed", "sell", "paint", "insure"]
    objects = [
        "oven",
        "car",
        "dog",
        "cat",
        "lease",
        "bread",
        "bike",
        "laptop",
        "garden",
        "roof",
        "boiler",
        "phone",
        "sofa",
        "guitar",
    ]
    problems = [
        "smells odd",
        "makes a noise",
        "stops working",
        "gets too hot",
        "looks damaged",
        "keeps failing",
        "costs too much",
        "breaks again",
        "leaks water",
        "shakes a lot",
        "turns off",
        "feels slow",
    ]
    out = []
    i = 0
    while len(out) < n:
        f, v, o, p = forms[i % 6], verbs[(i // 6) % 12], objects[(i // 72) % 14], problems[(i // 1008) % 12]
        out.append(f.format(v=v, o=o, p=p) + (f" (case {i // 12096})" if i >= 12096 else ""))
        i += 1
    return out


def run_one(n: int, synthetic: bool) -> dict:
    import numpy as np

    from aopcore_curricula.dedup import cluster_dedup

    t0 = time.perf_counter()
    if synthetic:
        rng = np.random.default_rng(0)
        base = rng.normal(size=(n - n // 5, 384)).astype(np.float32)
        near = base[: n // 5] + 0.05 * rng.normal(size=(n // 5, 384)).astype(np.float32)
        emb = np.vstack([base, near])
    else:
        from aopcore_hf.embedder import EmbedderOptions, SentenceEmbedder

        emb = SentenceEmbedder(EmbedderOptions(batch_size=256)).embed(questions(n))
    t1 = time.perf_counter()
    kept = cluster_dedup(emb, int(n * 0.7), n_clusters=11, pca_components=32, seed=0)
    t2 = time.perf_counter()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "benchmark": "dedup_scale",
        "n": n,
        "target": int(n * 0.7),
        "kept": len(kept),
        "embeddings": "random" if synthetic else "MiniLM",
        "embed_s": round(t1 - t0, 2),
        "dedup_s": round(t2 - t1, 2),
        "peak_rss_mb": round(peak_mb, 1),
        "embedding_matrix_mb": round(emb.nbytes / 2**20, 1),
        "n_by_n_matrix_would_be_mb": round(n * n * 4 / 2**20, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[10000, 30000, 100000])
    ap.add_argument("--synthetic-embeddings", action="store_true")
    ap.add_argument("--child", type=int)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(run_one(args.child, args.synthetic_embeddings)))
        return
    for n in args.sizes:
        cmd = [sys.executable, __file__, "--child", str(n)] + (
            ["--synthetic-embeddings"] if args.synthetic_embeddings else []
        )
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        print(out, flush=True)


if __name__ == "__main__":
    main()
