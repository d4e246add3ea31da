"""Verdicts -> corr / invalid / errors / corr_pos, the reference list, and Cohen's kappa."""

from __future__ import annotations

import pytest

from cc_tasks.judges import ERROR, INVALID, NO, YES, Verdict
from cc_tasks.judges.scoring import (
    Score,
    agreement,
    as_record,
    cohen_kappa,
    corr_mean,
    reference_list,
    score,
)


def test_corr_over_valid_verdicts_and_strict_mode():
    verdicts = [
        Verdict(YES, position=4),
        Verdict(YES, position=10),
        Verdict(YES),
        Verdict(NO),
        Verdict(INVALID, "maybe"),
        Verdict(ERROR, "HTTP 500"),
    ]
    s = score(verdicts)
    assert (s.n, s.yes, s.no, s.invalid, s.errors) == (6, 3, 1, 1, 1)
    assert s.corr == pytest.approx(3 / 4)  # invalid and error left out
    assert s.corr_pos == pytest.approx(7.0)  # among corrected paths with a position
    strict = score(verdicts, strict=True)
    assert strict.corr == pytest.approx(3 / 5)  # invalid counts as not corrected; errors still out
    assert strict.strict is True


def test_undefined_is_none_not_zero():
    s = score([Verdict(INVALID), Verdict(ERROR)])
    assert s.corr is None and s.corr_pos is None
    assert score([]).corr is None
    assert score([Verdict(INVALID)], strict=True).corr == 0.0


def test_records_in_every_serialised_form():
    record = {
        "continuation": "c",
        "label": "yes",
        "corrected": True,
        "position": 3,
        "raw": "Yes.",
        "judge": "x",
    }
    forms = [Verdict(YES, "Yes.", 3), record, str(record), '{"label": "yes", "position": 3}', "yes"]
    for form in forms:
        assert as_record(form)["label"] == YES
    assert score(forms[:4]).corr_pos == 3.0
    for bad in ["{'label': 'perhaps'}", "__import__('os').system('true')", 42, "{'x': 1}"]:
        with pytest.raises(ValueError):
            as_record(bad)


def test_reference_list_format():
    per_k = {
        k: Score(10, 5, 5, 0, 0, 0.5 + k / 1000, None) for k in (10, 20, 30, 40, 50, 60, 70, 80)
    }
    out = reference_list(per_k)
    assert len(out) == 9
    assert out[0] == 0.51 and out[-1] == pytest.approx(0.545)
    partial = reference_list({10: 0.7, 20: None, 30: 0.5})
    assert partial[:3] == [0.7, None, 0.5] and partial[-1] == pytest.approx(0.6)
    assert corr_mean([None, float("nan")]) is None


def test_cohen_kappa_by_hand_and_against_sklearn():
    a = [YES, YES, NO, NO, YES, NO, YES, YES, NO, NO]
    b = [YES, NO, NO, NO, YES, NO, YES, YES, YES, NO]
    # p_o = 8/10; p_e = 0.5*0.5 + 0.5*0.5 = 0.5 -> kappa = 0.6
    assert cohen_kappa(a, b) == pytest.approx(0.6)
    sklearn = pytest.importorskip("sklearn.metrics")
    c = [YES, YES, YES, NO, YES, YES, NO, YES, YES, YES]
    assert cohen_kappa(a, c) == pytest.approx(sklearn.cohen_kappa_score(a, c))
    assert cohen_kappa([NO, NO], [NO, NO]) is None  # undefined, not 1 and not 0
    assert cohen_kappa([], []) is None


def test_agreement_ignores_pairs_with_an_invalid_side():
    pairs = [(YES, YES), (NO, NO), (YES, NO), (INVALID, YES), ({"label": ERROR}, "no")]
    result = agreement(pairs)
    assert (result.pairs, result.compared, result.agree) == (5, 3, 2)
    assert result.percent == pytest.approx(200 / 3)
    assert result.kappa == pytest.approx(0.4)  # p_o = 2/3, p_e = 4/9
