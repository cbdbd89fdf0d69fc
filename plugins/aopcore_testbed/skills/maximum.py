"""maximum: the largest of three one-digit numbers."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from aopcore_testbed.skills.base import Skill

_PATTERNS = (
    re.compile(r"Which is the largest number: (\d+), (\d+), (\d+)\?"),
    re.compile(r"What is the largest of (\d+), (\d+) and (\d+)\?"),
)


@dataclass(frozen=True)
class Maximum(Skill):
    name: str = "maximum"
    description: str = "max of three one-digit numbers"

    @property
    def patterns(self):
        return _PATTERNS

    def make(self, rng: random.Random) -> str:
        a, b, c = rng.sample(range(10), 3)
        return rng.choice((f"Which is the largest number: {a}, {b}, {c}?", f"What is the largest of {a}, {b} and {c}?"))

    def universe(self) -> list[str]:
        import itertools

        return [
            q
            for a, b, c in itertools.permutations(range(10), 3)
            for q in (f"Which is the largest number: {a}, {b}, {c}?", f"What is the largest of {a}, {b} and {c}?")
        ]

    def solve_match(self, m: re.Match[str]) -> str:
        return str(max(int(g) for g in m.groups()))

    def distractor(self, question: str) -> str:
        return next(p.search(question) for p in _PATTERNS if p.search(question)).group(1)
