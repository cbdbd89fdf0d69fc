"""reversal: a three-letter made-up word spelled backwards."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from aopcore_testbed.skills.base import THREE_LETTER, Skill

_PATTERNS = (
    re.compile(r"What is '([a-z]+)' spelled backwards\?"),
    re.compile(r"How do you spell '([a-z]+)' backwards\?"),
)


@dataclass(frozen=True)
class Reversal(Skill):
    name: str = "reversal"
    description: str = "a made-up three-letter word reversed"
    numeric: bool = False

    @property
    def patterns(self):
        return _PATTERNS

    def make(self, rng: random.Random) -> str:
        w = rng.choice(THREE_LETTER)
        return rng.choice((f"What is '{w}' spelled backwards?", f"How do you spell '{w}' backwards?"))

    def universe(self) -> list[str]:
        return [
            q for w in THREE_LETTER for q in (f"What is '{w}' spelled backwards?", f"How do you spell '{w}' backwards?")
        ]

    def solve_match(self, m: re.Match[str]) -> str:
        return m.group(1)[::-1]

    def distractor(self, question: str) -> str:
        return next(p.search(question) for p in _PATTERNS if p.search(question)).group(1)
