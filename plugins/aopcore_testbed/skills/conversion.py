"""conversion: metric unit conversion (kilometers to meters, kilograms to grams, meters to centimeters)."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from aopcore_testbed.skills.base import Skill

_FACTORS = {("meters", "kilometers"): 1000, ("grams", "kilograms"): 1000, ("centimeters", "meters"): 100}
_PATTERNS = (
    re.compile(r"How many (meters|grams|centimeters) are in (\d+) (kilometers|kilograms|meters)\?"),
    re.compile(r"How many (meters|grams|centimeters) make (\d+) (kilometers|kilograms|meters)\?"),
)


@dataclass(frozen=True)
class Conversion(Skill):
    name: str = "conversion"
    description: str = "k km -> m, k kg -> g, k m -> cm for k in 1..30"

    @property
    def patterns(self):
        return _PATTERNS

    def make(self, rng: random.Random) -> str:
        (small, big), k = rng.choice(sorted(_FACTORS)), rng.randint(1, 30)
        return rng.choice((f"How many {small} are in {k} {big}?", f"How many {small} make {k} {big}?"))

    def universe(self) -> list[str]:
        return [
            q
            for small, big in sorted(_FACTORS)
            for k in range(1, 31)
            for q in (f"How many {small} are in {k} {big}?", f"How many {small} make {k} {big}?")
        ]

    def solve_match(self, m: re.Match[str]) -> str | None:  # type: ignore[override]
        factor = _FACTORS.get((m.group(1), m.group(3)))
        return str(int(m.group(2)) * factor) if factor else None

    def distractor(self, question: str) -> str:
        return next(p.search(question) for p in _PATTERNS if p.search(question)).group(2)
