"""Every statistic (cc_tasks.stats), pinned by hand-computed cases and by the numbers the
resampling gave before it moved here (same seeds, same resampling order)."""

from __future__ import annotations

import math

import pytest

from cc_tasks.stats import (
    Z95,
    bootstrap_mean_over_rows,
    bootstrap_over_items,
    cohen_kappa,
    confusion,
    mean_of_rates,
    paired_difference,
    paired_share_difference,
    percentile,
    point_metrics,
    wilson,
    wilson_interval,
    yes_counts,
)


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


# --------------------------------------------------------------------------- labels vs labels
GOLD = ["yes", "yes", "yes", "yes", "no", "no", "no", "no", "no", "no"]
SAID = ["yes", "yes", "yes", "no", "yes", "no", "no", "no", "no", "invalid"]


def test_cohen_kappa_by_hand() -> None:
    # p_o = 3/4; marginals a: yes 1/2, no 1/2; b: yes 1/4, no 3/4 -> p_e = 1/8 + 3/8 = 1/2
    assert cohen_kappa(["yes", "yes", "no", "no"], ["yes", "no", "no", "no"]) == pytest.approx(0.5)
    # p_o = 0.7; p_e = 0.4*0.4 (yes) + 0.6*0.5 (no) + 0*0.1 (invalid) = 0.46
    assert cohen_kappa(GOLD, SAID) == pytest.approx((0.7 - 0.46) / (1 - 0.46))
    assert cohen_kappa(["no", "no"], ["no", "no"]) is None  # undefined, not 1 and not 0
    assert cohen_kappa([], []) is None
    with pytest.raises(ValueError, match="length"):
        cohen_kappa(["yes"], [])


def test_kappa_keeps_its_old_import_path() -> None:
    from cc_tasks.judges import scoring

    assert scoring.cohen_kappa is cohen_kappa


def test_confusion_lists_every_label() -> None:
    table = confusion(GOLD, SAID, ("yes", "no"), ("yes", "no", "invalid", "error"))
    assert table == {
        "yes": {"yes": 3, "no": 1, "invalid": 0, "error": 0},
        "no": {"yes": 1, "no": 4, "invalid": 1, "error": 0},
    }


def test_precision_and_recall_of_yes_by_hand() -> None:
    # truth yes, yes, no, no; predicted yes, invalid, yes, no: 1 both-yes of 2 said, of 2 true
    counts = yes_counts(["yes", "yes", "no", "no"], ["yes", "invalid", "yes", "no"])
    assert (counts.true_yes, counts.predicted_yes, counts.truth_yes) == (1, 2, 2)
    assert counts.precision == 0.5 and counts.recall == 0.5
    assert counts.precision_ci == wilson(1, 2) and counts.recall_ci == wilson(1, 2)
    none = yes_counts(["no"], ["no"])
    assert none.precision is None and none.recall is None and none.precision_ci is None
    metrics = point_metrics(GOLD, SAID)
    assert metrics["accuracy"] == pytest.approx(0.7)
    assert metrics["precision"] == pytest.approx(0.75) and metrics["recall"] == pytest.approx(0.75)


def test_percentile_interpolates() -> None:
    assert percentile([0.0, 1.0, 2.0, 3.0, 4.0], 0.25) == 1.0
    assert percentile([0.0, 1.0, 2.0, 3.0, 4.0], 0.1) == pytest.approx(0.4)
    assert percentile([5.0], 0.975) == 5.0


def test_item_bootstrap_gives_the_numbers_it_gave_before_the_move() -> None:
    cis = bootstrap_over_items(GOLD, SAID, resamples=200, seed=0)
    assert cis == {
        "kappa": pytest.approx([-0.09193825042881627, 1.0], abs=1e-12),
        "accuracy": pytest.approx([0.4, 1.0], abs=1e-12),
        "precision": pytest.approx([0.25, 1.0], abs=1e-12),
        "recall": pytest.approx([0.25, 1.0], abs=1e-12),
    }
    assert bootstrap_over_items(GOLD, GOLD, resamples=50)["accuracy"] == [1.0, 1.0]
    assert bootstrap_over_items([], []) == dict.fromkeys(
        ("kappa", "accuracy", "precision", "recall")
    )


# --------------------------------------------------------------------------- two runs, paired


def test_paired_difference_of_two_rows_by_hand() -> None:
    # One k, rows a and b; after corrects a only, before neither. A draw of 2 rows is (a, a)
    # with p 1/4 (difference 1), (a, b) with p 1/2 (0.5), (b, b) with p 1/4 (0): mean 0.5,
    # variance 1/4 * 1/4 + 1/4 * 1/4 = 1/8, and the 95% interval spans [0, 1].
    before = {10: {"a": (0, 1), "b": (0, 1)}}
    after = {10: {"a": (1, 1), "b": (0, 1)}}
    result = paired_difference(before, after)
    assert (result["before"], result["after"], result["difference"]) == (0.0, 0.5, 0.5)
    assert result["bootstrap_se"] == pytest.approx(math.sqrt(1 / 8), abs=0.01)
    assert result["ci95"] == [0.0, 1.0] and result["rows"] == 2 and result["ks"] == [10]
    # the value the resampling gave before it moved here (same seed, same draw order)
    assert result["bootstrap_se"] == pytest.approx(0.35715932213886753, abs=1e-12)


def test_row_bootstraps_give_the_numbers_they_gave_before_the_move() -> None:
    rows = [f"r{i}" for i in range(6)]
    before = {k: {r: (int(i % 3 == 0), 1) for i, r in enumerate(rows)} for k in (10, 20)}
    after = {k: {r: (int(i % 2 == 0), 1) for i, r in enumerate(rows)} for k in (10, 20)}
    assert bootstrap_mean_over_rows(after, iters=200) == pytest.approx((1 / 6, 5 / 6), abs=1e-12)
    result = paired_difference(before, after, iters=200)
    assert result["difference"] == pytest.approx(1 / 6)
    assert result["bootstrap_se"] == pytest.approx(0.2829808626407132, abs=1e-12)
    assert result["ci95"] == pytest.approx([-0.33749999999999936, 0.6666666666666667], abs=1e-12)
    with pytest.raises(ValueError, match="different rows"):
        paired_difference({10: {"a": (1, 1)}}, {10: {"b": (1, 1)}}, iters=10)


def test_paired_share_difference_pairs_items_and_follows_a_moving_denominator() -> None:
    # 20 prompts; before refuses the first 2, after the first 6: +0.2. Paired, only the 4
    # prompts that changed vary between draws: se ~ sqrt(0.2 * 0.8 / 20) = 0.089, where two
    # independent samples of 20 would give ~0.11.
    ids = [f"p{i}" for i in range(20)]
    before = {p: (int(i < 2), 1) for i, p in enumerate(ids)}
    after = {p: (int(i < 6), 1) for i, p in enumerate(ids)}
    result = paired_share_difference(before, after, iters=1000)
    assert (result["before"], result["after"]) == (0.1, 0.3)
    assert result["difference"] == pytest.approx(0.2)
    assert result["before_counts"] == [2, 20] and result["after_counts"] == [6, 20]
    assert result["before_ci95"] == pytest.approx(list(wilson(2, 20)))
    assert result["after_ci95"] == pytest.approx(list(wilson(6, 20)))
    assert 0.07 < result["bootstrap_se"] < 0.1 and result["items"] == 20
    assert 0 < result["ci95"][0] < 0.2 < result["ci95"][1]
    # the same answers twice: no difference, no spread
    same = paired_share_difference(before, before, iters=200)
    assert same["difference"] == 0 and same["bootstrap_se"] == 0 and same["ci95"] == [0, 0]
    # a share of a subset (safety talk among compliant answers): the denominators are summed
    talk_b = {"a": (1, 1), "b": (0, 1), "c": (0, 0)}
    talk_a = {"a": (0, 0), "b": (1, 1), "c": (1, 1)}
    talk = paired_share_difference(talk_b, talk_a, iters=200)
    assert (talk["before"], talk["after"]) == (0.5, 1.0) and talk["after_counts"] == [2, 2]
    # nobody complied after: the share and its difference are undefined, not 0
    none = paired_share_difference(talk_b, dict.fromkeys(talk_b, (0, 0)), iters=50)
    assert none["after"] is None and none["difference"] is None and none["ci95"] is None
    assert none["after_ci95"] is None


def test_paired_share_difference_refuses_unpaired_or_impossible_counts() -> None:
    with pytest.raises(ValueError, match="different items"):
        paired_share_difference({"a": (1, 1)}, {"b": (1, 1)})
    with pytest.raises(ValueError, match="no items"):
        paired_share_difference({}, {})
    with pytest.raises(ValueError, match=r"item 'a'.*0 <= k <= n"):
        paired_share_difference({"a": (2, 1)}, {"a": (1, 1)})
