"""The testbed's data, generated deterministically: held-out, test, candidate pool and the SFT data.

Held-out and test questions never overlap; the pool excludes both. Held-out and test interleave the categories
(round robin), so ``heldout_size`` / ``test_size = N`` (the first N in order) still covers every category. The SFT data gives the policy uneven,
partial skill: each category has its own number of examples and its own share of correct answers (the rest
show the category's plausible wrong answer, see ``Skill.distractor``), lower on the category's 'hard' half.
That is what makes the categories differ in initial accuracy and leaves RL something to fix.

``python -m aopcore_testbed.sets`` rewrites the packaged copies in ``data/`` (a test checks they match).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from aopcore import InputError, Question
from aopcore_testbed.skills import CATEGORIES, SKILLS

DATA = Path(__file__).parent / "data"
SETS = ("heldout", "test", "pool")


@dataclass(frozen=True)
class SFTPlan:
    examples: int  # SFT records of this category
    correct: float  # share of them with the right answer (on the category's easy half; hard half: minus ``spread``)


SFT_PLAN = {
    "addition": SFTPlan(600, 0.9),
    "conversion": SFTPlan(500, 0.7),
    "uppercase": SFTPlan(500, 0.55),
    "reversal": SFTPlan(500, 0.45),
    "maximum": SFTPlan(600, 0.45),
    "subtraction": SFTPlan(600, 0.35),
    "counting": SFTPlan(500, 0.3),
}
SPREAD = 0.3
SIZES = {"heldout": 40, "test": 40, "pool": 80}
INTERLEAVED = ("heldout", "test")  # sets a config may cut short with a size: every prefix spans the categories


def _draw(category: str, n: int, rng: random.Random, exclude: set[str]) -> list[str]:
    out: list[str] = []
    skill = SKILLS[category]
    for _ in range(200 * n):
        if len(out) == n:
            return out
        q = skill.make(rng)
        if q not in exclude:
            exclude.add(q)
            out.append(q)
    raise RuntimeError(f"testbed: category {category} ran out of distinct questions")


def build_sets() -> dict[str, list[Question]]:
    """Held-out, test and pool questions (ids like ``heldout-addition-007``), disjoint from each other."""
    out: dict[str, list[Question]] = {name: [] for name in SETS}
    for category in CATEGORIES:
        used: set[str] = set()
        for name in SETS:
            rng = random.Random(f"testbed/{name}/{category}")
            texts = _draw(category, SIZES[name], rng, used)
            out[name] += [Question(f"{name}-{category}-{i:03d}", t, category) for i, t in enumerate(texts)]
    for name in INTERLEAVED:
        out[name] = round_robin(out[name])
    return out


def round_robin(questions: list[Question]) -> list[Question]:
    """One question of each category in turn (categories in first-seen order), keeping each category's order."""
    by_category: dict[str | None, list[Question]] = {}
    for q in questions:
        by_category.setdefault(q.category, []).append(q)
    queues = list(by_category.values())
    return [queue[i] for i in range(max(map(len, queues), default=0)) for queue in queues if i < len(queue)]


def sft_rows(seed: int = 0) -> list[dict[str, str]]:
    """Dolly-format SFT records (instruction, context, response, category), shuffled."""
    rng = random.Random(f"testbed/sft/{seed}")
    rows = []
    for category in CATEGORIES:
        skill, plan = SKILLS[category], SFT_PLAN[category]
        for _ in range(plan.examples):
            q = skill.make(rng)
            p = plan.correct - (SPREAD / 2 if skill.hard(q) else -SPREAD / 2)
            answer = skill.solve(q) if rng.random() < p else skill.distractor(q)
            rows.append({"instruction": q, "context": "", "response": answer, "category": category})
    rng.shuffle(rows)
    return rows


def load(arg: str, base_dir: Path | None = None) -> list[Question]:
    """Testbed: `testbed:heldout`, `testbed:test` (40 per category each) and `testbed:pool` (80 per category), generated."""
    if arg not in SETS:
        raise InputError(f"testbed:{arg}: no such testbed set (sets: {', '.join(SETS)})")
    return build_sets()[arg]


def write_packaged(folder: Path = DATA) -> list[Path]:
    """Write the sets and the SFT data as JSONL, for configs that name files."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, questions in build_sets().items():
        paths.append(
            _write(folder / f"{name}.jsonl", [{"id": q.id, "text": q.text, "category": q.category} for q in questions])
        )
    paths.append(_write(folder / "sft.jsonl", sft_rows()))
    return paths


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows), encoding="utf-8")
    return path


if __name__ == "__main__":
    for p in write_packaged():
        print(p)
