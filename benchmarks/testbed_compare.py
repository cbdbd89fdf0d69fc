"""The testbed comparison: vanilla, SOP, AOP, eva and pool under one budget, several seeds, against ground truth.

Runs ``examples/testbed.toml`` (every arm, every seed) with ``aopcore run``, then reads the run directory and writes
``benchmarks/results/testbed_compare.json`` (per arm, seed and iteration: held-out accuracy overall and per category,
the categories trained on; pairwise differences with intervals; judged win rates; the plain-sentence conclusions)
and the figures ``docs/img/testbed_*.png`` shown in docs/testbed.md.

    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/testbed_compare.py            # 5 seeds x 5 arms x 4 iterations
    .venv/bin/python benchmarks/testbed_compare.py --seeds 0 1 --iterations 2          # a smaller, labelled run

Statistics: those of ``aopcore.analysis.aggregate``, taken as they are (held-out accuracy per arm with a Student-t interval
across seeds; paired differences between arms with a two-level bootstrap over seeds and the held-out questions within
each seed; win rates with a two-level bootstrap over seeds and test prompts; its verdicts, which say "no conclusion"
with fewer than 3 seeds or seeds that do not vary). Added here, with the same bootstrap and verdict: the area under
the accuracy curve (each held-out question's mean reward over iterations 1..N) per arm, and its paired differences.
The results record where they were measured (``machine``: CPU model, cores, the torch thread count, library versions,
the start policy's hash and accuracy, the load average) and how long it took (``time``: wall and CPU seconds).
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
ARMS = [
    "vanilla",
    "sop",
    "aop",
    "eva",
    "pool",
    "learnability",
    "dynamic-filter",
    "category-bandit",
    "mopps",
    "speed",
    "adarft",
    "sws",
    "oracle",
]
ARMS_ALL = tuple(ARMS)
COLORS = {
    "vanilla": "#7f7f7f",
    "sop": "#1f77b4",
    "aop": "#d62728",
    "eva": "#2ca02c",
    "pool": "#9467bd",
    "learnability": "#ff7f0e",
    "dynamic-filter": "#8c564b",
    "category-bandit": "#e377c2",
    "mopps": "#17becf",
    "speed": "#bcbd22",
    "adarft": "#aec7e8",
    "sws": "#ff9896",
    "oracle": "#000000",
}


def arms_config(config: Path, arms: list[str]) -> Path:
    """``config`` with only the ``[arms.NAME]`` sections of ``arms`` (written beside it, so relative paths hold)."""
    text = config.read_text()
    head, _, rest = text.partition("\n[arms.")
    sections = [sec.removeprefix("[") for sec in ("[arms." + rest).split("\n[")]
    kept = [sec for sec in sections if not sec.startswith("arms.") or sec.split("]")[0][5:] in arms]
    body = "\n".join("[" + sec for sec in kept)
    import re
    import tomllib

    def keep_pairs(m: re.Match) -> str:  # judged pairs that name a dropped arm go
        pairs = [p for p in tomllib.loads(m.group(0))["pairs"] if set(p) <= set(arms)] or (
            [arms[:2]] if len(arms) > 1 else []
        )
        return "pairs = " + json.dumps(pairs)

    body = re.sub(r"(?m)^pairs = \[.*\]$", keep_pairs, body)
    out = config.parent / f".{config.stem}-arms-{'-'.join(arms)}.toml"
    out.write_text(head + "\n" + body)
    return out


THREADS = "1"  # torch threads per process (OMP_NUM_THREADS): the tiny model only loses with more


def _vector_flags() -> list[str]:
    """The CPU's vector extensions: float kernels (and so trained weights, by a question or two) differ between
    CPUs with and without AVX-512, even where the model name reads alike."""
    try:
        flags = next(
            line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")
        ).split()
    except (OSError, StopIteration):
        return []
    return sorted(f for f in set(flags) if f.startswith(("avx", "amx", "fma")))


def start_policy(config: Path) -> dict:
    """The shipped start policy the config trains (its manifest's digest and held-out score), by the config's model."""
    import tomllib

    from aopcore_testbed.shipped import MANIFEST, WEIGHTS

    model = str(tomllib.loads(config.read_text()).get("trainer", {}).get("model", WEIGHTS.name))
    folder = WEIGHTS.parent / model if (WEIGHTS.parent / model / MANIFEST).exists() else WEIGHTS
    manifest = json.loads((folder / MANIFEST).read_text())
    score = manifest.get("heldout_accuracy") or manifest["heldout_score"]  # the sequence tier scores partial credit
    return {"model": folder.name, "sha256": manifest["sha256"], "heldout_accuracy": score["(all)"]}


def machine(load_at_start: float, config: Path = CONFIG) -> dict:
    """Where and with what the numbers were measured: CPU model, cores, threads, library versions, start policy."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    from aopcore_testbed.shipped import cpu_model

    versions = {}
    for name in (
        "aopcore",
        "torch",
        "transformers",
        "tokenizers",
        "sentence-transformers",
        "numpy",
        "scikit-learn",
        "matplotlib",
    ):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    return {
        "cpu": cpu_model(),
        "cpu_vector_flags": _vector_flags(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "omp_num_threads": THREADS,
        "libraries": versions,
        "start_policy": start_policy(config),
        "load_average_1m_at_start": round(load_at_start, 2),
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
    }


def run_experiment(
    run_dir: Path, name: str, seeds: list[int], iterations: int, overrides: list[str], config: Path = CONFIG
) -> dict[str, float]:
    cmd = [
        sys.executable,
        "-m",
        "aopcore.cli",
        "run",
        str(config),
        "--set",
        f"experiment.seeds={json.dumps(seeds)}",
        "--set",
        f"experiment.iterations={iterations}",
        "--set",
        f'experiment.name="{name}"',
        "--set",
        f'experiment.output_dir="{run_dir}"',
    ] + [a for o in overrides for a in ("--set", o)]
    env = {**os.environ, "OMP_NUM_THREADS": THREADS, "TQDM_DISABLE": "1"}
    t0, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"aopcore run failed with exit status {proc.returncode}")
    return {
        "wall_s": round(time.perf_counter() - t0, 1),
        "finished_at_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpu_s": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 1),
    }


def run_parallel(
    run_dir: Path, name: str, seeds: list[int], iterations: int, overrides: list[str], config: Path, jobs: int
) -> dict[str, float]:
    """Each seed as its own run (``NAME/parts/seed<S>``), ``jobs`` at a time, then one multi-seed root of links.

    A seed's run equals that seed's sub-run of a multi-seed run (docs/concepts.md), so the root reads as one.
    """
    import concurrent.futures

    root = run_dir / name
    parts = root / "parts"
    parts.mkdir(parents=True, exist_ok=True)
    t0, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    # a finished seed (its report written) is kept as it is: rerunning after a failure in one seed reruns only the others
    todo = [s for s in seeds if not (parts / f"seed{s}" / f"seed-{s}" / "stages" / "report.json").exists()]
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(lambda s: run_experiment(parts, f"seed{s}", [s], iterations, overrides, config), todo))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    manifest = json.loads((parts / f"seed{seeds[0]}" / "multiseed.json").read_text())
    manifest["seeds"] = list(seeds)
    manifest["parallel_parts"] = [f"parts/seed{s}" for s in seeds]
    for s in seeds:
        link = root / f"seed-{s}"
        if not link.exists():
            link.symlink_to(Path("parts") / f"seed{s}" / f"seed-{s}")
    (root / "multiseed.json").write_text(json.dumps(manifest, indent=1))
    return {
        "wall_s": round(time.perf_counter() - t0, 1),
        "finished_at_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpu_s": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 1),
        "jobs": jobs,
    }


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
            rows = [
                {
                    "iteration": 0,
                    "accuracy": (acc := _accuracy(run / "sft" / "evaluation.jsonl"))["(all)"],
                    "by_category": {c: v for c, v in acc.items() if c != "(all)"},
                    "trained_on": {},
                }
            ]
            for i in range(1, iterations + 1):
                folder = run / "arms" / arm / f"iter-{i:02d}"
                acc = _accuracy(folder / "evaluation.jsonl")
                trained: dict[str, int] = {}
                if (folder / "steps.jsonl").exists():  # an online arm: what each step actually trained on (kept groups)
                    for line in (folder / "steps.jsonl").read_text().splitlines():
                        b = json.loads(line)
                        for g, kept in zip(b["groups"], b.get("kept") or [True] * len(b["groups"])):
                            if kept:
                                trained[g["category"]] = trained.get(g["category"], 0) + 1
                else:
                    for line in (folder / "prompts.jsonl").read_text().splitlines():
                        cat = json.loads(line)["category"]
                        trained[cat] = trained.get(cat, 0) + 1
                rows.append(
                    {
                        "iteration": i,
                        "accuracy": acc["(all)"],
                        "by_category": {c: v for c, v in acc.items() if c != "(all)"},
                        "trained_on": dict(sorted(trained.items())),
                    }
                )
            table[arm][str(s)] = rows
    return table


def _question_rewards(path: Path) -> dict[str, float]:
    return {(r := json.loads(line))["question_id"]: float(r["reward"]) for line in path.read_text().splitlines()}


def area_under_curve(root: Path, seeds: list[int], iterations: int) -> dict:
    """Mean accuracy over iterations 1..N (sample efficiency) per arm, and paired differences between arms.

    Per seed, each held-out question's reward is averaged over iterations 1..N; the arm's value is the mean of those
    over seeds, with ``aopcore.analysis.aggregate``'s paired two-level bootstrap (seeds, then questions within each seed) and
    its verdict rule (no conclusion below MIN_SEEDS seeds or when the per-seed values do not vary).
    """
    from aopcore.analysis.aggregate import RESAMPLES, verdict
    from aopcore.analysis.stats import two_level_bootstrap_mean

    per_q: dict[str, dict[int, dict[str, float]]] = {}  # arm -> seed -> question -> mean reward over iterations
    for arm in ARMS:
        per_q[arm] = {}
        for s in seeds:
            rewards = [
                _question_rewards(root / f"seed-{s}" / "arms" / arm / f"iter-{i:02d}" / "evaluation.jsonl")
                for i in range(1, iterations + 1)
            ]
            per_q[arm][s] = {
                q: statistics.mean(r[q] for r in rewards) for q in rewards[0] if all(q in r for r in rewards)
            }
    summary = {
        arm: two_level_bootstrap_mean(
            [list(per_q[arm][s].values()) for s in seeds], resamples=RESAMPLES, seed=zlib.crc32(f"auc/{arm}".encode())
        ).as_dict()
        for arm in ARMS
    }
    pairs = []
    for a, b in auc_pairs():
        diffs = {s: [per_q[a][s][q] - per_q[b][s][q] for q in per_q[a][s] if q in per_q[b][s]] for s in seeds}
        diff = two_level_bootstrap_mean(
            list(diffs.values()), resamples=RESAMPLES, seed=zlib.crc32(f"auc/{a}-vs-{b}".encode())
        )
        per_seed = {str(s): round(statistics.mean(d), 6) for s, d in diffs.items()}
        vary = len(set(per_seed.values())) > 1
        pairs.append(
            {
                "arm_a": a,
                "arm_b": b,
                **diff.as_dict(),
                "questions": sum(len(d) for d in diffs.values()),
                "per_seed": per_seed,
                "verdict": verdict(a, b, diff, seeds=diff.n, seeds_vary=vary),
            }
        )
    return {
        "per_seed": {
            arm: {str(s): round(statistics.mean(v.values()), 6) for s, v in per.items()} for arm, per in per_q.items()
        },
        "summary": summary,
        "differences": pairs,
        "method": "each held-out question's reward averaged over iterations 1..N within a seed; mean over questions, "
        "then over seeds; 95% percentile interval of aopcore.analysis.aggregate's two-level bootstrap "
        f"({RESAMPLES} replicates: seeds, then questions within each seed), paired per question for "
        "differences; verdicts by aopcore.analysis.aggregate.verdict",
    }


def auc_pairs() -> list[tuple[str, str]]:
    """Every arm against vanilla, AOP against SOP and against every other curriculum, the oracle against each."""
    out = [(a, "vanilla") for a in ARMS if a != "vanilla"] + [("aop", "sop")]
    out += [("aop", b) for b in ARMS if b not in ("aop", "sop", "vanilla")]
    out += [("oracle", b) for b in ARMS if b not in ("oracle", "vanilla", "aop")]
    return [(a, b) for a, b in dict.fromkeys(out) if a in ARMS and b in ARMS]


def oracle_fractions(auc: dict, agg: dict, seeds: list[int], iterations: int) -> dict:
    """Each curriculum's gain over vanilla as a fraction of the oracle's: mean over iterations 1..N and at the last.

    Interval: 2,000 bootstrap resamples of the seeds (paired: one resample for both gains); the fraction is
    reported only where the oracle's own gain has an interval above zero (otherwise it is no yardstick).
    """
    import random

    if "oracle" not in ARMS or "vanilla" not in ARMS:
        return {}
    last = {
        arm: {
            int(s): v
            for s, v in next(r for r in agg["heldout"][arm] if r["iteration"] == iterations)["per_seed"].items()
        }
        for arm in ARMS
    }
    area = {arm: {int(s): v for s, v in auc["per_seed"][arm].items()} for arm in ARMS}
    rng = random.Random(19)
    out: dict = {}
    for label, per in (("area_under_curve", area), (f"iteration_{iterations}", last)):

        def gain(arm: str, sample: list[int]) -> float:
            return statistics.mean(per[arm][s] - per["vanilla"][s] for s in sample)  # noqa: B023 (called inside the loop body)

        boots = [[rng.choice(seeds) for _ in seeds] for _ in range(2000)]
        oracle = sorted(gain("oracle", b) for b in boots)
        oracle_ci = (oracle[49], oracle[1949])
        rows = {}
        for arm in ARMS:
            if arm in ("vanilla", "oracle"):
                continue
            ratios = sorted(gain(arm, b) / g for b in boots if (g := gain("oracle", b)) > 0)
            point = gain(arm, seeds) / gain("oracle", seeds) if gain("oracle", seeds) > 0 else None
            usable = oracle_ci[0] > 0 and len(ratios) > 1900
            rows[arm] = {
                "gain": round(gain(arm, seeds), 6),
                "fraction_of_oracle": round(point, 3) if point is not None else None,
                "ci_low": round(ratios[int(0.025 * len(ratios))], 3) if usable else None,
                "ci_high": round(ratios[int(0.975 * len(ratios)) - 1], 3) if usable else None,
            }
        out[label] = {
            "oracle_gain": round(gain("oracle", seeds), 6),
            "oracle_gain_ci": [round(x, 6) for x in oracle_ci],
            "arms": rows,
        }
    out["method"] = (
        "gain = arm minus vanilla per seed (held-out accuracy averaged over iterations 1..N, or at the last "
        "iteration), mean over seeds; fraction = that gain / the oracle's; 95% interval from 2,000 paired "
        "bootstrap resamples of the seeds, given only when the oracle's gain interval is above zero"
    )
    return out


def seeds_for_power(sd: float, delta: float, alpha: float = 0.05, power: float = 0.8) -> int | None:
    """Seeds a paired two-sided t-test needs to detect a difference ``delta`` with this power, given the seed-to-seed
    standard deviation ``sd`` of the paired difference (exact, through the noncentral t); None past 1,000."""
    from scipy import stats

    if sd <= 0:
        return 2
    for n in range(2, 1001):
        t = stats.t.ppf(1 - alpha / 2, n - 1)
        shift = delta * n**0.5 / sd
        if stats.nct.sf(t, n - 1, shift) + stats.nct.cdf(-t, n - 1, shift) >= power:
            return n
    return None


def smallest_resolvable(sd: float, n: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest difference ``n`` seeds detect with this power (bisection on :func:`seeds_for_power`'s test)."""
    from scipy import stats

    t = stats.t.ppf(1 - alpha / 2, n - 1)
    lo, hi = 0.0, 10 * sd + 1e-9
    for _ in range(60):
        mid = (lo + hi) / 2
        shift = mid * n**0.5 / sd if sd > 0 else float("inf")
        lo, hi = (lo, mid) if stats.nct.sf(t, n - 1, shift) + stats.nct.cdf(-t, n - 1, shift) >= power else (mid, hi)
    return hi


def power_statement(auc: dict, seeds: list[int], delta: float = 0.03) -> dict:
    """How many seeds this testbed needs to resolve a difference of ``delta``, from the seed variance it shows.

    Per arm against vanilla: the standard deviation over seeds of the paired difference in mean held-out accuracy
    over iterations 1..N (the area measure); pooled over arms as the root mean square. A paired t-test at 5%
    (two-sided) with 80% power then needs the seeds given, and the seeds run here resolve the difference given.
    The seed-level spread already carries the held-out sampling noise of each seed's evaluation.
    """
    if "vanilla" not in ARMS or len(seeds) < 3:
        return {}
    per = {arm: {int(s): v for s, v in auc["per_seed"][arm].items()} for arm in ARMS}
    sds = {arm: statistics.stdev(per[arm][s] - per["vanilla"][s] for s in seeds) for arm in ARMS if arm != "vanilla"}
    pooled = statistics.mean(v**2 for v in sds.values()) ** 0.5
    need = seeds_for_power(pooled, delta)
    here = smallest_resolvable(pooled, len(seeds))
    return {
        "delta": delta,
        "alpha": 0.05,
        "power": 0.8,
        "sd_paired_by_arm": {a: round(v, 4) for a, v in sds.items()},
        "seeds_needed_by_arm": {a: seeds_for_power(v, delta) for a, v in sds.items()},
        "sd_paired_pooled": round(pooled, 4),
        "seeds_needed": need,
        "resolvable_with_these_seeds": round(here, 4),
        "statement": (
            f"The seed-to-seed spread of a curriculum's gain over vanilla here is {pooled:.3f} (standard deviation "
            f"of the paired difference in mean held-out accuracy over iterations 1..N, pooled over "
            f"{len(sds)} arms). At that spread a paired test (5%, two-sided, 80% power) needs {need} seeds to "
            f"resolve a difference of {delta:.2f}; the {len(seeds)} seeds run here resolve {here:.3f}."
        ),
    }


def _shown(path: Path) -> str:
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def plots(
    table: dict, agg: dict, seeds: list[int], iterations: int, out_dir: Path, prefix: str = "testbed"
) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    colors = COLORS
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
    ax.legend(ncol=5, fontsize=7, loc="lower center")
    fig.tight_layout()
    fig.savefig(out_dir / f"{prefix}_accuracy.png", dpi=110)
    plt.close(fig)
    files.append(_shown(out_dir / f"{prefix}_accuracy.png"))

    categories = sorted(next(iter(next(iter(table.values())).values()))[0]["by_category"])
    fig, axes = plt.subplots(2, 4, figsize=(12, 5.6), sharex=True, sharey=True)
    for ax, cat in zip(axes.flat, categories):
        for arm in ARMS:
            ys = [
                statistics.mean(table[arm][str(s)][i]["by_category"][cat] for s in seeds) for i in range(iterations + 1)
            ]
            ax.plot(range(iterations + 1), ys, marker=".", color=colors[arm], label=arm)
        ax.set_title(cat, fontsize=10)
        ax.set_ylim(0, 1)
    axes.flat[-1].axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle("Held-out accuracy per category (mean over seeds)")
    fig.supxlabel("iteration")
    fig.tight_layout()
    fig.savefig(out_dir / f"{prefix}_categories.png", dpi=110)
    plt.close(fig)
    files.append(_shown(out_dir / f"{prefix}_categories.png"))

    fig, axes = plt.subplots(1, len(ARMS), figsize=(2.6 * len(ARMS) + 1, 3.4), sharey=True, squeeze=False)
    axes = axes[0]
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
    fig.savefig(out_dir / f"{prefix}_allocation.png", dpi=110)
    plt.close(fig)
    files.append(_shown(out_dir / f"{prefix}_allocation.png"))

    eq = agg.get("equal_compute") or {}
    if eq.get("curves"):
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for arm in ARMS:
            rows = eq["curves"].get(arm, [])
            ax.plot(
                [r["compute"]["estimate"] for r in rows],
                [r["heldout"]["estimate"] for r in rows],
                marker="o",
                label=arm,
                color=colors[arm],
            )
        ax.set_xscale("symlog", linthresh=1000)
        ax.set_xlabel("total compute, tokens (training + choosing; symlog)")
        ax.set_ylabel("held-out accuracy")
        ax.set_title("Held-out accuracy against total compute (mean over seeds)")
        ax.legend(ncol=3, fontsize=7)
        fig.tight_layout()
        fig.savefig(out_dir / f"{prefix}_compute.png", dpi=110)
        plt.close(fig)
        files.append(_shown(out_dir / f"{prefix}_compute.png"))
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--iterations", type=int, default=None, help="default: the config's [experiment] iterations")
    parser.add_argument("--run-dir", type=Path, default=ROOT / "runs", help="folder that holds the run directory")
    parser.add_argument("--name", default="testbed-compare")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "testbed_compare.json")
    parser.add_argument("--figures", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="passed to aopcore run (a reduced run, e.g. experiment.records_per_iteration=16)",
    )
    parser.add_argument(
        "--config", type=Path, default=CONFIG, help="the comparison's config (e.g. examples/testbed-regime.toml)"
    )
    parser.add_argument(
        "--arms", nargs="+", default=list(ARMS), help=f"a subset of the arms (default: all of {' '.join(ARMS)})"
    )
    parser.add_argument("--prefix", default="testbed", help="figure file names: PREFIX_accuracy.png, ...")
    parser.add_argument(
        "--jobs", type=int, default=1, help="run this many seeds at once, each as its own run (NAME/parts/)"
    )
    parser.add_argument(
        "--rederive",
        action="store_true",
        help="run nothing: recompute the power statement of the committed --out from its per-seed areas",
    )
    args = parser.parse_args()
    if args.rederive:
        stored = json.loads(args.out.read_text())
        ARMS[:] = stored["arms"]
        stored["power"] = power_statement(stored["area_under_curve"], stored["seeds"])
        emit(stored, args.out)
        return
    unknown = [a for a in args.arms if a not in ARMS]
    if unknown:
        raise SystemExit(f"--arms: unknown arm(s) {unknown}; choose from {ARMS}")
    ARMS[:] = [a for a in ARMS if a in args.arms]
    config = args.config.resolve()
    import tomllib

    planned_iterations = int(tomllib.loads(config.read_text())["experiment"]["iterations"])
    args.iterations = args.iterations or planned_iterations
    run_config = arms_config(config, ARMS) if set(ARMS) != set(ARMS_ALL) else config

    from aopcore.analysis.aggregate import aggregate

    root = args.run_dir.resolve() / args.name
    resumed = (root / "multiseed.json").exists()
    load_at_start = os.getloadavg()[0]
    try:
        if args.jobs > 1:
            timing = run_parallel(
                args.run_dir.resolve(), args.name, args.seeds, args.iterations, args.overrides, run_config, args.jobs
            )
        else:
            timing = run_experiment(
                args.run_dir.resolve(), args.name, args.seeds, args.iterations, args.overrides, run_config
            )
    finally:
        if run_config != config:
            run_config.unlink(missing_ok=True)
    table = per_seed_table(root, args.seeds, args.iterations)
    agg = aggregate(root)
    shown_config = _shown(config)
    full = (
        args.seeds == [0, 1, 2, 3, 4]
        and args.iterations == planned_iterations
        and not args.overrides
        and set(ARMS) == set(ARMS_ALL)
    )
    command = (
        f"OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/testbed_compare.py --seeds {' '.join(map(str, args.seeds))} "
        f"--iterations {args.iterations}"
        + "".join(f" --set {o}" for o in args.overrides)
        + (f" --config {shown_config}" if config != CONFIG.resolve() else "")
        + (f" --arms {' '.join(ARMS)}" if set(ARMS) != set(ARMS_ALL) else "")
    )
    auc = area_under_curve(root, args.seeds, args.iterations)
    earlier = json.loads(args.out.read_text()) if resumed and args.out.exists() else {}
    full_run = earlier.get("time_full_run", earlier.get("time")) if earlier.get("command") == command else None
    result = {
        "benchmark": "testbed_compare",
        "complete": full,
        "scope": (
            f"the full comparison of {shown_config}"
            if full
            else f"REDUCED: seeds {args.seeds}, {args.iterations} iterations, arms {ARMS}, overrides {args.overrides} "
            f"(the example runs all {len(ARMS_ALL)} arms, 5 seeds x {planned_iterations} iterations)"
        ),
        "command": command,
        "config": shown_config,
        "seeds": args.seeds,
        "iterations": args.iterations,
        "arms": ARMS,
        "machine": machine(load_at_start, config),
        "time": timing,
        "time_full_run": timing if not resumed else full_run,
        "accuracy": table,
        "area_under_curve": auc,
        "fraction_of_oracle": oracle_fractions(auc, agg, args.seeds, args.iterations),
        "power": power_statement(auc, args.seeds),
        "heldout": agg["heldout"],
        "heldout_differences": agg["heldout_differences"],
        "winrates": agg["winrates"],
        "equal_compute": agg.get("equal_compute"),
        "compute": agg["compute"],
        "conclusions": agg["conclusions"],
        "methods": agg["methods"],
        "figures": plots(table, agg, args.seeds, args.iterations, args.figures, args.prefix),
    }
    emit(result, args.out)


if __name__ == "__main__":
    main()
