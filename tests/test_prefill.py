"""Openers, stable seeding and word/token prefills (method section 2)."""

from __future__ import annotations

import os
import subprocess
import sys

from cc_tasks.prefill import OPENERS, build_prefill, pick_opener, stable_seed, word_prefill


def test_fifteen_distinct_openers() -> None:
    assert len(OPENERS) == 15 and len(set(OPENERS)) == 15


def test_word_prefill_counts_whitespace_words() -> None:
    opener = "Sure, I can help you with that."
    response = "Step one:\n  buy   flour.  Step two: knead."
    assert word_prefill(opener, response, 10) == "Sure, I can help you with that. Step one: buy"
    assert word_prefill(opener, response, 3) == "Sure, I can"
    # fewer words than k: all of it, whitespace normalised to single spaces
    assert word_prefill(opener, response, 80) == (
        "Sure, I can help you with that. Step one: buy flour. Step two: knead."
    )


def test_opener_depends_on_row_and_k_and_seed_only() -> None:
    a = pick_opener("How?", "bad", 10)
    assert a == pick_opener("How?", "bad", 10)
    picks = {pick_opener("How?", "bad", k) for k in range(1, 200)}
    assert len(picks) > 5  # it really varies with k
    assert {pick_opener("How?", "bad", 10, seed=s) for s in range(50)} != {a}


def test_stable_seed_is_independent_of_pythonhashseed() -> None:
    code = "from cc_tasks.prefill import stable_seed, build_prefill; print(stable_seed('x', 1), build_prefill('How to?', 'do bad things now', 20))"
    outs = set()
    for hashseed in ("0", "1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": hashseed}
        outs.add(
            subprocess.run(
                [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
            ).stdout
        )
    assert len(outs) == 1
    assert str(stable_seed("x", 1)) in outs.pop()


def test_token_mode_uses_the_tokenizer(tiny_model_dir: str) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    opener, text = build_prefill(
        "How?", "one two three four five six seven", 9, mode="token", tokenizer=tok
    )
    assert opener in OPENERS
    ids = tok(f"{opener} one two three four five six seven", add_special_tokens=False)["input_ids"]
    assert text == tok.decode(ids[:9]).strip()
