"""A curriculum that draws prompts from a pool, weighting each category by how badly the policy does there.

A third-party plugin in one file: an options model, a class with ``prompts(ctx)``,
and a ``register_curricula`` hook. No feedback LLM, no GPU.
"""
from __future__ import annotations

import random
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from aopcore import CurriculumContext, InputError, Prompt, Provenance, hookimpl
from aopcore.records import load_questions


class WeaknessSamplerOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pool: str = Field(str(Path(__file__).with_name("pool.jsonl")), description="JSONL of candidate prompts (id, text, category).")
    temperature: float = Field(0.5, gt=0, description="Lower values focus harder on the weakest categories.")


class WeaknessSampler:
    """Samples pool prompts by softmax(-mean reward / temperature) over categories, never repeating one."""

    Options = WeaknessSamplerOptions

    def __init__(self, options: WeaknessSamplerOptions) -> None:
        self.options = options
        self.pool = load_questions(options.pool)

    def prompts(self, ctx: CurriculumContext) -> list[Prompt]:
        used = {p.id for p in ctx.history}
        free = [q for q in self.pool if q.id not in used]
        if len(free) < ctx.budget:
            raise InputError(f"{self.options.pool}: pool has {len(free)} unused prompts, iteration needs {ctx.budget}")
        rewards: dict[str, list[float]] = {}
        for rec in ctx.evaluation:
            rewards.setdefault(rec.category, []).append(rec.reward)
        mean = {c: sum(v) / len(v) for c, v in rewards.items()}
        floor = min(mean.values(), default=0.0)
        weight = {c: pow(2.718281828, -(m - floor) / self.options.temperature) for c, m in mean.items()}
        rng = random.Random(ctx.seed)
        chosen: list[Prompt] = []
        while len(chosen) < ctx.budget:
            weights = [weight.get(q.category, 1.0) for q in free]
            q = free.pop(rng.choices(range(len(free)), weights)[0])
            chosen.append(Prompt(q.id, q.text, q.category, Provenance("weakness-sampler", ctx.iteration, source="pool")))
        return chosen


@hookimpl
def register_curricula(register):
    register("weakness-sampler", WeaknessSampler)
