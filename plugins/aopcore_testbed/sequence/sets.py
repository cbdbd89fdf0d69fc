"""The sequence tier's data: held-out, test and pool questions, and the SFT data that made the start policy.

Questions are drawn from reasoning-gym with a seed per (set, category); held-out, test and pool never overlap, and
the SFT data avoids all three: the start accuracy measures answers to questions the policy never saw, and so does a
pass rate a curriculum measures on the pool (with the pool in the SFT data, the oracle chose memorised questions of
adding numbers up to 10 and the held-out score of that level fell). Held-out and test interleave the categories
(round robin, like the bandit tier), so any prefix spans them all. A level with fewer questions than its SFT plan
(adding numbers up to 10) repeats them. The SFT data gives the policy uneven, partial skill: each category has its
own number of examples and its own share of right answers (``Level.examples``, ``Level.correct`` in ``tasks.py``);
the rest show the task's wrong habit, and some right answers a format habit (``Level.clean``, ``Task.suffix``).

The sets are packaged (``data/``) and loaded from there, so a later reasoning-gym that generates other questions
for the same seed leaves the comparison's questions alone; ``python -m aopcore_testbed.sequence.sets`` rewrites
them, and a test checks they are what the installed reasoning-gym generates.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

from aopcore import InputError, Question
from aopcore_testbed.sequence.tasks import CATEGORIES, answer_of, draw, habit_of, split_category
from aopcore_testbed.sets import round_robin

DATA = Path(__file__).parent / "data"
SETS = ("heldout", "test", "pool")
SIZES = {"heldout": 30, "test": 30, "pool": 200}
# adding numbers up to 10 has 242 questions in all: 60 go to held-out and test, 60 to the pool, and the SFT data
# (which shows no pool question either) keeps the other 122
POOL_CAP = {"basic_arithmetic_easy": 60}
INTERLEAVED = ("heldout", "test")


def _seed(*parts: str) -> int:
    return int(hashlib.sha256("/".join(("testbed-seq", *parts)).encode()).hexdigest()[:8], 16)


def size(name: str, category: str) -> int:
    """How many questions of ``category`` the set ``name`` holds: its size, or the pool's cap for a small level."""
    return POOL_CAP.get(category, SIZES[name]) if name == "pool" else SIZES[name]


def build_sets() -> dict[str, list[Question]]:
    """Held-out, test and pool questions (ids like ``heldout-spell_backward_easy-007``), disjoint from each other."""
    out: dict[str, list[Question]] = {name: [] for name in SETS}
    for category in CATEGORIES:
        used: set[str] = set()
        for name in SETS:
            texts = draw(category, size(name, category), _seed(name, category), used)
            out[name] += [Question(f"{name}-{category}-{i:03d}", t, category) for i, t in enumerate(texts)]
    for name in INTERLEAVED:
        out[name] = round_robin(out[name])
    return out


def sft_rows(seed: int = 0, exclude: set[str] | None = None) -> list[dict[str, str]]:
    """Dolly-format SFT records (instruction, context, response, category), shuffled; none of ``exclude``'s questions
    (default: none of the held-out, test or pool questions, so a pass rate measured on the pool is the policy's
    skill on questions it has not seen, as on the held-out set, not its memory of its SFT data)."""
    if exclude is None:
        sets = load_packaged()
        exclude = {q.text for name in SETS for q in sets[name]}
    rng = random.Random(f"testbed-seq/sft/{seed}")
    rows = []
    for category in CATEGORIES:
        task, level = split_category(category)
        plan = task.levels[level]
        distinct = draw(category, plan.examples, _seed("sft", str(seed), category), set(exclude), at_most=True)
        for k in range(plan.examples):  # a small level repeats its questions (each time right or wrong anew)
            q = distinct[k % len(distinct)]
            right = answer_of(q) or ""
            answer = right if rng.random() < plan.correct else habit_of(q)
            if plan.clean < 1.0 and answer == right and rng.random() >= plan.clean:
                answer = f"{right}{task.suffix}"  # the format habit: right, but not as the task asks
            rows.append({"instruction": q, "context": "", "response": answer, "category": category})
    rng.shuffle(rows)
    return rows


def load_packaged(folder: Path = DATA) -> dict[str, list[Question]]:
    out = {}
    for name in SETS:
        path = folder / f"{name}.jsonl"
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        out[name] = [Question(r["id"], r["text"], r["category"]) for r in rows]
    return out


def load(arg: str, base_dir: Path | None = None) -> list[Question]:
    """Testbed sequence tier: `testbed-seq:heldout`, `testbed-seq:test` (30 per category each), `testbed-seq:pool` (60)."""
    if arg not in SETS:
        raise InputError(f"testbed-seq:{arg}: no such sequence-tier set (sets: {', '.join(SETS)})")
    return load_packaged()[arg]


def write_packaged(folder: Path = DATA) -> list[Path]:
    """Write the sets as JSONL (what ``load`` reads)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, questions in build_sets().items():
        rows = [{"id": q.id, "text": q.text, "category": q.category} for q in questions]
        path = folder / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows), encoding="utf-8")
        paths.append(path)
    return paths


if __name__ == "__main__":
    for p in write_packaged():
        print(p)
