"""Interval arithmetic (cc_tasks.stats), pinned by hand-computed cases."""

from __future__ import annotations

import math

import pytest

from cc_tasks.stats import Z95, bootstrap_mean_over_rows, mean_of_rates, wilson, wilson_interval


def test_wilson_zero_of_three_by_hand() -> None:
    # p = 0: centre = (z²/2n) / (1 + z²/n) = half-width, so [0, z²/(n + z²)]
    low, high = wilson(0, 3)
    assert low == 0.0
    assert high == pytest.approx(Z95**2 / (3 + Z95**2))
    assert high == pytest.approx(0.5615, abs=5e-5)  # where the normal stderr would say 0 ± 0


def test_wilson_five_of_ten_and_symmetry() -> None:
    z2 = Z95**2
    centre = (0.5 + z2 / 20) / (1 + z2 / 10)
    half = Z95 / (1 + z2 / 10) * math.sqrt(0.25 / 10 + z2 / 400)
    assert wilson(5, 10) == pytest.approx((centre - half, centre + half))
    assert wilson(5, 10) == pytest.approx((0.2366, 0.7634), abs=5e-5)
    low, high = wilson(3, 3)
    assert high == 1.0 and low == pytest.approx(1 - Z95**2 / (3 + Z95**2))
    assert wilson(0, 0) is None
    assert wilson_interval(0.2, 20) == wilson(4, 20)
    with pytest.raises(ValueError):
        wilson(4, 3)


def test_bootstrap_keeps_a_rows_k_together() -> None:
    # Two k on four rows: a row that corrects at k=10 never does at k=20 and vice versa.
    # Every resample then has Corr@10 + Corr@20 = 1, so Corr_mean is 0.5 in every draw; a
    # bootstrap that resampled each k on its own rows would spread around 0.5.
    anti = {10: {r: (int(r < 2), 1) for r in range(4)}, 20: {r: (int(r >= 2), 1) for r in range(4)}}
    assert mean_of_rates(anti) == 0.5
    assert bootstrap_mean_over_rows(anti) == pytest.approx((0.5, 0.5))
    same = {10: {r: (int(r < 2), 1) for r in range(4)}, 20: {r: (int(r < 2), 1) for r in range(4)}}
    low, high = bootstrap_mean_over_rows(same)
    assert low < 0.3 and high > 0.7  # the same rows at both k: no cancelling


def test_bootstrap_is_deterministic_and_handles_edges() -> None:
    counts = {k: {r: (int((r * k) % 3 == 0), 1) for r in range(30)} for k in (10, 20, 30)}
    first = bootstrap_mean_over_rows(counts, seed=0)
    assert first == bootstrap_mean_over_rows(counts, seed=0)
    low, high = first
    assert low <= mean_of_rates(counts) <= high
    assert bootstrap_mean_over_rows({10: {"only": (1, 1)}}) == (1.0, 1.0)
    assert bootstrap_mean_over_rows({10: {1: (0, 0)}}) is None  # no valid verdict at all
    assert bootstrap_mean_over_rows({}) is None
