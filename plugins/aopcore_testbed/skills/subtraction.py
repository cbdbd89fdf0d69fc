"""subtraction: a - b with a one-digit, non-negative result."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from aopcore_testbed.skills.base import Skill

_PATTERNS = (re.compile(r"What is (\d+) - (\d+)\?"), re.compile(r"What is (\d+) minus (\d+)\?"))


@dataclass(frozen=True)
class Subtraction(Skill):
    name: str = "subtraction"
    description: str = "a - b with 0 <= a - b <= 9, b <= 9"

    @property
    def patterns(self):
        return _PATTERNS

    def make(self, rng: random.Random) -> str:
        b, r = rng.randint(0, 9), rng.randint(0, 9)
        return rng.choice((f"What is {b + r} - {b}?", f"What is {b + r} minus {b}?"))

    def universe(self) -> list[str]:
        return [
            q for b in range(10) for r in range(10) for q in (f"What is {b + r} - {b}?", f"What is {b + r} minus {b}?")
        ]

    def solve_match(self, m: re.Match[str]) -> str:
        return str(int(m.group(1)) - int(m.group(2)))

    def distractor(self, question: str) -> str:
        return next(p.search(question) for p in _PATTERNS if p.search(question)).group(1)
