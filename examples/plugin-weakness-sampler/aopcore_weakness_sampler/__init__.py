"""A curriculum that draws prompts from a pool, weighting each category by how badly the policy does there.

A third-party plugin in one file: an options model, a class with ``prompts(ctx)``,
and a ``register_curricula`` hook. No feedback LLM, no GPU.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from aopcore import CurriculumContext, InputError, Prompt, Provenance, hookimpl
from aopcore.options import InputFile, PreflightContext
from aopcore.records import load_questions


class WeaknessSamplerOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pool: InputFile = Field(
        str(Path(__file__).with_name("pool.jsonl")),
        description="JSONL of candidate prompts (id, text, category); relative to the config file.",
    )
    temperature: float = Field(0.5, gt=0, description="Lower values focus harder on the weakest categories.")

    def preflight(self, ctx: PreflightContext) -> list[str]:
        """Checked by `aopcore validate` before anything loads: the pool must last the whole run."""
        pool = load_questions(self.pool)
        size = sum(1 for q in pool if q.category in ctx.categories) if ctx.categories else len(pool)
        if size < ctx.total_records:
            return [
                f"pool: holds {size} prompts in the experiment's categories; {ctx.iterations} iterations x "
                f"{ctx.records_per_iteration} records_per_iteration need {ctx.total_records}"
            ]
        return []


class WeaknessSampler:
    """Samples pool prompts by softmax(-mean reward / temperature) over categories, never repeating one."""

    Options = WeaknessSamplerOptions

    def __init__(self, options: WeaknessSamplerOptions) -> None:
        self.options = options
        self.pool = load_questions(options.pool)

    def prompts(self, ctx: CurriculumContext) -> list[Prompt]:
        used = {p.id for p in ctx.history}
        allowed = set(ctx.categories)
        free = [q for q in self.pool if q.id not in used and q.category in allowed]
        if len(free) < ctx.budget:
            # the user fixes this in the config (a bigger pool, a smaller budget): InputError, exit status 2
            raise InputError(
                f"arms.{ctx.arm}.pool: {self.options.pool} has {len(free)} unused prompts in the experiment's "
                f"categories; iteration {ctx.iteration} needs {ctx.budget}"
            )
        rewards: dict[str, list[float]] = {}
        for rec in ctx.evaluation:
            rewards.setdefault(rec.category, []).append(rec.reward)
        mean = {c: sum(v) / len(v) for c, v in rewards.items()}
        floor = min(mean.values(), default=0.0)
        # a category without held-out questions counts as the weakest (weight 1)
        weight = {c: math.exp(max(-700.0, -(mean.get(c, floor) - floor) / self.options.temperature)) for c in allowed}
        rng = random.Random(ctx.seed)  # every draw from ctx.seed: a resumed run picks the same prompts
        chosen: list[Prompt] = []
        while len(chosen) < ctx.budget:
            q = free.pop(rng.choices(range(len(free)), [weight[q.category] for q in free])[0])
            chosen.append(
                Prompt(
                    q.id,
                    q.text,
                    q.category,
                    Provenance(
                        "weakness-sampler",
                        ctx.iteration,
                        source="pool",
                        extra={"category_mean_reward": round(mean.get(q.category, floor), 6)},
                    ),
                )
            )  # the plugin's own data
        return chosen


@hookimpl
def register_curricula(register):
    register("weakness-sampler", WeaknessSampler)
