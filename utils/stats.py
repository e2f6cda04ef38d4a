"""Small-sample statistics for multi-seed ablations: mean, sample std, Student-t confidence intervals, paired diffs.

The t quantile is computed exactly (to ~1e-10) rather than read from a table: the Student-t CDF is written with the
regularized incomplete beta function, evaluated by its continued fraction, and inverted by bisection. This keeps the
project free of a scipy dependency for one function.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def mean(x: Sequence[float]) -> float:
    """Arithmetic mean of a non-empty sequence."""
    if len(x) == 0:
        raise ValueError("mean of an empty sequence")
    return math.fsum(x) / len(x)


def std(x: Sequence[float]) -> float:
    """Sample standard deviation (n - 1 in the denominator); nan for fewer than 2 values."""
    if len(x) < 2:
        return math.nan
    m = mean(x)
    return math.sqrt(math.fsum((v - m) ** 2 for v in x) / (len(x) - 1))


def _betacf(a: float, b: float, x: float, max_iter: int = 500, eps: float = 1e-15) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz's method)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, max_iter + 1):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta function I_x(a, b) for a, b > 0 and 0 <= x <= 1."""
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"betainc: x must lie in [0, 1], got {x}")
    if x in (0.0, 1.0):
        return x
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):  # the continued fraction converges fast on this side; use symmetry otherwise
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """Student-t cumulative distribution function with df degrees of freedom."""
    if df <= 0:
        raise ValueError(f"t_cdf: degrees of freedom must be positive, got {df}")
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))  # P(T > |t|)
    return 1.0 - tail if t >= 0 else tail


def t_ppf(p: float, df: float) -> float:
    """Student-t quantile: the t with t_cdf(t, df) == p, found by bisection (exact to ~1e-10)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"t_ppf: p must lie in (0, 1), got {p}")
    if p < 0.5:
        return -t_ppf(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:  # grow the bracket: df=1 at p=0.9995 needs t ~ 637
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


def confidence_interval(x: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Two-sided Student-t confidence interval of the mean of x; (nan, nan) for fewer than 2 values."""
    n = len(x)
    if n < 2:
        return math.nan, math.nan
    m, half = mean(x), t_ppf(0.5 + level / 2.0, n - 1) * std(x) / math.sqrt(n)
    return m - half, m + half


def summarize(x: Sequence[float], level: float = 0.95) -> dict:
    """{'n', 'mean', 'std', 'ci_lo', 'ci_hi'} of a sample (std and interval nan below 2 values)."""
    lo, hi = confidence_interval(x, level)
    return {"n": len(x), "mean": mean(x) if len(x) else math.nan, "std": std(x), "ci_lo": lo, "ci_hi": hi}


def paired_difference(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> dict:
    """Summary of the differences a[i] - b[i] of paired samples (same seeds), with its t interval."""
    if len(a) != len(b):
        raise ValueError(f"paired_difference: samples differ in length ({len(a)} vs {len(b)})")
    return summarize([x - y for x, y in zip(a, b)], level)
