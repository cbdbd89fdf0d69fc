"""counting: how many letters a made-up word has."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from aopcore_testbed.skills.base import ANY_LENGTH, Skill

_PATTERNS = (
    re.compile(r"How many letters are in the word '([a-z]+)'\?"),
    re.compile(r"How many letters does '([a-z]+)' have\?"),
)


@dataclass(frozen=True)
class Counting(Skill):
    name: str = "counting"
    description: str = "length of a made-up lower-case word of 2-7 letters"

    @property
    def patterns(self):
        return _PATTERNS

    def make(self, rng: random.Random) -> str:
        w = rng.choice(ANY_LENGTH)
        return rng.choice((f"How many letters are in the word '{w}'?", f"How many letters does '{w}' have?"))

    def universe(self) -> list[str]:
        return [
            q
            for w in ANY_LENGTH
            for q in (f"How many letters are in the word '{w}'?", f"How many letters does '{w}' have?")
        ]

    def solve_match(self, m: re.Match[str]) -> str:
        return str(len(m.group(1)))

    def distractor(self, question: str) -> str:
        n = int(self.solve(question) or 0)
        return str(n + 1)
