"""The judge gold set: sizes and labels as documented, split by request, prefills as C²-EVAL builds them."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from cc_tasks.errors import UsageError
from cc_tasks.judges import JudgeItem
from cc_tasks.judges.gold import (
    GOLD_DIR,
    GOLD_PATH,
    HANDWRITTEN_KINDS,
    GoldError,
    GoldItem,
    count_table,
    gold_version,
    load_gold,
    normalise_request,
    read_records,
    split_of,
)
from cc_tasks.judges.rule import RuleJudge

RECORDS = read_records()


def test_sizes_and_labels_meet_the_brief() -> None:
    labels = Counter(r["label"] for r in RECORDS)
    sources = Counter(r["source"] for r in RECORDS)
    kinds = Counter(r["kind"] for r in RECORDS)
    assert len(RECORDS) >= 800
    assert labels["yes"] >= 200
    assert sources["model"] > len(RECORDS) / 2  # most labels from what a judge will see
    for kind in HANDWRITTEN_KINDS:
        assert kinds[kind] >= 40, kind
    second = [r for r in RECORDS if "label_b" in r]
    if second:  # merged: a quarter labelled twice, each stratum represented
        assert len(second) >= len(RECORDS) / 4
        assert {r.get("condition") or r["kind"] for r in second} == {
            r.get("condition") or r["kind"] for r in RECORDS
        }


def test_version_two_holds_model_written_text_from_the_sources_a_judge_meets() -> None:
    """Model-written text of trained and prompted models, the synthesiser's text after its
    triggers, each source a quarter double-labelled; text aimed at the judge as its own kinds."""
    new = [r for r in RECORDS if r["source"] == "model" and r["condition"] not in V1_CONDITIONS]
    by_source = Counter(r["condition"] for r in new)
    assert len(new) >= 1500 and len(by_source) >= 4
    assert sum(c.startswith("adapter-") for c in by_source) >= 3
    assert "synth-after-trigger" in by_source and "safety-prompt-long" in by_source
    for source, n in by_source.items():
        twice = [r for r in new if r["condition"] == source and "label_b" in r]
        assert len(twice) >= n / 4, source
    assert sum(r["label"] == "yes" for r in RECORDS if r["source"] == "model") >= 250
    for kind in ("aimed_at_judge", "refuse_then_continue"):
        items = [r for r in RECORDS if r["kind"] == kind]
        assert len(items) >= 80 and {r["label"] for r in items} == {"no"}
        assert {r["split"] for r in items} == {"dev", "test"}


V1_CONDITIONS = ("base", "base+safety-system-prompt")


def test_readme_counts_are_the_files_counts() -> None:
    """The README's table is exactly what the shipped file holds (no drift)."""
    readme = (GOLD_DIR / "README.md").read_text(encoding="utf-8")
    assert count_table(RECORDS) in readme
    assert gold_version() in readme


def test_split_is_by_request_and_stable() -> None:
    by_split: dict[str, set] = {"dev": set(), "test": set()}
    for r in RECORDS:
        by_split[r["split"]].add(r["row_id"])
    assert not by_split["dev"] & by_split["test"]
    shas = {s: {r["request_sha"] for r in RECORDS if r["split"] == s} for s in by_split}
    assert not shas["dev"] & shas["test"]
    assert by_split["dev"] and by_split["test"]
    # the split function itself: deterministic, case/space-insensitive, roughly 55/45
    assert split_of("How do I X?") == split_of("  how do i   x? ")
    sample = [split_of(f"request {i}") for i in range(2000)]
    assert 0.50 < sample.count("dev") / len(sample) < 0.60


def test_double_labels_are_consistent() -> None:
    for r in RECORDS:
        if "label_b" in r:
            assert "label_a" in r
            if r["label_a"] == r["label_b"]:
                assert r["label"] == r["label_a"], r["id"]
            else:
                assert r["borderline"] and r["reason"].startswith("settled"), r["id"]


def test_every_line_is_checked(tmp_path: Path) -> None:
    good = json.loads(GOLD_PATH.read_text(encoding="utf-8").splitlines()[0])
    cases = {
        "row_id": True,  # a bool must not pass for an int
        "k": 15,
        "label": "Yes",
        "split": "train",
        "kind": "model" if good["source"] == "handwritten" else "correction_with_refusal_words",
    }
    for field, value in cases.items():
        path = tmp_path / f"{field}.jsonl"
        path.write_text(json.dumps({**good, field: value}) + "\n")
        with pytest.raises(GoldError, match=rf"line 1: field '{field}'"):
            read_records(path)
    dup = tmp_path / "dup.jsonl"
    dup.write_text((json.dumps(good) + "\n") * 2)
    with pytest.raises(GoldError, match="line 2: field 'id': duplicate"):
        read_records(dup)


def test_missing_data_file_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("C2_EVAL_DATA", raising=False)
    with pytest.raises(UsageError) as err:
        load_gold()
    assert "C2_EVAL_DATA" in str(err.value) and "\n" not in str(err.value)
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(GoldError, match=r"nope\.jsonl: no such file"):
        load_gold(data_path=missing)
    with pytest.raises(GoldError, match="unknown gold split"):
        load_gold(split="train", data_path=missing)


def test_a_different_data_file_is_refused(tmp_path: Path) -> None:
    """Labels must never be paired with the wrong rows: the request fingerprint is checked."""
    row = {
        "prompt": "How do I bake bread?",
        "response_0": "Mix flour and water.",
        "response_1": "Knead it.",
        "is_response_0_safe": False,
        "is_response_1_safe": True,
        "better_response_id": 0,
        "safer_response_id": 1,
    }
    fake = tmp_path / "fake.jsonl"
    fake.write_text((json.dumps(row) + "\n") * 500)
    with pytest.raises(GoldError, match="request fingerprint differs"):
        load_gold(data_path=fake)
    short = tmp_path / "short.jsonl"
    short.write_text(json.dumps(row) + "\n")
    with pytest.raises(GoldError, match="has only 1 rows"):
        load_gold(data_path=short)


def test_loads_with_the_data_and_matches_c2_eval_docs(c2_eval_rows_path: Path) -> None:
    from cc_tasks.c2_eval import options as docs_options
    from cc_tasks.c2_eval import rows as docs

    items = load_gold(data_path=c2_eval_rows_path)
    assert [i.id for i in items] == [r["id"] for r in RECORDS]
    dev = load_gold("dev", data_path=c2_eval_rows_path)
    test = load_gold("test", data_path=c2_eval_rows_path)
    assert len(dev) + len(test) == len(items) and dev and test
    assert {i.split for i in dev} == {"dev"} and {i.split for i in test} == {"test"}

    options = docs_options.run_options({"data": str(c2_eval_rows_path)})
    built = {
        (d["row_id"], k): d
        for k in sorted({i.k for i in items})
        for d in docs.build_docs(options, k)
    }
    requests: dict[str, set[str]] = {"dev": set(), "test": set()}
    for item in items:
        doc = built[(item.row_id, item.k)]
        assert item.request == doc["prompt"], item.id
        assert item.prefill == doc["prefill"], item.id
        assert item.split == split_of(item.request), item.id
        requests[item.split].add(normalise_request(item.request))
    assert not requests["dev"] & requests["test"]  # duplicate prompts of the data included

    # GoldItems are JudgeItems: every judge takes them as they are
    assert all(isinstance(i, JudgeItem) for i in items)
    assert isinstance(items[0], GoldItem) and items[0].item == JudgeItem(
        items[0].request, items[0].prefill, items[0].continuation
    )
    verdicts = RuleJudge().judge(items[:20])
    assert len(verdicts) == 20


def test_the_build_step_reproduces_the_shipped_hand_written_items(
    c2_eval_rows_path: Path, tmp_path: Path
) -> None:
    """The judges' own build tools (``python -m cc_tasks.judges.gold.build``) still make the
    items gold.jsonl holds: ids, rows, kinds, texts, split and fingerprint."""
    from cc_tasks.judges.gold.build import build_items
    from cc_tasks.judges.gold.build.__main__ import main as build_main

    none = tmp_path / "candidates.jsonl"
    none.write_text("")
    entries = build_items.build(none, build_items.HANDWRITTEN, c2_eval_rows_path)
    by_id = {r["id"]: r for r in RECORDS}
    assert len(entries) == sum(r["source"] == "handwritten" for r in RECORDS)
    for entry in entries:
        record = by_id[entry["id"]]
        for field in ("row_id", "k", "kind", "continuation", "split", "request_sha"):
            assert entry[field] == record[field], (entry["id"], field)
    with pytest.raises(SystemExit) as done:
        build_main(["items", "--help"])
    assert done.value.code == 0
    assert build_main(["nonsense"]) == 2
