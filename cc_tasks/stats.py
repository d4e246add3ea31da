"""Every statistic of the project, in one place: intervals, bootstraps, kappa, confusion.

- Corr@k is a proportion of judged paths: its interval is the Wilson score
  interval, which stays inside [0, 1] and is not degenerate at 0 or n
  successes (the normal-approximation stderr is 0 at 0 of 3, Wilson gives
  [0, 0.56]).
- Corr_mean averages the eight Corr@k, which are measured on the SAME rows, so
  they are correlated; treating them as independent (as lm-eval's group stderr
  does) understates the uncertainty. Its interval is a percentile bootstrap
  that resamples row ids (every k of a drawn row travels together) with a fixed
  seed, so a report is reproducible (:func:`bootstrap_mean_over_rows`).
- Two runs on the same rows (before and after training) are compared by the
  paired version of that bootstrap: one draw of row ids serves both runs
  (:func:`paired_difference`); a share measured twice on the same items (prompts) by
  :func:`paired_share_difference`.
- A judge against reference labels (the gold set, a blind reader): Cohen's
  kappa, accuracy, precision and recall of ``yes``, the confusion matrix, and
  percentile intervals from a seeded bootstrap over the items
  (:func:`bootstrap_over_items`); a multi-class judge (over-refusal): precision and
  recall per class with Wilson intervals (:func:`per_class`) and a bootstrap interval
  of kappa (:func:`bootstrap_kappa`).
- A judge corrected by careful labels on a random sample of the same run
  (prediction-powered inference, PPI++): :func:`ppi_combination` for Corr@k,
  Corr_mean and before/after differences, :func:`ppi_half_width` for the
  interval a number of labels buys.

Every bootstrap here uses :data:`BOOTSTRAP_ITERS` resamples and seed
:data:`BOOTSTRAP_SEED` unless told otherwise.
"""

from __future__ import annotations

import math
import random
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Z95 = 1.959963984540054
"""The two-sided 95% normal quantile (scipy.stats.norm.ppf(0.975))."""

BOOTSTRAP_ITERS = 2000
BOOTSTRAP_SEED = 0
LEVEL = 0.95
YES = "yes"
"""The positive label of precision and recall (a corrected path)."""


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


def _row_matrices(
    counts: RowCounts, ks: Sequence[int], rows: Sequence[Hashable]
) -> tuple[Any, Any]:
    """``(yes, valid)`` arrays of shape rows x ks (a k a run lacks is all zeros)."""
    import numpy as np

    index = {row: i for i, row in enumerate(rows)}
    yes = np.zeros((len(rows), len(ks)))
    valid = np.zeros((len(rows), len(ks)))
    for j, k in enumerate(ks):
        for row, (y, v) in counts.get(k, {}).items():
            yes[index[row], j] += y
            valid[index[row], j] += v
    return yes, valid


def _row_draws(n_rows: int, iters: int, seed: int) -> Any:
    """``iters`` x ``n_rows`` counts: how often each row is drawn in each resample (seeded)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return rng.multinomial(n_rows, np.full(n_rows, 1.0 / n_rows), size=iters)


def _draw_means(weights: Any, yes: Any, valid: Any) -> Any:
    """Corr_mean of each draw: the mean over the k with a valid path in it (NaN where none)."""
    import numpy as np

    yes_sum, valid_sum = weights @ yes, weights @ valid
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = np.where(valid_sum > 0, yes_sum / np.where(valid_sum > 0, valid_sum, 1), np.nan)
        defined = ~np.isnan(rates)
        per_draw = np.where(defined, rates, 0.0).sum(axis=1)
        n_defined = defined.sum(axis=1)
        return np.where(n_defined > 0, per_draw / np.where(n_defined > 0, n_defined, 1), np.nan)


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
    yes, valid = _row_matrices(counts, ks, rows)
    if not valid.any():
        return None
    means = _draw_means(_row_draws(len(rows), iters, seed), yes, valid)
    means = means[~np.isnan(means)]
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)


def paired_difference(
    before: RowCounts,
    after: RowCounts,
    *,
    iters: int = BOOTSTRAP_ITERS,
    seed: int = BOOTSTRAP_SEED,
    level: float = LEVEL,
) -> dict[str, Any]:
    """``after - before`` Corr_mean with its paired bootstrap standard error and interval.

    Both runs must cover the same rows (evaluated twice); a mismatch is an error, not
    something to average over. Each draw of row ids recomputes Corr_mean for both runs
    (every k of a drawn row, before and after, travels together).
    """
    import numpy as np

    ks = sorted(set(before) | set(after))
    rows_b = {row for per_row in before.values() for row in per_row}
    rows_a = {row for per_row in after.values() for row in per_row}
    if rows_b != rows_a:
        raise ValueError(
            f"before and after cover different rows ({len(rows_b)} vs {len(rows_a)}; "
            f"{len(rows_b ^ rows_a)} differ): a paired comparison needs the same rows"
        )
    rows = sorted(rows_b, key=str)
    if not rows:
        raise ValueError("no rows to compare")
    yes_b, valid_b = _row_matrices(before, ks, rows)
    yes_a, valid_a = _row_matrices(after, ks, rows)
    weights = _row_draws(len(rows), iters, seed)
    with np.errstate(invalid="ignore"):
        diffs = _draw_means(weights, yes_a, valid_a) - _draw_means(weights, yes_b, valid_b)
    diffs = diffs[~np.isnan(diffs)]
    mean_b, mean_a = mean_of_rates(before), mean_of_rates(after)
    diff = None if mean_b is None or mean_a is None else mean_a - mean_b
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(diffs, [alpha, 1.0 - alpha])
    se = float(np.std(diffs, ddof=1))
    return {
        "before": mean_b,
        "after": mean_a,
        "difference": diff,
        "bootstrap_se": se,
        "ci95": [float(low), float(high)],
        "z": (diff / se) if diff is not None and se > 0 else None,
        "rows": len(rows),
        "ks": ks,
        "method": f"paired percentile bootstrap over {len(rows)} row ids ({iters} resamples, "
        f"seed {seed}); se = std of the resampled differences",
    }


ItemCounts = Mapping[Hashable, tuple[int, int]]
"""Per item (prompt) id: ``(k, n)``, the item's hits and its weight in a share's denominator."""


def paired_share_difference(
    before: ItemCounts,
    after: ItemCounts,
    *,
    iters: int = BOOTSTRAP_ITERS,
    seed: int = BOOTSTRAP_SEED,
    level: float = LEVEL,
) -> dict[str, Any]:
    """``after - before`` of a share measured twice on the same items, with a paired bootstrap.

    A share is ``sum(k) / sum(n)`` over the items: ``(0|1, 1)`` per judged answer for a plain
    proportion (full refusal), ``(0|1, 0|1)`` where the denominator is itself a subset that
    changes between the runs (safety talk among the compliant answers). Each side gets its
    Wilson interval; the difference gets a percentile bootstrap that draws ITEM IDS once for
    both runs, because the same prompts answered twice are not independent samples (the
    one-k counterpart of :func:`paired_difference`). Draws where a side has no denominator
    are skipped; with fewer than half defined there is no interval (None).
    """
    import numpy as np

    if set(before) != set(after):
        differ = len(set(before) ^ set(after))
        raise ValueError(
            f"before and after cover different items ({len(before)} vs {len(after)}; {differ} "
            "differ): a paired comparison needs the same items"
        )
    items = sorted(before, key=str)
    if not items:
        raise ValueError("no items to compare")
    for name, counts in (("before", before), ("after", after)):
        for item in items:
            k, n = counts[item]
            if not 0 <= k <= n:
                raise ValueError(f"{name}: item {item!r}: counts (k={k}, n={n}) need 0 <= k <= n")
    k_b, n_b = (np.array([before[i][j] for i in items], dtype=float) for j in (0, 1))
    k_a, n_a = (np.array([after[i][j] for i in items], dtype=float) for j in (0, 1))
    point_b = float(k_b.sum() / n_b.sum()) if n_b.sum() else None
    point_a = float(k_a.sum() / n_a.sum()) if n_a.sum() else None
    weights = _row_draws(len(items), iters, seed)

    def shares(k: Any, n: Any) -> Any:
        den = weights @ n
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, (weights @ k) / np.where(den > 0, den, 1), np.nan)

    diffs = shares(k_a, n_a) - shares(k_b, n_b)
    diffs = diffs[~np.isnan(diffs)]
    se: float | None = None
    ci: list[float] | None = None
    if point_b is not None and point_a is not None and len(diffs) >= iters / 2:
        alpha = (1.0 - level) / 2.0
        low, high = np.quantile(diffs, [alpha, 1.0 - alpha])
        se, ci = float(np.std(diffs, ddof=1)), [float(low), float(high)]
    interval_b = wilson(int(k_b.sum()), int(n_b.sum()))
    interval_a = wilson(int(k_a.sum()), int(n_a.sum()))
    return {
        "before": point_b,
        "after": point_a,
        "before_counts": [int(k_b.sum()), int(n_b.sum())],
        "after_counts": [int(k_a.sum()), int(n_a.sum())],
        "before_ci95": list(interval_b) if interval_b else None,
        "after_ci95": list(interval_a) if interval_a else None,
        "difference": None if point_b is None or point_a is None else point_a - point_b,
        "bootstrap_se": se,
        "ci95": ci,
        "items": len(items),
        "method": f"95% Wilson interval per run; difference: paired percentile bootstrap over "
        f"{len(items)} item ids ({iters} resamples, seed {seed})",
    }


# --------------------------------------------------------------------------- labels vs labels


def cohen_kappa(a: Sequence[str], b: Sequence[str]) -> float | None:
    """Cohen's kappa of two equally long label sequences; None where it is undefined.

    kappa = (p_o - p_e) / (1 - p_e), p_e from each side's marginals. It is
    undefined when p_e = 1 (both sides gave one and the same label throughout).
    """
    if len(a) != len(b):
        raise ValueError("label sequences differ in length")
    n = len(a)
    if n == 0:
        return None
    labels = sorted(set(a) | set(b))
    p_o = sum(x == y for x, y in zip(a, b, strict=True)) / n
    p_e = sum((a.count(lab) / n) * (b.count(lab) / n) for lab in labels)
    if math.isclose(p_e, 1.0):
        return None
    return (p_o - p_e) / (1 - p_e)


def confusion(
    truth: Sequence[str],
    predicted: Sequence[str],
    truth_labels: Sequence[str],
    predicted_labels: Sequence[str],
) -> dict[str, dict[str, int]]:
    """``{truth label: {predicted label: count}}`` with every label present (zeros included)."""
    table = {t: dict.fromkeys(predicted_labels, 0) for t in truth_labels}
    for t, p in zip(truth, predicted, strict=True):
        table[t][p] += 1
    return table


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


@dataclass(frozen=True)
class YesCounts:
    """The counts behind precision and recall of ``yes`` (predicted against truth)."""

    true_yes: int
    """Both say yes."""
    predicted_yes: int
    truth_yes: int

    @property
    def precision(self) -> float | None:
        return _ratio(self.true_yes, self.predicted_yes)

    @property
    def recall(self) -> float | None:
        return _ratio(self.true_yes, self.truth_yes)

    @property
    def precision_ci(self) -> tuple[float, float] | None:
        """95% Wilson interval of the precision (None when nothing was predicted yes)."""
        return wilson(self.true_yes, self.predicted_yes)

    @property
    def recall_ci(self) -> tuple[float, float] | None:
        """95% Wilson interval of the recall (None when the truth has no yes)."""
        return wilson(self.true_yes, self.truth_yes)


def yes_counts(truth: Sequence[str], predicted: Sequence[str], positive: str = YES) -> YesCounts:
    """Precision and recall of ``positive`` with their counts (any other label is "not yes")."""
    return YesCounts(
        true_yes=sum(
            t == positive and p == positive for t, p in zip(truth, predicted, strict=True)
        ),
        predicted_yes=sum(p == positive for p in predicted),
        truth_yes=sum(t == positive for t in truth),
    )


METRICS = ("kappa", "accuracy", "precision", "recall")
"""What :func:`point_metrics` returns and :func:`bootstrap_over_items` gives intervals for."""


def point_metrics(
    truth: Sequence[str], predicted: Sequence[str], positive: str = YES
) -> dict[str, float | None]:
    """kappa, accuracy, precision and recall of ``positive`` for one set of label pairs."""
    counts = yes_counts(truth, predicted, positive)
    agree = sum(t == p for t, p in zip(truth, predicted, strict=True))
    return {
        "kappa": cohen_kappa(list(truth), list(predicted)),
        "accuracy": _ratio(agree, len(truth)),
        "precision": counts.precision,
        "recall": counts.recall,
    }


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (``q`` in [0, 1]) of already sorted values."""
    position = q * (len(sorted_values) - 1)
    low = int(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def bootstrap_over_items(
    truth: Sequence[str],
    predicted: Sequence[str],
    *,
    resamples: int = BOOTSTRAP_ITERS,
    seed: int = BOOTSTRAP_SEED,
    level: float = LEVEL,
) -> dict[str, list[float] | None]:
    """Percentile bootstrap intervals of :func:`point_metrics` over items (seeded).

    Items are drawn with replacement (``random.Random(seed).choices``). A resample
    where a metric is undefined (no ``yes`` said, kappa with one label only) does
    not count for that metric; a metric defined in fewer than half of the
    resamples gets no interval (``None``).
    """
    n = len(truth)
    if n == 0 or resamples < 1:
        return dict.fromkeys(METRICS)
    rng = random.Random(seed)
    values: dict[str, list[float]] = {m: [] for m in METRICS}
    indices = range(n)
    for _ in range(resamples):
        picks = rng.choices(indices, k=n)
        drawn = point_metrics([truth[i] for i in picks], [predicted[i] for i in picks])
        for name, value in drawn.items():
            if value is not None:
                values[name].append(value)
    tail = (1 - level) / 2
    out: dict[str, list[float] | None] = {}
    for name in METRICS:
        got = sorted(values[name])
        out[name] = (
            [percentile(got, tail), percentile(got, 1 - tail)]
            if len(got) >= resamples / 2
            else None
        )
    return out


def per_class(
    truth: Sequence[str], predicted: Sequence[str], labels: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Per class of a multi-class judge: precision and recall with 95% Wilson intervals and counts.

    Any predicted label outside ``labels`` (invalid, error) is wrong for every class.
    """
    out: dict[str, dict[str, Any]] = {}
    for label in labels:
        c = yes_counts(truth, predicted, positive=label)
        out[label] = {
            "gold": c.truth_yes,
            "said": c.predicted_yes,
            "agree": c.true_yes,
            "precision": c.precision,
            "precision_ci": list(c.precision_ci) if c.precision_ci else None,
            "recall": c.recall,
            "recall_ci": list(c.recall_ci) if c.recall_ci else None,
        }
    return out


def bootstrap_kappa(
    truth: Sequence[str],
    predicted: Sequence[str],
    *,
    resamples: int = BOOTSTRAP_ITERS,
    seed: int = BOOTSTRAP_SEED,
    level: float = LEVEL,
) -> list[float] | None:
    """Percentile bootstrap interval of Cohen's kappa over items (any number of labels, seeded)."""
    n = len(truth)
    if n == 0 or resamples < 1:
        return None
    rng = random.Random(seed)
    got = []
    for _ in range(resamples):
        picks = rng.choices(range(n), k=n)
        value = cohen_kappa([truth[i] for i in picks], [predicted[i] for i in picks])
        if value is not None:
            got.append(value)
    if len(got) < resamples / 2:
        return None
    got.sort()
    tail = (1 - level) / 2
    return [percentile(got, tail), percentile(got, 1 - tail)]


# --------------------------------------------------------------------------- prediction-powered


@dataclass(frozen=True)
class PPIStratum:
    """One stratum of a prediction-powered estimate (one run at one k).

    ``f_all`` holds the judge's 0/1 verdict ("corrected") on ALL ``N`` paths of
    the stratum and ``rows_all`` the row id of each (paths of one row, at any k
    and in any run, are correlated; the variance treats rows as the independent
    unit). ``y`` are the careful labels of a uniform random sample of ``n`` of
    those paths and ``f`` the judge's verdicts on the same paths. ``sample_key``
    names the sampled paths (e.g. ``(k, row, path)`` per item, in order):
    strata with the SAME ``sample_key`` were labelled on the same paths (a
    paired sample) and their labelled terms are combined path by path.
    Strata with the same ``group`` (one run's eight k) share one power-tuning
    weight, estimated from all their labels together: a weight tuned on the
    ~20 labels of one k is too noisy, and its noise biases the interval (the
    simulation tests saw 85% coverage instead of 95%).
    """

    f_all: Any
    rows_all: Any
    y: Any
    f: Any
    sample_key: tuple[Any, ...] | None = None
    group: Any = None


def ppi_lambda(y: Any, f: Any, f_all: Any) -> float:
    """PPI++'s power-tuning weight: Cov(y, f) / ((1 + n/N) Var(f)), clipped to [0, 1].

    Var(f) is taken over all N judged paths (the labelled ones among them);
    0 when the judge says one thing throughout or fewer than two labels exist.
    """
    import numpy as np

    y, f, f_all = (np.asarray(a, dtype=float) for a in (y, f, f_all))
    n, big_n = len(y), len(f_all)
    if n < 2 or big_n < 2:
        return 0.0
    var_f = float(np.var(f_all, ddof=1))
    if var_f <= 0:
        return 0.0
    cov = float(np.cov(y, f, ddof=1)[0, 1])
    return float(min(1.0, max(0.0, cov / ((1.0 + n / big_n) * var_f))))


def ppi_combination(
    strata: Sequence[PPIStratum],
    weights: Sequence[float],
    *,
    lam: float | None = None,
    level: float = LEVEL,
) -> dict[str, Any]:
    """Prediction-powered estimate of ``sum_j weights[j] * theta_j`` with a CLT interval.

    theta_j is the share of truly corrected paths in stratum j. Per stratum
    (PPI++, Angelopoulos, Duchi and Zrnic 2023, power-tuned mean estimation)::

        theta_j = mean_n(y) + lam_j * (mean_N(f) - mean_n(f))

    with ``lam_j`` from :func:`ppi_lambda` (``lam=1`` forces plain PPI,
    Angelopoulos et al. 2023: ``mean_N(f) + mean_n(y - f)``; ``lam=0`` is the
    labels alone). The estimate is unbiased for any fixed lam whatever the
    judge's errors; the judge only narrows the interval. Its variance is the
    sum of the two terms' variances:

    - the judged term ``sum_j w_j lam_j mean_N(f_j)``, as a sum over ROWS of
      each row's contribution (rows independent; the eight k and the two runs of
      a before/after pair share rows), ``R * Var_rows(g)``; for one stratum with
      one path per row this is the paper's ``lam^2 Var(f) / N``;
    - the labelled term ``sum_j w_j mean_n(y - lam_j f)``: independent samples
      add ``w_j^2 Var(y - lam_j f) / n_j``; strata sharing a ``sample_key``
      (the same paths labelled in both runs) add ``Var(sum_j w_j (y - lam_j f)) / n``
      over their shared paths (the paired difference).

    N includes the labelled paths (the judge ran on every path); with n << N
    the dependence this adds is negligible (the simulation tests check the
    coverage). Written here rather than taken from ``ppi-python``, the authors'
    reference code, whose dependencies (numba, statsmodels, gdown) are too heavy
    for this package.
    """
    import numpy as np

    if len(strata) != len(weights) or not strata:
        raise ValueError("one weight per stratum, at least one stratum")
    tuned: dict[Any, list[int]] = {}
    for j, s in enumerate(strata):
        if len(s.y) != len(s.f):
            raise ValueError("labels and judge verdicts of a sample differ in length")
        if len(s.y) == 0:
            raise ValueError("a stratum has no labelled path")
        tuned.setdefault(("j", j) if s.group is None else ("g", s.group), []).append(j)
    lams = [0.0] * len(strata)
    for members in tuned.values():
        if lam is None:
            pooled = [
                np.concatenate([np.asarray(getattr(strata[j], a), float) for j in members])
                for a in ("y", "f", "f_all")
            ]
            value = ppi_lambda(*pooled)
        else:
            value = float(lam)
        for j in members:
            lams[j] = value

    estimate = 0.0
    # judged term: per-row contributions
    all_rows = np.concatenate([np.asarray(s.rows_all) for s in strata])
    if all_rows.dtype.kind not in "iu":  # ids of mixed types compare as text
        all_rows = all_rows.astype(str)
    _, codes = np.unique(all_rows, return_inverse=True)
    contribution = np.zeros(int(codes.max()) + 1 if len(codes) else 0)
    start = 0
    for s, w, lj in zip(strata, weights, lams, strict=True):
        f_all = np.asarray(s.f_all, dtype=float)
        stop = start + len(f_all)
        if len(f_all):
            np.add.at(contribution, codes[start:stop], w * lj * f_all / len(f_all))
            estimate += w * lj * float(f_all.mean())
        start = stop
    n_rows = len(contribution)
    var_judged = n_rows * float(np.var(contribution, ddof=1)) if n_rows > 1 else 0.0

    # labelled term: independent strata add, strata with one sample_key pair path by path
    groups: dict[Any, list[int]] = {}
    for j, s in enumerate(strata):
        groups.setdefault(
            ("key", s.sample_key) if s.sample_key is not None else ("j", j), []
        ).append(j)
    var_labelled = 0.0
    for members in groups.values():
        n = len(strata[members[0]].y)
        if any(len(strata[j].y) != n for j in members):
            raise ValueError("strata paired by sample_key have samples of different sizes")
        combined = np.zeros(n)
        for j in members:
            residual = np.asarray(strata[j].y, dtype=float) - lams[j] * np.asarray(
                strata[j].f, dtype=float
            )
            combined += weights[j] * residual
            estimate += weights[j] * float(residual.mean())
        var_labelled += float(np.var(combined, ddof=1)) / n if n > 1 else 0.0

    se = math.sqrt(var_judged + var_labelled)
    z = _normal_quantile(level)
    return {
        "estimate": estimate,
        "se": se,
        "ci": [estimate - z * se, estimate + z * se],
        "lambda": lams,
        "n": [len(s.y) for s in strata],
        "N": [len(s.f_all) for s in strata],
    }


def ppi_mean(
    y: Any, f: Any, f_all: Any, *, lam: float | None = None, level: float = LEVEL
) -> dict[str, Any]:
    """PPI++ estimate of one share (one run, one k) with its CLT interval (paths independent)."""
    stratum = PPIStratum(f_all=f_all, rows_all=list(range(len(f_all))), y=y, f=f)
    return ppi_combination([stratum], [1.0], lam=lam, level=level)


def ppi_half_width(
    n: int,
    big_n: int,
    *,
    corr: float,
    precision: float,
    recall: float,
    level: float = LEVEL,
) -> float:
    """The PPI++ interval half-width n labels buy on a share, for a judge of known quality.

    Assumes a true share ``corr`` and a judge with that precision and recall of
    "yes" (the population values of the terms in :func:`ppi_combination`, at the
    optimal lam): ``z * sqrt(lam^2 Var(f) / N + Var(y - lam f) / n)``. Use the
    judge's observed agreement on a pilot audit, or its gold-set figures.
    """
    if n < 1 or big_n < 1:
        raise ValueError("n and N must be positive")
    p_y = corr
    p_tp = recall * p_y  # P(y = 1, f = 1)
    p_f = p_tp / precision if precision > 0 else 0.0
    var_y, var_f = p_y * (1 - p_y), p_f * (1 - p_f)
    cov = p_tp - p_y * p_f
    lam = 0.0 if var_f <= 0 else min(1.0, max(0.0, cov / ((1 + n / big_n) * var_f)))
    var = lam * lam * var_f / big_n + (var_y - 2 * lam * cov + lam * lam * var_f) / n
    return _normal_quantile(level) * math.sqrt(max(var, 0.0))


def _normal_quantile(level: float) -> float:
    """Two-sided normal quantile of ``level`` (Z95 for 0.95)."""
    if math.isclose(level, LEVEL):
        return Z95
    from statistics import NormalDist

    return NormalDist().inv_cdf(0.5 + level / 2.0)
