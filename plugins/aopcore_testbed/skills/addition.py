"""addition: the sum of two one-digit numbers (the policy's best category after SFT)."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from aopcore_testbed.skills.base import Skill

_PATTERNS = (re.compile(r"What is (\d+) \+ (\d+)\?"), re.compile(r"What is the sum of (\d+) and (\d+)\?"))


@dataclass(frozen=True)
class Addition(Skill):
    name: str = "addition"
    description: str = "a + b for one-digit a, b"

    @property
    def patterns(self):
        return _PATTERNS

    def make(self, rng: random.Random) -> str:
        a, b = rng.randint(0, 9), rng.randint(0, 9)
        return rng.choice((f"What is {a} + {b}?", f"What is the sum of {a} and {b}?"))

    def universe(self) -> list[str]:
        return [
            q for a in range(10) for b in range(10) for q in (f"What is {a} + {b}?", f"What is the sum of {a} and {b}?")
        ]

    def solve_match(self, m: re.Match[str]) -> str:
        return str(int(m.group(1)) + int(m.group(2)))

    def distractor(self, question: str) -> str:
        return next(p.search(question) for p in _PATTERNS if p.search(question)).group(1)
