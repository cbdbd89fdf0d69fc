"""The positive control: an ``oracle`` curriculum that knows what no real curriculum knows.

``mode = "pass-rate"`` (the default): every iteration it measures the current policy's pass rate on *every* prompt of
``testbed:pool`` with ``samples`` sampled answers each (16 by default: 8,960 answers per iteration, more than any real
curriculum spends, where eva samples 4 answers for a few candidates and learnability guesses from history). Its
plan for the iteration is the prompts with the largest p(1 - p) — the prompts a binary reward can teach most from —
with no category above ``max_share`` of the budget. With ``per_step = true`` (the default) and a trainer in the
per-step channel it goes further: every training step draws from the whole pool by p(1 - p), starting from the
measured pass rates and updating them from the step's own rollouts, so it keeps up with a policy that learns
within the iteration (the measured rates go to ``ctx.workdir`` between the prompts stage and the training stage).
Its measurement goes through ``ctx.generate`` and ``ctx.reward``, so it is booked as choosing compute: at equal
steps it is the reference, at equal compute it pays for its knowledge.

``mode = "gains"``: a static allocation over categories by their *measured* learning gain, by a fixed procedure
(``python -m aopcore_testbed.oracle measure``, which writes ``data/oracle-gains.json``):

1. From the start policy, train one iteration (the comparison's trainer, budget and passes) on a *uniform* mix of
   the categories, and, for each category ``c``, on a *boosted* mix (``c`` weighted ``boost_weight``, the others 1),
   under several seeds: ``1 + len(categories)`` arms of this curriculum with fixed ``weights``.
2. Score every trained policy on ``testbed:test`` — not on the held-out set the comparison reports, so the oracle is
   not fitted to the questions it is judged on. A category's gain is the boosted arm's *overall* test accuracy
   minus the uniform arm's, averaged over seeds: interference with the other categories counts.
3. The weights are ``max(floor, 1 + boost * gain_c / max_c |gain_c|)``: more prompts where extra training paid off
   overall, fewer where it cost.

docs/testbed.md reports what each mode does against vanilla.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from aopcore import CurriculumContext, InputError, Prompt, Provenance
from aopcore.storage.rundir import RunLayout

DATA = Path(__file__).parent / "data"
GAINS = DATA / "oracle-gains.json"


class OracleOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["pass-rate", "gains"] = Field(
        "pass-rate",
        description="pass-rate: the prompts with the largest "
        "p(1 - p) of the current policy, measured on the whole pool every "
        "iteration (and, with per_step, updated from every step's rollouts); "
        "gains: categories weighted by measured learning gain.",
    )
    pool: str = Field("testbed:pool", description="Where the prompts come from (any data source or JSONL file).")
    samples: int = Field(16, ge=2, description="pass-rate: answers sampled per pool prompt to measure its pass rate.")
    max_share: float = Field(0.3, gt=0, le=1, description="pass-rate: at most this share of the plan in one category.")
    per_step: bool = Field(
        True,
        description="pass-rate: choose every training step from the whole pool by p(1 - p) of "
        "the measured pass rates, updated from the rollouts (the per-step channel); false: train on "
        "the iteration's plan.",
    )
    explore: float = Field(
        0.1,
        ge=0,
        description="pass-rate, per step: added to every weight, as a multiple of the "
        "mean weight, so no prompt starves.",
    )
    gains: str | None = Field(
        None,
        description="Measured gains (JSON with a `gains` table); default: the packaged "
        "data/oracle-gains.json written by `python -m aopcore_testbed.oracle measure`.",
    )
    weights: dict[str, float] = Field(
        default_factory=dict,
        description="Fixed category weights instead of measured gains (what the measurement's own arms use).",
    )
    boost: float = Field(2.0, ge=0, description="Weight of the category with the largest gain: 1 + boost.")

    @field_validator("weights")
    @classmethod
    def _non_negative(cls, weights: dict[str, float]) -> dict[str, float]:
        bad = [f"weights.{c} = {w}" for c, w in weights.items() if not w >= 0]
        if bad:
            raise ValueError(f"{bad[0]}: a category weight must be >= 0")
        return weights

    floor: float = Field(0.25, ge=0, description="Smallest weight (a category whose extra training cost accuracy).")


def weights_from_gains(gains: dict[str, float], *, boost: float, floor: float) -> dict[str, float]:
    """Category weights from measured gains: 1 + boost * gain / max |gain|, at least ``floor``."""
    scale = max((abs(g) for g in gains.values()), default=0.0) or 1.0
    return {c: max(floor, 1.0 + boost * g / scale) for c, g in gains.items()}


def allocate(weights: dict[str, float], categories: list[str], budget: int) -> dict[str, int]:
    """``budget`` prompts over ``categories`` in proportion to ``weights`` (largest remainder; missing weight = 1)."""
    w = {c: max(0.0, float(weights.get(c, 1.0))) for c in categories}
    total = sum(w.values()) or 1.0
    exact = {c: budget * v / total for c, v in w.items()}
    counts = {c: int(x) for c, x in exact.items()}
    for c in sorted(categories, key=lambda c: (-(exact[c] - counts[c]), c))[: budget - sum(counts.values())]:
        counts[c] += 1
    return counts


def _rates_path(ctx: CurriculumContext) -> Path:
    from aopcore.storage.rundir import iteration_name

    return Path(ctx.workdir) / f"oracle-pass-rates-{iteration_name(ctx.iteration)}.json"


class OracleCurriculum:
    """Prompts from the pool by measured pass rate, or allocated over categories by measured learning gain (or by
    fixed ``weights``). The per-step pass-rate oracle is :class:`PerStepOracle`, which this class builds for it."""

    def __new__(cls, options: Any) -> OracleCurriculum:
        per_step = options.mode == "pass-rate" and not options.weights and options.per_step
        return super().__new__(PerStepOracle if per_step and cls is OracleCurriculum else cls)

    def __init__(self, options: Any) -> None:
        from aopcore_curricula.options import load_pool

        self.options = options
        self.pool = load_pool(options.pool)
        self.weights: dict[str, float] = {}
        if options.weights:
            self.weights = dict(options.weights)
            self.source = "weights option"
        elif options.mode == "gains":
            path = Path(options.gains) if options.gains else GAINS
            if not path.exists():
                raise InputError(
                    f"oracle: no measured gains at {path} (run `python -m aopcore_testbed.oracle measure`)"
                )
            measured = json.loads(path.read_text())
            self.weights = weights_from_gains(measured["gains"], boost=options.boost, floor=options.floor)
            self.source = str(path.name)

    uses_evaluation = False  # neither mode reads the held-out evaluation

    def _pool(self, ctx: CurriculumContext) -> list[Any]:
        """The pool less its copies of held-out questions (testbed:pool holds none; a user's pool may), counted in the
        iteration's generation log: even the positive control never trains on the evaluation."""
        from aopcore_curricula.heldout import book, heldout_keys, without_copies

        pool, copies = without_copies(self.pool, heldout_keys(ctx))
        book(ctx, copies, candidates=len(pool))
        return pool

    def prompts(self, ctx: CurriculumContext) -> list[Prompt]:
        if self.options.mode == "pass-rate" and not self.options.weights:
            return self._by_pass_rate(ctx)
        return self._by_weights(ctx)

    def _by_pass_rate(self, ctx: CurriculumContext) -> list[Prompt]:
        o = self.options
        if ctx.generate is None or ctx.reward is None:
            raise InputError(
                f"arms.{ctx.arm}: the pass-rate oracle needs the policy (generate) and the reward in its context"
            )
        allowed = set(ctx.categories)
        pool = [q for q in self._pool(ctx) if q.category in allowed]
        texts = [q.text for q in pool for _ in range(o.samples)]
        answers = ctx.generate(texts, sample=True, seed=ctx.seed)
        rewards = ctx.reward.score(texts, answers)
        rng = random.Random(ctx.seed)
        scored = []
        measured: dict[str, list[float]] = {}
        for k, q in enumerate(pool):
            wins = sum(1.0 for r in rewards[k * o.samples : (k + 1) * o.samples] if r >= 0.5)
            measured[q.id] = [wins, float(o.samples)]
            p = wins / o.samples
            scored.append((p * (1 - p), rng.random(), q, p))
        self._keep_measurement(ctx, measured)
        scored.sort(key=lambda t: (-t[0], t[1]))
        cap = max(1, int(o.max_share * ctx.budget))
        per_cat: dict[str, int] = {}
        out: list[Prompt] = []
        for _learn, _, q, p in scored:
            if len(out) == ctx.budget:
                break
            if per_cat.get(q.category, 0) >= cap:
                continue
            per_cat[q.category] = per_cat.get(q.category, 0) + 1
            out.append(
                Prompt(
                    q.id,
                    q.text,
                    q.category,
                    Provenance("oracle", ctx.iteration, "pool", extra={"pass_rate": round(p, 4)}),
                )
            )
        for _, _, q, p in scored:  # the cap left the budget short: fill with the next best, whatever the category
            if len(out) == ctx.budget:
                break
            if all(x.id != q.id for x in out):
                out.append(
                    Prompt(
                        q.id,
                        q.text,
                        q.category,
                        Provenance("oracle", ctx.iteration, "pool", extra={"pass_rate": round(p, 4)}),
                    )
                )
        return out

    def _keep_measurement(self, ctx: CurriculumContext, measured: dict[str, list[float]]) -> None:
        """Nothing to keep: the plan is all this class trains on (:class:`PerStepOracle` keeps it)."""

    def _by_weights(self, ctx: CurriculumContext) -> list[Prompt]:
        counts = allocate(self.weights, list(ctx.categories), ctx.budget)
        used = {p.id for p in ctx.history}
        rng = random.Random(ctx.seed)
        out: list[Prompt] = []
        pool = self._pool(ctx)
        for cat in ctx.categories:
            cands = [q for q in pool if q.category == cat]
            if counts[cat] and not cands:
                raise InputError(f"arms.{ctx.arm}.pool: no prompt of category {cat!r}")
            rng.shuffle(cands)
            cands.sort(key=lambda q: q.id in used)  # unused first; then reuse (RL data is reused across epochs)
            while len(cands) < counts[cat]:
                cands = cands + cands
            chosen, seen = [], set()
            for q in cands:
                if len(chosen) == counts[cat]:
                    break
                if q.id not in seen:
                    seen.add(q.id)
                    chosen.append(q)
            if len(chosen) < counts[cat]:
                raise InputError(
                    f"arms.{ctx.arm}.pool: category {cat!r} has {len(chosen)} prompts, the oracle wants {counts[cat]}"
                )
            out += [
                Prompt(
                    q.id,
                    q.text,
                    q.category,
                    Provenance("oracle", ctx.iteration, "pool", extra={"weight": round(self.weights.get(cat, 1.0), 4)}),
                )
                for q in chosen
            ]
        return out


class PerStepOracle(OracleCurriculum):
    """The pass-rate oracle in the per-step channel: every draw by p(1 - p) over the whole pool, from the rates it
    measured at the iteration's start (``samples`` answers per prompt), updated by every step's rollouts.

    It is learnability sampling (``aopcore_curricula.online``) with what learnability has to guess measured: a
    real curriculum cannot afford thousands of answers per iteration to know every prompt's pass rate.
    """

    def _keep_measurement(self, ctx: CurriculumContext, measured: dict[str, list[float]]) -> None:
        from aopcore.storage.store import atomic_write_json

        atomic_write_json(_rates_path(ctx), {"samples": self.options.samples, "rates": measured})

    def selector(self, ctx: CurriculumContext, planned: Any) -> Any:
        from aopcore import RuntimeFailure
        from aopcore_curricula.online import LearnabilitySelector, PassRates

        path = _rates_path(ctx)
        if not path.exists():
            raise RuntimeFailure(
                f"arms.{ctx.arm}: the oracle's measured pass rates {path} are missing (written by the "
                f"prompts stage of iteration {ctx.iteration}); delete that iteration's prompts.jsonl "
                f"and rerun to measure again"
            )
        measured = json.loads(path.read_text())["rates"]
        allowed = set(ctx.categories)
        pool = [q for q in self.pool if q.category in allowed and q.id in measured]
        rates = PassRates(threshold=0.5, strength=1.0)
        for q in pool:
            rates.add_counts(q.id, q.category, *measured[q.id])
        candidates = [Prompt(q.id, q.text, q.category, Provenance("oracle", ctx.iteration, "pool")) for q in pool]
        return LearnabilitySelector(
            candidates, rates, seed=ctx.seed + 1, explore=self.options.explore, name="oracle", iteration=ctx.iteration
        )


# ---------------------------------------------------------------------------- the measurement


def _arms_toml(categories: list[str], boost_weight: float) -> str:
    lines = [
        "[arms.uniform]",
        'curriculum = "oracle"',
        "weights = { " + ", ".join(f"{c} = 1.0" for c in categories) + " }",
        "",
    ]
    for c in categories:
        w = ", ".join(f"{k} = {boost_weight if k == c else 1.0}" for k in categories)
        lines += [f"[arms.boost-{c}]", 'curriculum = "oracle"', f"weights = {{ {w} }}", ""]
    return "\n".join(lines)


def measurement_config(
    base: Path, out_dir: Path, *, seeds: list[int], iterations: int, boost_weight: float, extra_sections: str = ""
) -> str:
    """The comparison's config (``base``) with its arms replaced by the measurement's, scored on testbed:test."""
    from aopcore_testbed.skills import CATEGORIES

    text = base.read_text()
    head = text.split("\n[arms.", 1)[0]
    head = head.replace('heldout = "testbed:heldout"', 'heldout = "testbed:test"')
    head = head.replace('test_prompts = "testbed:test"', 'test_prompts = "testbed:heldout"\ntest_size = 7')
    return (
        head
        + "\n"
        + extra_sections
        + "\n"
        + _arms_toml(list(CATEGORIES), boost_weight)
        + "\n[evaluation]\npairs = []\n"
    )


def summarise(root: Path, categories: list[str], seeds: list[int], iterations: int) -> dict[str, Any]:
    """Per category: the boosted arm's overall test accuracy minus the uniform arm's at the last iteration, per seed."""

    def acc(arm: str, s: int) -> float:
        path = RunLayout(RunLayout.of(root).seed_dir(s)).evaluation(arm, iterations)
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        return sum(float(r["reward"]) for r in rows) / len(rows)

    uniform = {s: acc("uniform", s) for s in seeds}
    per_seed = {c: {str(s): round(acc(f"boost-{c}", s) - uniform[s], 6) for s in seeds} for c in categories}
    return {
        "gains": {c: round(statistics.mean(v.values()), 6) for c, v in per_seed.items()},
        "per_seed": per_seed,
        "uniform_accuracy": {str(s): round(v, 6) for s, v in uniform.items()},
    }


def measure(argv: list[str] | None = None) -> dict[str, Any]:
    import os
    import subprocess

    from aopcore_testbed.skills import CATEGORIES

    root_dir = Path(__file__).resolve().parents[2]
    p = argparse.ArgumentParser(
        prog="python -m aopcore_testbed.oracle measure", description="Measure the oracle's gains"
    )
    p.add_argument("--config", type=Path, default=root_dir / "examples" / "testbed.toml")
    p.add_argument("--seeds", type=int, nargs="+", default=[100, 101, 102])
    p.add_argument("--iterations", type=int, default=1)
    p.add_argument("--boost-weight", type=float, default=3.0)
    p.add_argument("--run-dir", type=Path, default=root_dir / "runs")
    p.add_argument("--name", default="oracle-gains")
    p.add_argument("--out", type=Path, default=GAINS)
    p.add_argument("--set", dest="overrides", action="append", default=[])
    args = p.parse_args(argv)
    cfg_text = measurement_config(
        args.config, args.run_dir, seeds=args.seeds, iterations=args.iterations, boost_weight=args.boost_weight
    )
    cfg = args.config.parent / f".oracle-measure-{args.name}.toml"  # beside the base: its relative paths hold
    cfg.write_text(cfg_text)
    try:
        cmd = [
            sys.executable,
            "-m",
            "aopcore.cli",
            "run",
            str(cfg),
            "--set",
            f"experiment.seeds={json.dumps(args.seeds)}",
            "--set",
            f"experiment.iterations={args.iterations}",
            "--set",
            f'experiment.name="{args.name}"',
            "--set",
            f'experiment.output_dir="{args.run_dir.resolve()}"',
        ] + [a for o in args.overrides for a in ("--set", o)]
        proc = subprocess.run(
            cmd, env={**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}, capture_output=True, text=True
        )
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr[-4000:])
            raise SystemExit(proc.returncode)
    finally:
        cfg.unlink(missing_ok=True)
    result = summarise(args.run_dir.resolve() / args.name, list(CATEGORIES), args.seeds, args.iterations)
    try:
        from aopcore_testbed.model import shipped_key

        start = shipped_key()
    except Exception:  # noqa: BLE001  (older testbed without shipped weights)
        start = None
    result.update(
        {
            "procedure": __doc__.split("\n\n")[1].strip().replace("\n", " "),
            "seeds": args.seeds,
            "iterations": args.iterations,
            "boost_weight": args.boost_weight,
            "start_policy": start,
            "scored_on": "testbed:test",
            "config": str(args.config.name),
            "overrides": args.overrides,
        }
    )
    args.out.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    return result


if __name__ == "__main__":
    if sys.argv[1:2] != ["measure"]:
        raise SystemExit("usage: python -m aopcore_testbed.oracle measure [--seeds ...] [--iterations N]")
    print(json.dumps(measure(sys.argv[2:])["gains"], indent=1))
