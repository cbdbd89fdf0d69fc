"""Win-rate statistics for pairwise judging (paper eq. 2) with 95% Wilson intervals."""
from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """95% Wilson score interval for a proportion; (0, 0) when there is no data."""
    if n == 0:
        return (0.0, 0.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True)
class WinRate:
    arm_a: str
    arm_b: str
    iteration: int
    wins_a: int
    wins_b: int
    ties: int
    dropped: int

    @property
    def n(self) -> int:
        return self.wins_a + self.wins_b + self.ties

    def rate(self, count: int) -> float:
        return count / self.n if self.n else 0.0

    def as_row(self) -> dict[str, float | int | str]:
        row: dict[str, float | int | str] = {
            "arm_a": self.arm_a, "arm_b": self.arm_b, "iteration": self.iteration,
            "n": self.n, "dropped": self.dropped,
        }
        for label, count in (("a_wins", self.wins_a), ("b_wins", self.wins_b), ("ties", self.ties)):
            lo, hi = wilson_interval(count, self.n)
            row[f"{label}_pct"] = round(100 * self.rate(count), 2)
            row[f"{label}_ci_low"] = round(100 * lo, 2)
            row[f"{label}_ci_high"] = round(100 * hi, 2)
        return row
