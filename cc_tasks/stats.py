"""Interval arithmetic for Corr@k and Corr_mean, in one small place.

- Corr@k is a proportion of judged paths: its interval is the Wilson score
  interval, which stays inside [0, 1] and is not degenerate at 0 or n
  successes (the normal-approximation stderr is 0 at 0 of 3, Wilson gives
  [0, 0.56]).
- Corr_mean averages the eight Corr@k, which are measured on the SAME rows, so
  they are correlated; treating them as independent (as lm-eval's group stderr
  does) understates the uncertainty. Its interval is a percentile bootstrap
  that resamples row ids (every k of a drawn row travels together) with a fixed
  seed, so a report is reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping

Z95 = 1.959963984540054
"""The two-sided 95% normal quantile (scipy.stats.norm.ppf(0.975))."""

BOOTSTRAP_ITERS = 2000
BOOTSTRAP_SEED = 0
LEVEL = 0.95


def wilson_interval(p: float, n: float, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval of an observed proportion ``p`` over ``n`` trials (None when n = 0)."""
    if n <= 0:
        return None
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"proportion must lie in [0, 1], got {p}")
    z2 = z * z
    denominator = 1.0 + z2 / n
    centre = (p + z2 / (2.0 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval of ``successes`` out of ``n`` (None when n = 0)."""
    if successes < 0 or successes > n:
        raise ValueError(f"successes must lie in [0, n], got {successes} of {n}")
    if n == 0:
        return None
    return wilson_interval(successes / n, n, z)


RowCounts = Mapping[int, Mapping[Hashable, tuple[int, int]]]
"""Per k, per row id: ``(yes, valid)`` path counts of that row at that k."""


def mean_of_rates(counts: RowCounts) -> float | None:
    """Corr_mean from row counts: mean over k of sum(yes) / sum(valid) (k without valid paths skipped)."""
    rates = []
    for per_row in counts.values():
        yes = sum(c[0] for c in per_row.values())
        valid = sum(c[1] for c in per_row.values())
        if valid:
            rates.append(yes / valid)
    return sum(rates) / len(rates) if rates else None


def bootstrap_mean_over_rows(
    counts: RowCounts,
    *,
    iters: int = BOOTSTRAP_ITERS,
    seed: int = BOOTSTRAP_SEED,
    level: float = LEVEL,
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of Corr_mean, resampling ROW IDS with replacement.

    Each resample draws as many row ids as there are (the union over k), with a
    fixed seed; every Corr@k is recomputed from the drawn rows (a row drawn
    twice counts twice) and Corr_mean is their mean over the k that have a valid
    path in the resample. None when there is no valid path at all.
    """
    import numpy as np

    ks = sorted(counts)
    rows = sorted({row for per_row in counts.values() for row in per_row}, key=str)
    if not ks or not rows:
        return None
    index = {row: i for i, row in enumerate(rows)}
    yes = np.zeros((len(rows), len(ks)))
    valid = np.zeros((len(rows), len(ks)))
    for j, k in enumerate(ks):
        for row, (y, v) in counts[k].items():
            yes[index[row], j] += y
            valid[index[row], j] += v
    if not valid.any():
        return None
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(len(rows), np.full(len(rows), 1.0 / len(rows)), size=iters)
    yes_sum, valid_sum = weights @ yes, weights @ valid
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = np.where(valid_sum > 0, yes_sum / np.where(valid_sum > 0, valid_sum, 1), np.nan)
    defined = ~np.isnan(rates)
    per_draw = np.where(defined, rates, 0.0).sum(axis=1)
    n_defined = defined.sum(axis=1)
    means = per_draw[n_defined > 0] / n_defined[n_defined > 0]
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)
