"""The per-run judge audit: the prediction-powered estimator (simulated coverage), ``c2-judge
audit prepare / score / budget`` on a tiny run, and the labelling page in headless Chromium.

The simulated judge is biased both ways (it misses 30% of the corrected paths and calls 5% of
the others corrected); the PPI++ interval must cover the true Corr in 93-97% of 1,000 runs,
where the judge's own (naive) interval is printed for comparison.
"""

from __future__ import annotations

import numpy as np
import pytest

from cc_tasks.stats import PPIStratum, ppi_combination, ppi_half_width, ppi_mean, wilson_interval

SIMS = 1000
MISS, FALSE_YES = 0.30, 0.05
KS8 = (10, 20, 30, 40, 50, 60, 70, 80)


def judge_of(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The biased judge: misses MISS of the true yes, says yes to FALSE_YES of the true no."""
    u = rng.random(y.shape)
    return np.where(y == 1, u >= MISS, u < FALSE_YES).astype(float)


def uniform_sample(rng: np.random.Generator, sims: int, big_n: int, n: int) -> np.ndarray:
    """``sims`` x ``n`` indices: a uniform sample without replacement of n of N, per run."""
    return np.argpartition(rng.random((sims, big_n)), n, axis=1)[:, :n]


# --------------------------------------------------------------------------- estimator


def test_ppi_reduces_to_its_textbook_forms() -> None:
    y = np.array([1, 0, 0, 1, 0, 0, 0, 1, 0, 0], dtype=float)
    f = np.array([1, 0, 1, 0, 0, 0, 0, 1, 0, 0], dtype=float)
    f_all = np.concatenate([f, np.array([1, 0, 0, 0, 1, 0, 0, 0, 0, 0] * 4, dtype=float)])
    plain = ppi_mean(y, f, f_all, lam=1.0)
    # plain PPI: mean_N(f) + mean_n(y - f); variance Var(f)/N + Var(y - f)/n
    assert plain["estimate"] == pytest.approx(f_all.mean() + (y - f).mean())
    se = np.sqrt(np.var(f_all, ddof=1) / len(f_all) + np.var(y - f, ddof=1) / len(y))
    assert plain["se"] == pytest.approx(se)
    labels_only = ppi_mean(y, f, f_all, lam=0.0)
    assert labels_only["estimate"] == pytest.approx(y.mean())
    assert labels_only["se"] == pytest.approx(np.std(y, ddof=1) / np.sqrt(len(y)))
    tuned = ppi_mean(y, f, f_all)
    lam = tuned["lambda"][0]
    cov = np.cov(y, f, ddof=1)[0, 1]
    assert lam == pytest.approx(min(1, max(0, cov / ((1 + 10 / 50) * np.var(f_all, ddof=1)))))
    assert tuned["estimate"] == pytest.approx(y.mean() + lam * (f_all.mean() - f.mean()))


@pytest.mark.parametrize(("n", "true_corr"), [(150, 0.15), (300, 0.15), (200, 0.30)])
def test_ppi_interval_covers_the_true_corr_whatever_the_judge_bias(
    n: int, true_corr: float
) -> None:
    # at a true Corr of 1/7 this judge's two errors cancel on average (its naive interval
    # covers there too); at 0.30 they do not, and the naive interval misses
    rng = np.random.default_rng(1500 + n)
    big_n = 4000
    y = (rng.random((SIMS, big_n)) < true_corr).astype(float)
    f = judge_of(y, rng)
    picks = uniform_sample(rng, SIMS, big_n, n)
    ys, fs = np.take_along_axis(y, picks, 1), np.take_along_axis(f, picks, 1)
    covered = naive = 0
    widths = []
    for i in range(SIMS):
        est = ppi_mean(ys[i], fs[i], f[i])
        covered += est["ci"][0] <= true_corr <= est["ci"][1]
        widths.append(est["ci"][1] - est["ci"][0])
        low, high = wilson_interval(float(f[i].mean()), big_n)
        naive += low <= true_corr <= high
    print(
        f"\nn={n}: PPI++ coverage {covered / SIMS:.3f} (mean width {np.mean(widths):.3f}); "
        f"naive judge Wilson coverage {naive / SIMS:.3f}"
    )
    assert 0.93 <= covered / SIMS <= 0.97
    if true_corr == 0.30:
        assert naive / SIMS < 0.5


def simulate_pair(rng: np.random.Generator, rows: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Before/after labels (rows x 8 k) of the same rows; rows differ in how easily they correct."""
    ease = np.where(rng.random(rows) < 0.5, 0.5, 1.5)[:, None]
    before_rate = np.linspace(0.01, 0.03, len(KS8))
    after_rate = np.linspace(0.05, 0.25, len(KS8))
    u = rng.random((rows, len(KS8)))  # one draw per path: before and after correlate by row
    before = (u < ease * before_rate).astype(float)
    after = (u < ease * after_rate).astype(float)
    return before, after, float(after_rate.mean() - before_rate.mean())


@pytest.mark.parametrize("per_k", [19, 38])
def test_paired_difference_of_corr_mean_covers_the_true_gain(per_k: int) -> None:
    """Two runs on the same 500 rows x 8 k (4,000 paths each); the same per_k rows of each k
    are labelled in both runs (150 or 300 paths per run): the paired PPI++ difference."""
    rng = np.random.default_rng(per_k)
    rows = 500
    row_ids = np.arange(rows)
    covered = covered_mean = naive = 0
    for _ in range(SIMS):
        before, after, gain = simulate_pair(rng, rows)
        f_before, f_after = judge_of(before, rng), judge_of(after, rng)
        strata, weights, singles = [], [], []
        for j, k in enumerate(KS8):
            picked = rng.choice(rows, per_k, replace=False)
            key = tuple((k, int(r)) for r in picked)
            for sign, y, f in ((-1, before, f_before), (1, after, f_after)):
                stratum = PPIStratum(f[:, j], row_ids, y[picked, j], f[picked, j], key, group=sign)
                strata.append(stratum)
                weights.append(sign / len(KS8))
                if sign == 1:
                    singles.append(stratum)
        est = ppi_combination(strata, weights)
        covered += est["ci"][0] <= gain <= est["ci"][1]
        after_mean = ppi_combination(singles, [1 / len(KS8)] * len(KS8))
        true_after = float(np.linspace(0.05, 0.25, len(KS8)).mean())
        covered_mean += after_mean["ci"][0] <= true_after <= after_mean["ci"][1]
        # the naive judge difference: its own Corr_mean gain with a normal interval
        raw = f_after.mean() - f_before.mean()
        se = np.sqrt((f_after.var(0) + f_before.var(0)).sum() / rows) / len(KS8)
        naive += raw - 1.96 * se <= gain <= raw + 1.96 * se
    print(
        f"\n{per_k}/k: paired PPI++ difference coverage {covered / SIMS:.3f}, "
        f"Corr_mean coverage {covered_mean / SIMS:.3f}; naive judge difference {naive / SIMS:.3f}"
    )
    assert 0.93 <= covered / SIMS <= 0.97
    assert 0.93 <= covered_mean / SIMS <= 0.97
    assert naive / SIMS < 0.5


def test_budget_half_width_matches_the_simulated_width() -> None:
    # the judge above at a true Corr of 0.15: precision 0.105 / 0.1475, recall 0.7
    half = ppi_half_width(150, 4000, corr=0.15, precision=0.105 / 0.1475, recall=0.7)
    assert half == pytest.approx(0.087 / 2, abs=0.004)
    assert ppi_half_width(600, 4000, corr=0.15, precision=0.71, recall=0.7) < half
    labels_only = 1.96 * np.sqrt(0.15 * 0.85 / 150)
    assert half <= labels_only + 1e-9
