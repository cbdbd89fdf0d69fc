"""uppercase: a three-letter made-up word in capital letters (checked case-sensitively)."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from aopcore_testbed.skills.base import THREE_LETTER, Skill

_PATTERNS = (
    re.compile(r"What is '([a-z]+)' in capital letters\?"),
    re.compile(r"How do you write '([a-z]+)' in upper case\?"),
)


@dataclass(frozen=True)
class Uppercase(Skill):
    name: str = "uppercase"
    description: str = "a made-up three-letter word in capitals"
    numeric: bool = False
    case_sensitive: bool = True

    @property
    def patterns(self):
        return _PATTERNS

    def make(self, rng: random.Random) -> str:
        w = rng.choice(THREE_LETTER)
        return rng.choice((f"What is '{w}' in capital letters?", f"How do you write '{w}' in upper case?"))

    def universe(self) -> list[str]:
        return [
            q
            for w in THREE_LETTER
            for q in (f"What is '{w}' in capital letters?", f"How do you write '{w}' in upper case?")
        ]

    def solve_match(self, m: re.Match[str]) -> str:
        return m.group(1).upper()

    def distractor(self, question: str) -> str:
        return next(p.search(question) for p in _PATTERNS if p.search(question)).group(1)
