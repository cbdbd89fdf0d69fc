"""Arms compared at equal *total* compute: training plus choosing, in one unit.

The compute unit is one **token**, read or written by a model working for the arm: every token the policy samples
(training rollouts, including those a filter then drops; the evaluations a curriculum reads to choose; samples a
curriculum draws through ``ctx.generate``, e.g. eva's), every token a feedback LLM writes (all booked as
``tokens_generated``), and every prompt token sent to a feedback LLM (``prompt_tokens``), weighted by
``prompt_weight`` (1 by default: a token read costs what a token written does, which overcounts prefill and
undercounts a feedback model larger than the policy; the weight is there to change that). Evaluations no
curriculum reads (the report's measurement) and judging are not part of any arm's method and are left out.

Per seed, an arm's curve is (cumulative compute, held-out reward) at iterations 0..N (iteration 0: the shared start
policy, compute 0). Two arms are compared at the largest compute both reach in every seed: each held-out question's
reward is interpolated linearly in compute between the two iterations around that level, per seed; the paired
differences go through the same two-level bootstrap and verdict as the equal-step comparison.
"""

from __future__ import annotations

import itertools
import json
import zlib
from bisect import bisect_left
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aopcore.analysis.report import ledger_group
from aopcore.analysis.stats import two_level_bootstrap_mean
from aopcore.records import iter_jsonl
from aopcore.storage.rundir import RunLayout, stage_iteration
from aopcore.storage.store import RunStore

UNIT = (
    "tokens: policy tokens of training rollouts (dropped ones included), of the evaluations a curriculum reads "
    "and of the samples it draws; feedback-LLM reply tokens; feedback-LLM prompt tokens x prompt_weight"
)


def _stage_compute(rec: dict[str, Any], prompt_weight: float) -> float:
    """A stage's compute units, if it is training or choosing (the report's booking, aopcore.analysis.report.ledger_group)."""
    if ledger_group(rec) not in ("train", "choosing"):
        return 0.0
    return float(rec.get("tokens_generated", 0.0) or 0.0) + prompt_weight * float(rec.get("prompt_tokens", 0.0) or 0.0)


def compute_curve(run: Path, arm: str, *, prompt_weight: float = 1.0) -> dict[int, float]:
    """Iteration -> cumulative compute units of ``arm`` in one seed's run (iteration 0 is 0)."""
    per_iter: dict[int, float] = {}
    for rec in RunStore(run).stage_records():
        i = stage_iteration(str(rec.get("stage", "")))
        if rec.get("arm") != arm or i is None:
            continue
        per_iter[i] = per_iter.get(i, 0.0) + _stage_compute(rec, prompt_weight)
    out, total = {0: 0.0}, 0.0
    for i in sorted(per_iter):
        total += per_iter[i]
        out[i] = total
    return out


def _question_rewards(run: Path, arm: str, i: int) -> dict[str, float]:
    path = RunLayout.of(run).evaluation(arm, i)
    return {str(r["question_id"]): float(r["reward"]) for _, r in iter_jsonl(path)} if path.exists() else {}


def _at(curve: dict[int, float], level: float) -> tuple[int, int, float]:
    """The iterations around ``level`` on a cumulative curve and the interpolation weight of the later one."""
    its = sorted(curve)
    xs = [curve[i] for i in its]
    k = bisect_left(xs, level)
    if k == 0:
        return its[0], its[0], 0.0
    if k >= len(its):
        return its[-1], its[-1], 0.0
    lo, hi = its[k - 1], its[k]
    span = xs[k] - xs[k - 1]
    return lo, hi, (level - xs[k - 1]) / span if span > 0 else 1.0


def interpolated_rewards(run: Path, arm: str, curve: dict[int, float], level: float) -> dict[str, float]:
    lo, hi, t = _at(curve, level)
    a, b = _question_rewards(run, arm, lo), _question_rewards(run, arm, hi)
    return {q: (1 - t) * a[q] + t * b[q] for q in a if q in b}


def equal_compute(
    runs: dict[int, Path], arms: Sequence[str], *, resamples: int, prompt_weight: float = 1.0
) -> dict[str, Any]:
    """Curves of held-out reward against compute per arm, and every pair compared at equal total compute."""
    from aopcore.analysis.stats import t_interval
    from aopcore.analysis.verdicts import _varies, verdict

    curves = {s: {arm: compute_curve(run, arm, prompt_weight=prompt_weight) for arm in arms} for s, run in runs.items()}
    out_curves: dict[str, list[dict[str, Any]]] = {}
    for arm in arms:
        rows = []
        for i in sorted({i for s in runs for i in curves[s][arm]}):
            seeds = [s for s in runs if i in curves[s][arm]]
            rewards = [sum(r.values()) / len(r) for s in seeds if (r := _question_rewards(runs[s], arm, i))]
            if not rewards:
                continue
            rows.append(
                {
                    "iteration": i,
                    "compute": t_interval([curves[s][arm][i] for s in seeds]).as_dict(),
                    "heldout": t_interval(rewards).as_dict(),
                }
            )
        out_curves[arm] = rows
    pairs, sentences = [], {}
    for a, b in itertools.combinations(arms, 2):
        seeds = [s for s in runs if len(curves[s][a]) > 1 and len(curves[s][b]) > 1]
        if not seeds:
            continue
        level = min(min(max(curves[s][a].values()), max(curves[s][b].values())) for s in seeds)
        diffs, means_a, means_b = {}, [], []
        for s in seeds:
            ra = interpolated_rewards(runs[s], a, curves[s][a], level)
            rb = interpolated_rewards(runs[s], b, curves[s][b], level)
            shared = [q for q in ra if q in rb]
            if shared:
                diffs[s] = [ra[q] - rb[q] for q in shared]
                means_a.append(sum(ra[q] for q in shared) / len(shared))
                means_b.append(sum(rb[q] for q in shared) / len(shared))
        if not diffs:
            continue
        diff = two_level_bootstrap_mean(
            list(diffs.values()), resamples=resamples, seed=zlib.crc32(f"{a}-vs-{b}/equal-compute".encode())
        )
        per_seed = {str(s): round(sum(d) / len(d), 6) for s, d in diffs.items()}
        vary = _varies(list(per_seed.values()))
        v = verdict(a, b, diff, seeds=diff.n, seeds_vary=vary)
        ma, mb = sum(means_a) / len(means_a), sum(means_b) / len(means_b)
        ci = f"95% CI {diff.low:+.3f} to {diff.high:+.3f}" if diff.defined else "no interval"
        sentence = (
            f"{a} vs {b} at equal compute ({level:,.0f} tokens, {len(diffs)} seeds): held-out reward "
            f"{ma:.3f} vs {mb:.3f}, difference {diff.estimate:+.3f} ({ci}): {v}."
        )
        pairs.append(
            {
                "arm_a": a,
                "arm_b": b,
                "compute": round(level, 3),
                **diff.as_dict(),
                "mean_a": round(ma, 6),
                "mean_b": round(mb, 6),
                "per_seed": per_seed,
                "verdict": v,
                "sentence": sentence,
            }
        )
        sentences[(a, b)] = sentence
    return {
        "unit": UNIT,
        "prompt_weight": prompt_weight,
        "curves": out_curves,
        "differences": pairs,
        "method": "per seed, each held-out question's reward interpolated linearly in cumulative compute between "
        "the iterations around the level both arms reach in every seed (the smaller of their final "
        "compute); paired differences, two-level bootstrap and verdict as for equal steps",
    }


def read_compute(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text()).get("equal_compute", {})
