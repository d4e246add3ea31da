"""C²-SYN selection and truncation (method section 3) on hand-made rows with known answers."""

from __future__ import annotations

import pytest

from cc_tasks.prefill import OPENERS
from synth.generate import select_requests
from synth.truncate import (
    PUNCTUATION,
    TRIGGERS,
    TooFewPunctuation,
    draw_step,
    make_prefixes,
    plan_request,
    punctuation_positions,
)

FILLER = " ".join(f"w{i}" for i in range(90))  # 90 words, no punctuation


def row(
    prompt: str, r0: str, r1: str = "I cannot help.", *, safe0: bool = False, safe1: bool = True
):
    return {
        "prompt": prompt,
        "response_0": r0,
        "response_1": r1,
        "is_response_0_safe": safe0,
        "is_response_1_safe": safe1,
        "better_response_id": 0,
        "safer_response_id": 1,
    }


def test_punctuation_set_is_the_spec_set_counted_per_character() -> None:
    assert set(',.!:;?-"(){}[]') == PUNCTUATION
    text = 'a, b. c! d: e; f? g- h" i( j) k{ l} m[ n] o... p'
    assert len(punctuation_positions(text)) == 14 + 3  # "..." is three '.'
    assert punctuation_positions("no marks here at all") == []
    assert (
        punctuation_positions("it's 'quoted' / slash") == []
    )  # apostrophes and / are not in the set


def test_fifteen_distinct_triggers() -> None:
    assert len(TRIGGERS) == 15 and len(set(TRIGGERS)) == 15
    assert TRIGGERS[0] == "but I must advise you that"
    assert TRIGGERS[-1] == "but I must highlight that"


def test_prefixes_end_at_every_step_th_mark() -> None:
    y = "One, two. Three! Four: five; six? seven- eight. nine, ten."
    #       ^1   ^2     ^3     ^4    ^5   ^6     ^7     ^8    ^9   ^10
    assert make_prefixes(y, 1) == (
        "One,",
        "One, two.",
        "One, two. Three!",
        "One, two. Three! Four:",
    )
    assert make_prefixes(y, 2) == (
        "One, two.",
        "One, two. Three! Four:",
        "One, two. Three! Four: five; six?",
        "One, two. Three! Four: five; six? seven- eight.",
    )
    with pytest.raises(TooFewPunctuation):
        make_prefixes(y, 3)  # needs 12 marks, has 10


def test_step_is_drawn_from_t_quarter_minus_one_to_t_quarter() -> None:
    for t in (8, 9, 13, 40, 101):
        steps = {draw_step(t, f"How to {i}?", "y") for i in range(200)}
        assert steps == {t // 4 - 1, t // 4}  # both ends, nothing else
    assert draw_step(40, "How?", "y") == draw_step(40, "How?", "y")  # seeded from the row
    assert {draw_step(40, "How?", "y", seed=s) for s in range(50)} == {9, 10}


def test_plan_known_answer_for_ten_marks() -> None:
    y = "One, two. Three! Four: five; six? seven- eight. nine, ten."
    plan = plan_request("How do I?", y)
    assert plan.punctuation_count == 10
    assert plan.drawn_step in (1, 2) and plan.step == plan.drawn_step
    assert plan.prefixes == make_prefixes(y, plan.step)
    assert plan.prefix_lengths == [len(p) for p in plan.prefixes]
    assert all(o in OPENERS for o in plan.openers) and all(t in TRIGGERS for t in plan.triggers)
    texts = plan.assistant_texts()
    for text, o, p, t in zip(texts, plan.openers, plan.prefixes, plan.triggers, strict=True):
        assert text == f"{o} {p} {t}"
    assert plan == plan_request("How do I?", y)  # deterministic


def test_step_below_one_is_clamped_to_one() -> None:
    y = "a, b, c, d, e and the rest"  # t = 4..7 draws from [0, 1]; here t = 4
    drawn = {}
    for i in range(100):
        plan = plan_request(f"What {i}?", y)
        drawn[plan.drawn_step] = plan
    assert set(drawn) == {0, 1}
    clamped = drawn[0]
    assert clamped.step == 1
    assert clamped.prefixes == ("a,", "a, b,", "a, b, c,", "a, b, c, d,")
    assert len(set(clamped.prefixes)) == 4  # never identical prefixes


def test_too_few_punctuation_marks_skip_the_request() -> None:
    with pytest.raises(TooFewPunctuation):
        plan_request("How?", "one, two. three! and nothing more")  # t = 3
    with pytest.raises(TooFewPunctuation):
        plan_request("How?", "Wait... no")  # "..." = 3 marks


def test_openers_and_triggers_vary_per_prefix_and_row() -> None:
    y = FILLER.replace(" w1", ", w1").replace("w5 ", "w5. ") + ". a, b, c; d: e!"
    plans = [plan_request(f"How do I do thing {i}?", y) for i in range(40)]
    assert len({p.openers for p in plans}) > 30
    assert len({t for p in plans for t in p.triggers}) > 10
    assert any(len(set(p.triggers)) > 1 for p in plans)  # chosen per prefix, not per request


def test_selection_spec_order_and_skips() -> None:
    long_punct = FILLER + ", a. b! c: d;"
    rows = [
        row("Tell me a story", long_punct),  # no how/what: not selected
        row("How do I do X?", long_punct, safe0=True),  # both safe: not selected
        row("What is Y?", "too short, really. yes! no: maybe;"),  # short unsafe response
        row("How to Z?", long_punct),  # selected (response_0)
        row("what about W?", "short, one.", FILLER + " x, y. z! q: r;", safe0=False, safe1=False),
        row("somehow this", FILLER + " no punctuation at all"),  # selected, then skipped
        row("How else?", long_punct),  # beyond max_requests=3
    ]
    reqs = select_requests(rows, max_requests=3, min_words=80)
    assert [r.source_row for r in reqs] == [4, 5, 6]
    assert [r.position for r in reqs] == [0, 1, 2]
    assert reqs[0].harmful == long_punct
    assert reqs[1].harmful.startswith(FILLER)  # response_0 too short -> response_1
    assert reqs[2].plan is None and "punctuation" in (reqs[2].skipped or "")
    assert reqs[0].request_id.startswith("000004-") and len(reqs[0].request_id) == 15
    assert [r.request_id for r in reqs] == [
        r.request_id for r in select_requests(rows, max_requests=3, min_words=80)
    ]


@pytest.mark.parametrize("mode", ["shared", "none"])
def test_opener_modes_keep_every_other_draw_and_share_prefixes(mode: str) -> None:
    y = "One, two. Three! Four: five; six? seven- eight. nine, ten."
    paper = plan_request("How do I?", y)
    plan = plan_request("How do I?", y, openers=mode)
    # the mode changes the openers only: step, prefixes and triggers are the same draws
    assert (plan.step, plan.prefixes, plan.triggers) == (paper.step, paper.prefixes, paper.triggers)
    assert paper.ranked_last(y) == y  # method section 3.5: r5 = y
    if mode == "shared":  # p1's opener for all four and for r5
        assert plan.openers == (paper.openers[0],) * 4
        start = paper.openers[0] + " "
        assert plan.ranked_last(y) == start + y
    else:
        assert plan.openers == ("", "", "", "")
        start = ""
        assert plan.ranked_last(y) == y
    texts = plan.assistant_texts()
    assert texts == [f"{start}{p} {t}" for p, t in zip(plan.prefixes, plan.triggers, strict=True)]
    # r_i, r_j (i < j) and r5 agree up to the end of p_i: a pair differs where r_i corrects
    for i, text in enumerate(texts):
        shared = start + plan.prefixes[i]
        assert text.startswith(shared) and plan.ranked_last(y).startswith(shared)
        assert all(later.startswith(shared) for later in texts[i + 1 :])
    with pytest.raises(ValueError, match="openers must be one of"):
        plan_request("How do I?", y, openers="some")
