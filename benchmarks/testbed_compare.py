"""The testbed comparison: vanilla, SOP, AOP, eva and pool under one budget, several seeds, against ground truth.

Runs ``examples/testbed.toml`` (every arm, every seed) with ``aopcore run``, then reads the run directory and writes
``benchmarks/results/testbed_compare.json`` (per arm, seed and iteration: held-out accuracy overall and per category,
the categories trained on; pairwise differences with intervals; judged win rates; the plain-sentence conclusions)
and the figures ``docs/img/testbed_*.png`` shown in docs/testbed.md.

    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/testbed_compare.py            # 5 seeds x 5 arms x 4 iterations
    .venv/bin/python benchmarks/testbed_compare.py --seeds 0 1 --iterations 2          # a smaller, labelled run

Statistics: those of ``aopcore.aggregate``, taken as they are (held-out accuracy per arm with a Student-t interval
across seeds; paired differences between arms with a two-level bootstrap over seeds and the held-out questions within
each seed; win rates with a two-level bootstrap over seeds and test prompts; its verdicts, which say "no conclusion"
with fewer than 3 seeds or seeds that do not vary). Added here, with the same bootstrap and verdict: the area under
the accuracy curve (each held-out question's mean reward over iterations 1..N) per arm, and its paired differences.
The run directory is kept (``--run-dir``); rerunning resumes it and only recomputes the summary (the timing of the
invocation that ran the experiment is then kept from the earlier results file as ``time_full_run``).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from _output import emit  # noqa: E402

CONFIG = ROOT / "examples" / "testbed.toml"
ARMS = ["vanilla", "sop", "aop", "eva", "pool"]


def run_experiment(run_dir: Path, name: str, seeds: list[int], iterations: int, overrides: list[str]) -> dict[str, float]:
    cmd = [sys.executable, "-m", "aopcore.cli", "run", str(CONFIG), "--set", f"experiment.seeds={json.dumps(seeds)}",
           "--set", f"experiment.iterations={iterations}", "--set", f'experiment.name="{name}"',
           "--set", f'experiment.output_dir="{run_dir}"'] + [a for o in overrides for a in ("--set", o)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    t0, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"aopcore run failed with exit status {proc.returncode}")
    return {"wall_s": round(time.perf_counter() - t0, 1),
            "cpu_s": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 1)}


def _accuracy(path: Path) -> dict[str, float]:
    by: dict[str, list[float]] = {}
    for line in path.read_text().splitlines():
        r = json.loads(line)
        by.setdefault(r["category"], []).append(float(r["reward"]))
    out = {c: round(sum(v) / len(v), 6) for c, v in sorted(by.items())}
    out["(all)"] = round(sum(sum(v) for v in by.values()) / sum(len(v) for v in by.values()), 6)
    return out


def per_seed_table(root: Path, seeds: list[int], iterations: int) -> dict:
    """arm -> seed -> list over iterations 0..N of {accuracy, by_category, trained_on}."""
    table: dict = {}
    for arm in ARMS:
        table[arm] = {}
        for s in seeds:
            run = root / f"seed-{s}"
            rows = [{"iteration": 0, "accuracy": (acc := _accuracy(run / "sft" / "evaluation.jsonl"))["(all)"],
                     "by_category": {c: v for c, v in acc.items() if c != "(all)"}, "trained_on": {}}]
            for i in range(1, iterations + 1):
                folder = run / "arms" / arm / f"iter-{i:02d}"
                acc = _accuracy(folder / "evaluation.jsonl")
                trained: dict[str, int] = {}
                for line in (folder / "prompts.jsonl").read_text().splitlines():
                    cat = json.loads(line)["category"]
                    trained[cat] = trained.get(cat, 0) + 1
                rows.append({"iteration": i, "accuracy": acc["(all)"], "by_category": {c: v for c, v in acc.items() if c != "(all)"},
                             "trained_on": dict(sorted(trained.items()))})
            table[arm][str(s)] = rows
    return table


def _question_rewards(path: Path) -> dict[str, float]:
    return {(r := json.loads(line))["question_id"]: float(r["reward"]) for line in path.read_text().splitlines()}


def area_under_curve(root: Path, seeds: list[int], iterations: int) -> dict:
    """Mean accuracy over iterations 1..N (sample efficiency) per arm, and paired differences between arms.

    Per seed, each held-out question's reward is averaged over iterations 1..N; the arm's value is the mean of those
    over seeds, with ``aopcore.aggregate``'s paired two-level bootstrap (seeds, then questions within each seed) and
    its verdict rule (no conclusion below MIN_SEEDS seeds or when the per-seed values do not vary).
    """
    from aopcore.aggregate import RESAMPLES, verdict
    from aopcore.stats import two_level_bootstrap_mean

    per_q: dict[str, dict[int, dict[str, float]]] = {}  # arm -> seed -> question -> mean reward over iterations
    for arm in ARMS:
        per_q[arm] = {}
        for s in seeds:
            rewards = [_question_rewards(root / f"seed-{s}" / "arms" / arm / f"iter-{i:02d}" / "evaluation.jsonl")
                       for i in range(1, iterations + 1)]
            per_q[arm][s] = {q: statistics.mean(r[q] for r in rewards) for q in rewards[0] if all(q in r for r in rewards)}
    summary = {arm: two_level_bootstrap_mean([list(per_q[arm][s].values()) for s in seeds], resamples=RESAMPLES,
                                             seed=zlib.crc32(f"auc/{arm}".encode())).as_dict() for arm in ARMS}
    pairs = []
    for a, b in [("aop", "sop"), ("aop", "vanilla"), ("sop", "vanilla"), ("aop", "eva"), ("aop", "pool"), ("eva", "vanilla"),
                 ("pool", "vanilla")]:
        diffs = {s: [per_q[a][s][q] - per_q[b][s][q] for q in per_q[a][s] if q in per_q[b][s]] for s in seeds}
        diff = two_level_bootstrap_mean(list(diffs.values()), resamples=RESAMPLES, seed=zlib.crc32(f"auc/{a}-vs-{b}".encode()))
        per_seed = {str(s): round(statistics.mean(d), 6) for s, d in diffs.items()}
        vary = len(set(per_seed.values())) > 1
        pairs.append({"arm_a": a, "arm_b": b, **diff.as_dict(), "questions": sum(len(d) for d in diffs.values()),
                      "per_seed": per_seed, "verdict": verdict(a, b, diff, seeds=diff.n, seeds_vary=vary)})
    return {"per_seed": {arm: {str(s): round(statistics.mean(v.values()), 6) for s, v in per.items()} for arm, per in per_q.items()},
            "summary": summary, "differences": pairs,
            "method": "each held-out question's reward averaged over iterations 1..N within a seed; mean over questions, "
                      "then over seeds; 95% percentile interval of aopcore.aggregate's two-level bootstrap "
                      f"({RESAMPLES} replicates: seeds, then questions within each seed), paired per question for "
                      "differences; verdicts by aopcore.aggregate.verdict"}


def _shown(path: Path) -> str:
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def plots(table: dict, agg: dict, seeds: list[int], iterations: int, out_dir: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    colors = {"vanilla": "#7f7f7f", "sop": "#1f77b4", "aop": "#d62728", "eva": "#2ca02c", "pool": "#9467bd"}
    files = []

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for arm in ARMS:
        rows = agg["heldout"][arm]
        xs = [r["iteration"] for r in rows]
        ax.plot(xs, [r["estimate"] for r in rows], marker="o", label=arm, color=colors[arm])
        if all(r["ci_low"] is not None for r in rows[1:]):
            lo = [r["ci_low"] if r["ci_low"] is not None else r["estimate"] for r in rows]
            hi = [r["ci_high"] if r["ci_high"] is not None else r["estimate"] for r in rows]
            ax.fill_between(xs, lo, hi, color=colors[arm], alpha=0.12)
    ax.set_xlabel("iteration (0 = start policy)")
    ax.set_ylabel("held-out accuracy")
    ax.set_xticks(range(iterations + 1))
    ax.set_title(f"Testbed: held-out accuracy, mean and 95% band over {len(seeds)} seeds")
    ax.legend(ncol=5, fontsize=8, loc="lower center")
    fig.tight_layout()
    fig.savefig(out_dir / "testbed_accuracy.png", dpi=110)
    plt.close(fig)
    files.append(_shown(out_dir / "testbed_accuracy.png"))

    categories = sorted(next(iter(next(iter(table.values())).values()))[0]["by_category"])
    fig, axes = plt.subplots(2, 4, figsize=(12, 5.6), sharex=True, sharey=True)
    for ax, cat in zip(axes.flat, categories):
        for arm in ARMS:
            ys = [statistics.mean(table[arm][str(s)][i]["by_category"][cat] for s in seeds) for i in range(iterations + 1)]
            ax.plot(range(iterations + 1), ys, marker=".", color=colors[arm], label=arm)
        ax.set_title(cat, fontsize=10)
        ax.set_ylim(0, 1)
    axes.flat[-1].axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle("Held-out accuracy per category (mean over seeds)")
    fig.supxlabel("iteration")
    fig.tight_layout()
    fig.savefig(out_dir / "testbed_categories.png", dpi=110)
    plt.close(fig)
    files.append(_shown(out_dir / "testbed_categories.png"))

    fig, axes = plt.subplots(1, len(ARMS), figsize=(13, 3.4), sharey=True)
    cmap = plt.get_cmap("tab10")
    for ax, arm in zip(axes, ARMS):
        bottoms = [0.0] * iterations
        for k, cat in enumerate(categories):
            share = []
            for i in range(1, iterations + 1):
                counts = [table[arm][str(s)][i]["trained_on"].get(cat, 0) for s in seeds]
                totals = [sum(table[arm][str(s)][i]["trained_on"].values()) for s in seeds]
                share.append(sum(counts) / sum(totals))
            ax.bar(range(1, iterations + 1), share, bottom=bottoms, color=cmap(k), label=cat)
            bottoms = [b + v for b, v in zip(bottoms, share)]
        ax.set_title(arm)
        ax.set_xlabel("iteration")
    axes[0].set_ylabel("share of training prompts")
    axes[-1].legend(fontsize=7, bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.suptitle("What each curriculum trained on (pooled over seeds)")
    fig.tight_layout()
    fig.savefig(out_dir / "testbed_allocation.png", dpi=110)
    plt.close(fig)
    files.append(_shown(out_dir / "testbed_allocation.png"))
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--run-dir", type=Path, default=ROOT / "runs", help="folder that holds the run directory")
    parser.add_argument("--name", default="testbed-compare")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "testbed_compare.json")
    parser.add_argument("--figures", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="passed to aopcore run (a reduced run, e.g. experiment.records_per_iteration=16)")
    args = parser.parse_args()

    from aopcore.aggregate import aggregate

    root = args.run_dir.resolve() / args.name
    resumed = (root / "multiseed.json").exists()
    timing = run_experiment(args.run_dir.resolve(), args.name, args.seeds, args.iterations, args.overrides)
    table = per_seed_table(root, args.seeds, args.iterations)
    agg = aggregate(root)
    full = args.seeds == [0, 1, 2, 3, 4] and args.iterations == 4 and not args.overrides
    command = (f"OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/testbed_compare.py --seeds {' '.join(map(str, args.seeds))} "
               f"--iterations {args.iterations}" + "".join(f" --set {o}" for o in args.overrides))
    earlier = json.loads(args.out.read_text()) if resumed and args.out.exists() else {}
    full_run = earlier.get("time_full_run", earlier.get("time")) if earlier.get("command") == command else None
    result = {
        "benchmark": "testbed_compare",
        "complete": full,
        "scope": ("the full comparison of examples/testbed.toml" if full else
                  f"REDUCED: seeds {args.seeds}, {args.iterations} iterations, overrides {args.overrides} (the example "
                  "runs 5 seeds x 4 iterations)"),
        "command": command,
        "config": "examples/testbed.toml", "seeds": args.seeds, "iterations": args.iterations, "arms": ARMS,
        "machine": {"cpus": os.cpu_count(), "load_average_1m_at_end": round(os.getloadavg()[0], 2)},
        "time": timing,
        "time_full_run": timing if not resumed else full_run,
        "accuracy": table,
        "area_under_curve": area_under_curve(root, args.seeds, args.iterations),
        "heldout": agg["heldout"], "heldout_differences": agg["heldout_differences"], "winrates": agg["winrates"],
        "conclusions": agg["conclusions"], "methods": agg["methods"],
        "figures": plots(table, agg, args.seeds, args.iterations, args.figures),
    }
    emit(result, args.out)


if __name__ == "__main__":
    main()
