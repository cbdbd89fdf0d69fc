"""Statistics: win rates with Wilson intervals (paper eq. 2), and the multi-seed tools behind the aggregate report
(Student-t intervals across seeds, two-level bootstraps over seeds and prompts, Cohen's kappa)."""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence
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
            "arm_a": self.arm_a,
            "arm_b": self.arm_b,
            "iteration": self.iteration,
            "n": self.n,
            "dropped": self.dropped,
        }
        for label, count in (("a_wins", self.wins_a), ("b_wins", self.wins_b), ("ties", self.ties)):
            lo, hi = wilson_interval(count, self.n)
            row[f"{label}_pct"] = round(100 * self.rate(count), 2)
            row[f"{label}_ci_low"] = round(100 * lo, 2)
            row[f"{label}_ci_high"] = round(100 * hi, 2)
        return row


# ---- intervals across seeds, bootstraps and agreement (multi-seed aggregates) ---------------------------------------
#
# Pure Python (the core has no numpy): deterministic for a given seed on every platform.


@dataclass(frozen=True)
class Interval:
    """A point estimate with a 95% (or other) interval; NaN bounds when there is too little data for one."""

    estimate: float
    low: float
    high: float
    n: int

    @property
    def defined(self) -> bool:
        return not (math.isnan(self.low) or math.isnan(self.high))

    def covers_zero(self) -> bool:
        return not self.defined or self.low <= 0.0 <= self.high

    def as_dict(self, digits: int = 6) -> dict[str, float | int | None]:
        def r(x: float) -> float | None:
            return None if math.isnan(x) else round(x, digits)

        return {"estimate": r(self.estimate), "ci_low": r(self.low), "ci_high": r(self.high), "n": self.n}


NAN = float("nan")


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else NAN


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularized incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c if abs(1.0 + aa / c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c if abs(1.0 + aa / c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """Student-t cumulative distribution function."""
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """Quantile of Student's t (bisection on the CDF; accurate to ~1e-12)."""
    if not 0.0 < p < 1.0 or df <= 0:
        raise ValueError("t_quantile needs 0 < p < 1 and df > 0")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2.0
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-13 * max(1.0, hi):
            break
    return (lo + hi) / 2.0


def t_interval(values: Sequence[float], confidence: float = 0.95) -> Interval:
    """Mean with a Student-t interval (the values are independent units, e.g. one per seed); NaN bounds for n < 2."""
    n = len(values)
    m = mean(values)
    if n < 2:
        return Interval(m, NAN, NAN, n)
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1))
    half = t_quantile(0.5 + confidence / 2.0, n - 1) * sd / math.sqrt(n)
    return Interval(m, m - half, m + half, n)


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between order statistics (numpy's default, 'type 7')."""
    if not sorted_values:
        return NAN
    pos = q * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (pos - lo) * (sorted_values[hi] - sorted_values[lo])


def binomial(rng: random.Random, n: int, p: float) -> int:
    """An exact Binomial(n, p) draw: geometric waiting times for small n*p, BTRS (Hörmann 1993) otherwise."""
    if n <= 0 or p <= 0.0:
        return 0
    if p >= 1.0:
        return n
    if p > 0.5:
        return n - binomial(rng, n, 1.0 - p)
    if n * p < 10.0:
        log_q = math.log1p(-p)
        x = y = 0
        while True:
            y += math.floor(math.log(1.0 - rng.random()) / log_q) + 1
            if y > n:
                return x
            x += 1
    spq = math.sqrt(n * p * (1.0 - p))
    b = 1.15 + 2.53 * spq
    a = -0.0873 + 0.0248 * b + 0.01 * p
    c = n * p + 0.5
    vr = 0.92 - 4.2 / b
    alpha = (2.83 + 5.1 / b) * spq
    lpq = math.log(p / (1.0 - p))
    m = math.floor((n + 1) * p)
    h = math.lgamma(m + 1) + math.lgamma(n - m + 1)
    while True:
        u = rng.random() - 0.5
        v = rng.random()
        us = 0.5 - abs(u)
        k = math.floor((2.0 * a / us + b) * u + c)
        if k < 0 or k > n:
            continue
        if us >= 0.07 and v <= vr:
            return k
        v = math.log(v * alpha / (a / (us * us) + b))
        if v <= h - math.lgamma(k + 1) - math.lgamma(n - k + 1) + (k - m) * lpq:
            return k


def _resample_counts(rng: random.Random, counts: Sequence[int]) -> list[int]:
    """Resample sum(counts) items with replacement from a table of counts (a multinomial draw)."""
    left_n, left_c = sum(counts), sum(counts)
    out = []
    for c in counts[:-1]:
        x = binomial(rng, left_n, c / left_c) if left_c else 0
        out.append(x)
        left_n -= x
        left_c -= c
    out.append(left_n)
    return out


def clustered_bootstrap_counts(
    tables: Sequence[Sequence[int]],
    statistics: Mapping[str, Callable[[Sequence[int]], float]],
    *,
    resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, Interval]:
    """Two-level bootstrap of categorical outcomes: resample clusters (seeds), then items (prompts) within each.

    ``tables`` holds one count table per cluster (e.g. [A wins, B wins, ties] of one seed). Each replicate draws
    len(tables) clusters with replacement, redraws each chosen cluster's items with replacement (a multinomial on
    its counts), pools the counts, and evaluates every statistic on the pooled table. Intervals are percentile
    intervals; the estimate is the statistic of the pooled observed table.
    """
    tables = [list(t) for t in tables if sum(t) > 0]
    if not tables:
        return {name: Interval(NAN, NAN, NAN, 0) for name in statistics}
    pooled = [sum(col) for col in zip(*tables)]
    rng = random.Random(seed)
    draws: dict[str, list[float]] = {name: [] for name in statistics}
    for _ in range(resamples):
        total = [0] * len(pooled)
        for _ in tables:
            picked = tables[rng.randrange(len(tables))]
            for j, x in enumerate(_resample_counts(rng, picked)):
                total[j] += x
        for name, stat in statistics.items():
            draws[name].append(stat(total))
    alpha = (1.0 - confidence) / 2.0
    out = {}
    for name, stat in statistics.items():
        values = sorted(draws[name])
        out[name] = Interval(stat(pooled), quantile(values, alpha), quantile(values, 1.0 - alpha), sum(pooled))
    return out


def clustered_bootstrap_mean(
    clusters: Sequence[Sequence[float]], *, resamples: int = 2000, seed: int = 0, confidence: float = 0.95
) -> Interval:
    """Pooled mean of clustered values with a two-level (clusters, then items) percentile bootstrap interval."""
    levels = sorted({v for c in clusters for v in c})
    index = {v: j for j, v in enumerate(levels)}
    tables = []
    for c in clusters:
        t = [0] * len(levels)
        for v in c:
            t[index[v]] += 1
        tables.append(t)

    def pooled_mean(t: Sequence[int]) -> float:
        n = sum(t)
        return sum(v * k for v, k in zip(levels, t)) / n if n else NAN

    return clustered_bootstrap_counts(
        tables, {"mean": pooled_mean}, resamples=resamples, seed=seed, confidence=confidence
    )["mean"]


def two_level_bootstrap_mean(
    clusters: Sequence[Sequence[float]], *, resamples: int = 2000, seed: int = 0, confidence: float = 0.95
) -> Interval:
    """Mean over clusters of each cluster's mean, with a two-level (clusters, then items) percentile interval.

    Unlike :func:`clustered_bootstrap_mean` every cluster weighs the same (one seed, one vote, as in a t-interval
    across seeds), while the redraw of items within each cluster lets item-sampling noise (which held-out questions
    a seed happened to see) widen the interval too. Items are paired values (e.g. per-question differences between
    two arms), so pairing survives the resampling. ``n`` is the number of clusters.
    """
    clusters = [list(c) for c in clusters if c]
    if not clusters:
        return Interval(NAN, NAN, NAN, 0)
    tables = []
    for c in clusters:
        tally = Counter(c)
        levels = sorted(tally)
        tables.append((levels, [tally[v] for v in levels]))
    estimate = mean([mean(c) for c in clusters])
    rng = random.Random(seed)
    draws = []
    for _ in range(resamples):
        total = 0.0
        for _ in tables:
            levels, counts = tables[rng.randrange(len(tables))]
            total += sum(v * k for v, k in zip(levels, _resample_counts(rng, counts))) / sum(counts)
        draws.append(total / len(tables))
    draws.sort()
    alpha = (1.0 - confidence) / 2.0
    return Interval(estimate, quantile(draws, alpha), quantile(draws, 1.0 - alpha), len(clusters))


def cohen_kappa(first: Sequence[Hashable], second: Sequence[Hashable]) -> float:
    """Cohen's kappa of two raters' labels on the same items; NaN without items, 1.0 for perfect chance-free agreement."""
    if len(first) != len(second):
        raise ValueError("both raters must label the same items")
    n = len(first)
    if n == 0:
        return NAN
    observed = sum(a == b for a, b in zip(first, second)) / n
    ca, cb = Counter(first), Counter(second)
    expected = sum(ca[k] * cb[k] for k in ca) / (n * n)
    if expected == 1.0:
        return 1.0 if observed == 1.0 else NAN
    return (observed - expected) / (1.0 - expected)
