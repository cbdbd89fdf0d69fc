"""Numbers across the seeds of a multi-seed run, read only from the run directories (so they can be rebuilt any time).

Per arm and iteration: held-out reward (mean over held-out questions, one value per seed) with a Student-t 95%
interval across seeds, and the compute spent to get there (cumulative training episodes; prompt-selection cost
from the stage ledger). Per pair: the held-out reward difference (paired: the same question under both arms within
a seed) and pooled win rates, both with a two-level bootstrap (seeds, then questions within seeds), so
question-sampling noise counts as well as seed noise. Then one plain sentence per pair, which draws no conclusion
from fewer than :data:`MIN_SEEDS` seeds or from seeds that do not vary (a zero-width interval proves nothing).
Everything lands in ``aggregate.json`` (see :func:`aggregate`):

- ``heldout[arm]``: per iteration (0 = SFT) ``estimate``, ``ci_low``, ``ci_high``, ``n`` (seeds), ``per_seed``;
  ``heldout_by_category[arm][iteration][category]``: the same per category;
- ``heldout_differences``: per pair (``arm_a`` minus ``arm_b``) and iteration, with ``per_seed`` differences,
  ``questions`` (paired questions, all seeds) and the ``verdict``;
- ``winrates``: per pair and iteration, pooled counts (``wins_a``, ``wins_b``, ``ties``, ``dropped``), the intervals
  ``a_win_rate``, ``b_win_rate``, ``tie_rate`` and ``difference`` (a wins minus b wins, as a fraction), ``per_seed``,
  ``verdict``;
- ``compute[arm]``: per iteration, cumulative ``episodes`` and ``choosing`` / ``train`` ledger sums (``COMPUTE_KEYS``:
  wall time, tokens, feedback calls, policy samples, reward calls, embedder calls, ...);
- ``conclusions``: per pair, the ``heldout``, ``winrate`` and ``equal_compute`` sentences; ``judge_agreement``; ``methods``;
- ``equal_compute``: held-out reward against total compute (training plus choosing, in tokens) per arm, and every pair
  compared at the largest compute both reach (:mod:`aopcore.analysis.aggregate_compute`).

Intervals are ``null`` where there is too little data (one seed for a t-interval).
"""

from __future__ import annotations

import itertools
import json
import zlib
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aopcore.analysis.agreement import agreement_sentence, human_judge_labels, judge_agreement  # noqa: F401 - published here
from aopcore.analysis.report import LEDGER_KEYS, category_rewards, ledger_group
from aopcore.analysis.stats import (
    Interval,
    clustered_bootstrap_counts,
    t_interval,
    two_level_bootstrap_mean,
)
from aopcore.analysis.verdicts import MIN_SEEDS, _seeds, _varies, verdict  # noqa: F401 - verdict and MIN_SEEDS are part of this module's API
from aopcore.records import iter_jsonl
from aopcore.storage.rundir import TRAIN_RECORD, RunLayout, pair_name, stage_iteration
from aopcore.storage.store import RunStore

RESAMPLES = 2000
# the ledger keys the compute table sums: the report's, plus what a curriculum spends through its context (booked by
# the experiment, aopcore.ledger.counted_context): policy samples, reward calls, embedder calls
COMPUTE_KEYS = (
    *LEDGER_KEYS,
    "policy_samples",
    "reward_calls",
    "embedder_calls",
    "dropped_rollouts",
    "dropped_tokens",
    "predicted_skips",
)  # per-step filtering (aopcore.steps)
METHODS = {
    "heldout": "mean held-out reward over the held-out questions, one value per seed; 95% Student-t interval across seeds",
    "heldout_difference": "difference of the two arms' reward on the same held-out question within each seed, averaged "
    f"per seed, then across seeds; 95% percentile interval of a paired two-level bootstrap ({RESAMPLES} "
    "replicates: resample seeds, then questions within each seed), seeded, so reruns agree",
    "winrate": f"verdicts pooled over seeds (dropped verdicts excluded); 95% percentile interval of a two-level bootstrap "
    f"({RESAMPLES} replicates: resample seeds, then test prompts within each seed), seeded, so reruns agree",
    "verdict": f"a difference is called only with at least {MIN_SEEDS} seeds whose per-seed values differ and an interval "
    "that excludes zero; otherwise 'no conclusion' (with the reason) or 'no detectable difference'",
    "compute": "cumulative per arm up to the iteration, mean across seeds: training episodes (train.json) and the stage "
    "ledger split into choosing (stages of kind evaluate and prompts) and train; choosing includes every policy "
    "sample, reward call, embedder call and feedback call a curriculum makes through its context (booked by the "
    "experiment) and the reward calls of the evaluations it reads",
    "equal_compute": "arms compared at equal total compute (training plus choosing, in tokens; aopcore.analysis.aggregate_compute): "
    "each question's reward interpolated in cumulative compute per seed, then as for held-out differences",
    "judge_agreement": "LLM judge verdict vs the human majority on the same items (ties included as a third label); "
    "agreement and Cohen's kappa, pooled over seeds",
}


def seed_dirs(root: Path) -> dict[int, Path]:
    """Seed -> sub-run directory for every ``seed-<s>/`` that holds a run (has its config.json)."""
    return RunLayout.of(root).seed_runs()


def is_multiseed_root(path: Path) -> bool:
    return RunLayout.of(path).is_multiseed()


def _arm_order(root: Path, runs: dict[int, Path]) -> list[str]:
    manifest = RunLayout.of(root).manifest
    if manifest.exists():
        arms = json.loads(manifest.read_text()).get("arms")
        if arms:
            return list(arms)
    return sorted({arm for run in runs.values() for arm in RunLayout.of(run).arms()})


# ---- one seed --------------------------------------------------------------------------------------------------
def _episodes(run: Path, arm: str) -> dict[int, float]:
    """Iteration -> cumulative training episodes of this arm (a reused twin counts: the budget was spent on it)."""
    out, total = {}, 0.0
    layout = RunLayout.of(run)
    for i in layout.iterations_with(arm, TRAIN_RECORD):
        total += float(json.loads(layout.train_record(arm, i).read_text()).get("episodes", 0))
        out[i] = total
    return out


def _ledger(run: Path, arm: str) -> dict[int, dict[str, dict[str, float]]]:
    """Iteration -> {"choosing"|"train"|...: usage} of this arm's stages, cumulative up to the iteration."""
    per_iter: dict[int, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(float)))
    for rec in RunStore(run).stage_records():
        i = stage_iteration(str(rec.get("stage", "")))
        if rec.get("arm") != arm or i is None:
            continue
        group = ledger_group(rec)  # the report's booking: an evaluation no curriculum reads is not choosing cost
        for key in COMPUTE_KEYS:
            per_iter[i][group][key] += float(rec.get(key, 0.0) or 0.0)
    out: dict[int, dict[str, dict[str, float]]] = {}
    running: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for i in sorted(per_iter):
        for group, usage in per_iter[i].items():
            for key, value in usage.items():
                running[group][key] += value
        out[i] = {g: dict(u) for g, u in running.items()}
    return out


def _verdict_counts(run: Path, a: str, b: str) -> dict[int, list[int]]:
    """Iteration -> [a wins, b wins, ties, dropped] for the pair, whichever order it was judged in."""
    out: dict[int, list[int]] = {}
    layout = RunLayout.of(run)
    for pair, flip in ((pair_name(a, b), False), (pair_name(b, a), True)):
        for i, path in layout.judged_iterations(pair).items():
            c = Counter(rec["choice"] for _, rec in iter_jsonl(path))
            wins_a, wins_b = (c["B"], c["A"]) if flip else (c["A"], c["B"])
            out.setdefault(i, [wins_a, wins_b, c["C"], c[None]])
    return out


def _question_rewards(run: Path, arm: str, iteration: int) -> dict[str, float]:
    """Held-out question id -> reward of this arm's policy at this iteration (for pairing two arms per question)."""
    path = RunLayout.of(run).evaluation(arm, iteration)  # iteration >= 1: the arm's own policy
    return {str(rec["question_id"]): float(rec["reward"]) for _, rec in iter_jsonl(path)} if path.exists() else {}


# ---- sentences ---------------------------------------------------------------------------------------------------
def reward_sentence(
    a: str, b: str, iteration: int, mean_a: float, mean_b: float, diff: Interval, seeds_vary: bool = True
) -> str:
    ci = f"95% CI {diff.low:+.3f} to {diff.high:+.3f}" if diff.defined else "no interval"
    return (
        f"{a} vs {b}, iteration {iteration} ({_seeds(diff.n)}): held-out reward "
        f"{mean_a:.3f} vs {mean_b:.3f}, difference {diff.estimate:+.3f} ({ci}): "
        f"{verdict(a, b, diff, seeds=diff.n, seeds_vary=seeds_vary)}."
    )


def winrate_sentence(
    a: str, b: str, iteration: int, rates: dict[str, Interval], seeds: int, seeds_vary: bool = True
) -> str:
    diff = rates["difference"]
    ci = f"95% CI {100 * diff.low:+.1f} to {100 * diff.high:+.1f}" if diff.defined else "no interval"
    return (
        f"{a} vs {b}, iteration {iteration}: {a} wins {100 * rates['a_win_rate'].estimate:.1f}%, {b} wins "
        f"{100 * rates['b_win_rate'].estimate:.1f}%, ties {100 * rates['tie_rate'].estimate:.1f}% of {diff.n} judged test "
        f"prompts pooled over {seeds} seed{'s' if seeds != 1 else ''}; win-rate difference {100 * diff.estimate:+.1f} "
        f"points ({ci}): {verdict(a, b, diff, seeds=seeds, seeds_vary=seeds_vary, higher='wins more often')}."
    )


# ---- across seeds ------------------------------------------------------------------------------------------------
def _rate(k: int) -> Any:
    return lambda t: t[k] / sum(t) if sum(t) else float("nan")


WIN_STATS = {
    "a_win_rate": _rate(0),
    "b_win_rate": _rate(1),
    "tie_rate": _rate(2),
    "difference": lambda t: (t[0] - t[1]) / sum(t) if sum(t) else float("nan"),
}


def _summary(values: Sequence[float]) -> dict[str, Any]:
    return t_interval(list(values)).as_dict()


def aggregate(root: Path, *, resamples: int = RESAMPLES) -> dict[str, Any]:
    """Everything the aggregate report shows, as plain JSON-ready data."""
    root = Path(root)
    runs = seed_dirs(root)
    arms = _arm_order(root, runs)
    manifest = json.loads((root / "multiseed.json").read_text()) if (root / "multiseed.json").exists() else {}
    rewards = {s: category_rewards(run) for s, run in runs.items()}
    episodes = {s: {arm: _episodes(run, arm) for arm in arms} for s, run in runs.items()}
    ledgers = {s: {arm: _ledger(run, arm) for arm in arms} for s, run in runs.items()}
    iterations = sorted({i for r in rewards.values() for per in r.values() for i in per})

    def reward(s: int, arm: str, i: int, cat: str = "(all)") -> float | None:
        return rewards[s].get(arm, {}).get(i, {}).get(cat)

    heldout: dict[str, list[dict[str, Any]]] = {}
    categories: dict[str, dict[str, dict[str, Any]]] = {}
    compute: dict[str, list[dict[str, Any]]] = {}
    for arm in arms:
        heldout[arm], compute[arm], categories[arm] = [], [], {}
        for i in iterations:
            per_seed = {s: v for s in runs if (v := reward(s, arm, i)) is not None}
            if not per_seed:
                continue
            heldout[arm].append(
                {
                    "iteration": i,
                    **_summary(list(per_seed.values())),
                    "per_seed": {str(s): round(v, 6) for s, v in per_seed.items()},
                }
            )
            cats = sorted({c for s in per_seed for c in rewards[s][arm][i] if c != "(all)"})
            categories[arm][str(i)] = {
                c: _summary([v for s in per_seed if (v := reward(s, arm, i, c)) is not None]) for c in cats
            }
            seeds_i = list(per_seed)
            row: dict[str, Any] = {
                "iteration": i,
                "n_seeds": len(seeds_i),
                "episodes": _summary([episodes[s][arm].get(i, 0.0) for s in seeds_i]),
            }
            for group in ("choosing", "train"):
                row[group] = {
                    key: _summary([ledgers[s][arm].get(i, {}).get(group, {}).get(key, 0.0) for s in seeds_i])[
                        "estimate"
                    ]
                    for key in COMPUTE_KEYS
                }
            compute[arm].append(row)

    differences, winrates, conclusions = [], [], []
    for a, b in itertools.combinations(arms, 2):
        last_reward = None
        for i in iterations:
            if i == 0:
                continue  # both arms start from the same SFT policy
            per_question = {}  # seed -> reward differences on the questions both arms answered (paired)
            for s, run in runs.items():
                qa, qb = _question_rewards(run, a, i), _question_rewards(run, b, i)
                if shared := [q for q in qa if q in qb]:
                    per_question[s] = [qa[q] - qb[q] for q in shared]
            paired = {
                s: (ra, rb)
                for s in per_question
                if (ra := reward(s, a, i)) is not None and (rb := reward(s, b, i)) is not None
            }
            if not paired:
                continue
            diff = two_level_bootstrap_mean(
                [per_question[s] for s in paired],
                resamples=resamples,
                seed=zlib.crc32(f"{a}-vs-{b}/heldout/{i}".encode()),
            )
            per_seed = {s: sum(per_question[s]) / len(per_question[s]) for s in paired}
            vary = _varies(list(per_seed.values()))
            mean_a, mean_b = (round(sum(p[k] for p in paired.values()) / len(paired), 6) for k in (0, 1))
            differences.append(
                {
                    "arm_a": a,
                    "arm_b": b,
                    "iteration": i,
                    **diff.as_dict(),
                    "questions": sum(len(per_question[s]) for s in paired),
                    **{"mean_a": mean_a, "mean_b": mean_b},
                    "per_seed": {str(s): round(d, 6) for s, d in per_seed.items()},
                    "verdict": verdict(a, b, diff, seeds=diff.n, seeds_vary=vary),
                }
            )
            last_reward = (i, mean_a, mean_b, diff, vary)  # reward_sentence's arguments after the arms
        counts = {s: _verdict_counts(run, a, b) for s, run in runs.items()}
        last_win = None
        for i in sorted({i for c in counts.values() for i in c}):
            tables = {s: c[i] for s, c in counts.items() if i in c}
            rates = clustered_bootstrap_counts(
                [t[:3] for t in tables.values()],
                WIN_STATS,
                resamples=resamples,
                seed=zlib.crc32(f"{a}-vs-{b}/{i}".encode()),
            )
            vary = _varies([WIN_STATS["difference"](t[:3]) for t in tables.values() if sum(t[:3])])
            winrates.append(
                {
                    "arm_a": a,
                    "arm_b": b,
                    "iteration": i,
                    "n_seeds": len(tables),
                    "wins_a": sum(t[0] for t in tables.values()),
                    "wins_b": sum(t[1] for t in tables.values()),
                    "ties": sum(t[2] for t in tables.values()),
                    "dropped": sum(t[3] for t in tables.values()),
                    **{name: r.as_dict() for name, r in rates.items()},
                    "per_seed": {str(s): t for s, t in tables.items()},
                    "verdict": verdict(
                        a, b, rates["difference"], seeds=len(tables), seeds_vary=vary, higher="wins more often"
                    ),
                }
            )
            last_win = (i, rates, len(tables), vary)
        held = reward_sentence(a, b, *last_reward) if last_reward else None
        won = winrate_sentence(a, b, *last_win) if last_win and last_win[1]["difference"].n else None
        if held or won:
            conclusions.append({"arm_a": a, "arm_b": b, "heldout": held, "winrate": won})

    labels = {s: human_judge_labels(run) for s, run in runs.items()}
    agreement = judge_agreement([row for rows in labels.values() for row in rows])
    if agreement:
        agreement["per_seed"] = {str(s): judge_agreement(rows) for s, rows in labels.items() if rows}

    from aopcore.analysis.aggregate_compute import equal_compute

    at_compute = equal_compute(runs, arms, resamples=resamples)
    for c in conclusions:
        c["equal_compute"] = next(
            (d["sentence"] for d in at_compute["differences"] if (d["arm_a"], d["arm_b"]) == (c["arm_a"], c["arm_b"])),
            None,
        )

    expected = manifest.get("seeds") or list(runs)
    return {
        "run": root.name,
        "seeds": expected,
        "seeds_found": list(runs),
        "seeds_finished": [s for s, run in runs.items() if (run / "stages" / "report.json").exists()],
        "arms": arms,
        "iterations": iterations,
        "methods": METHODS,
        "bootstrap_resamples": resamples,
        "heldout": heldout,
        "heldout_by_category": categories,
        "compute": compute,
        "heldout_differences": differences,
        "winrates": winrates,
        "conclusions": conclusions,
        "judge_agreement": agreement,
        "equal_compute": at_compute,
    }
