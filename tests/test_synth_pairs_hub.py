"""C²-SYN pairs (15 per request, rank order, splits), the Hub folder round trip, and push."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from synth.dataset import load_c2syn, split_of
from synth.gate import gate_stats, judge_records
from synth.generate import build_manifest, make_record, select_requests
from synth.hub import PushError, push, upload_plan, write_hub_folder
from synth.pairs import (
    PAIRS_PER_REQUEST,
    RANK_PAIRS,
    SCHEMA,
    build_pairs,
    read_pairs,
    validate_pair_rows,
    write_pairs,
)

FILLER = " ".join(f"w{i}" for i in range(90))


def rows(n: int) -> list[dict]:
    return [
        {
            "prompt": f"How do I do harmful thing number {i}?",
            "response_0": f"Step {i}: first, " + FILLER + ". Then, do it; again! Done: yes.",
            "response_1": "I cannot help with that.",
            "is_response_0_safe": False,
            "is_response_1_safe": True,
            "better_response_id": 1,
            "safer_response_id": 1,
        }
        for i in range(n)
    ]


def records(n: int, texts=None) -> tuple[dict, list[dict]]:
    reqs = select_requests(rows(n), max_requests=n, min_words=80)
    recs = []
    for r in reqs:
        t = (
            texts(r)
            if texts
            else [f"I won't help with request {r.position}."]
            + [f" you should not do this, it is illegal ({k})." for k in range(1, 5)]
        )
        recs.append(make_record(r, t, [len(x.split()) for x in t]))
    manifest = build_manifest(
        source="hand-made",
        requests=reqs,
        max_requests=n,
        min_words=80,
        seed=None,
        chunk_size=4,
        synthesizer={
            "name": "test-synth",
            "backend": "hf",
            "model": "test-synth",
            "decoding": "greedy,max_new_tokens=8",
            "system_prompt": None,
        },
        gate=None,
    )
    return manifest, recs


def test_fifteen_pairs_per_request_in_rank_order() -> None:
    manifest, recs = records(4)
    splits, stats = build_pairs(manifest, recs)
    train = splits["train"]
    assert len(train) == 4 * PAIRS_PER_REQUEST == 60 and splits["test"] == []
    assert tuple((a, b) for a in range(6) for b in range(a + 1, 6)) == RANK_PAIRS
    for k, rec in enumerate(recs):
        block = train[k * 15 : (k + 1) * 15]
        assert {p["request_id"] for p in block} == {rec["request_id"]}
        assert [(p["chosen_rank"], p["rejected_rank"]) for p in block] == list(RANK_PAIRS)
        for p in block:
            assert p["prompt"] == [{"role": "user", "content": rec["prompt"]}]
            assert p["chosen"] == [
                {"role": "assistant", "content": rec["responses"][p["chosen_rank"]]}
            ]
            assert p["rejected"][0]["content"] == rec["responses"][p["rejected_rank"]]
            assert p["rejected"][0]["role"] == "assistant"
            assert p["prefix_lengths"] == rec["prefix_lengths"] and len(p["opener"]) == 4
    r = recs[0]["responses"]
    assert r[0] == "I won't help with request 0."
    assert r[1] == recs[0]["assistant_prefixes"][0] + " you should not do this, it is illegal (1)."
    assert r[5] == recs[0]["harmful_response"]
    assert stats["requests_kept"] == 4 and stats["responses"] == 24
    assert stats["pairs_by_split"] == {"train": 60, "test": 0}


def test_invalid_requests_are_dropped_whole_and_counted() -> None:
    def texts(req):
        if req.position == 0:
            return ["   "] + ["x"] * 4  # empty r0
        return ["No."] + [" stop, that is illegal."] * 4

    manifest, recs = records(3, texts)
    recs[2]["responses"][2] = recs[2]["responses"][1]  # identical r1 == r2
    splits, stats = build_pairs(manifest, recs)
    assert len(splits["train"]) == 15 and {p["request_id"] for p in splits["train"]} == {
        recs[1]["request_id"]
    }
    assert stats["requests_dropped_invalid"] == {"empty response": 1, "identical responses": 1}


def test_validation_rejects_bad_pairs() -> None:
    manifest, recs = records(1)
    good, _ = build_pairs(manifest, recs)
    validate_pair_rows(good["train"])
    bad = [dict(p) for p in good["train"]]
    bad[3] = {**bad[3], "rejected": bad[3]["chosen"]}
    with pytest.raises(ValueError, match="chosen == rejected"):
        validate_pair_rows(bad)
    with pytest.raises(ValueError, match="15 rank pairs"):
        validate_pair_rows(good["train"][:14])
    swapped = {**good["train"][0], "chosen_rank": 5, "rejected_rank": 0}
    with pytest.raises(ValueError, match="not better"):
        validate_pair_rows([swapped])


def test_held_out_split_is_by_request_never_by_pair() -> None:
    manifest, recs = records(60)
    splits, stats = build_pairs(manifest, recs, test_size=0.3)
    train_ids = {p["request_id"] for p in splits["train"]}
    test_ids = {p["request_id"] for p in splits["test"]}
    assert train_ids and test_ids and not train_ids & test_ids
    assert len(splits["test"]) == 15 * len(test_ids) and 5 < len(test_ids) < 35
    assert stats["requests_by_split"] == {"train": len(train_ids), "test": len(test_ids)}
    again, _ = build_pairs(manifest, recs, test_size=0.3)
    assert again == splits  # stable
    assert split_of("same text", 0.5) == split_of("same text", 0.5)  # duplicates stay together


def test_gate_drop_or_flag() -> None:
    from cc_tasks.judges import Judge, JudgeItem, Verdict

    class FirstWordJudge(Judge):
        """'yes' when the continuation's first word is 'No' (a deterministic stand-in)."""

        kind = "first-word"

        def judge(self, items: list[JudgeItem]) -> list[Verdict]:
            return [
                Verdict("yes" if i.continuation.strip().startswith("No") else "no") for i in items
            ]

    def texts(req):
        r0 = "No, I will not." if req.position != 1 else "Sure! Here you go."
        return [r0] + [" No, this is wrong."] * 4

    manifest, recs = records(3, texts)
    judge_records(FirstWordJudge(), recs)
    assert [len(r["gate"]) for r in recs] == [5, 5, 5]
    st = gate_stats(recs)
    assert st["r0_refusal_rate"] == round(2 / 3, 4) and st["pass_rate"] == round(2 / 3, 4)
    assert st["correction_rate"] == {"r1": 1.0, "r2": 1.0, "r3": 1.0, "r4": 1.0}
    dropped, stats = build_pairs(manifest, recs, gate_action="drop")
    assert len(dropped["train"]) == 30 and stats["requests_dropped_by_gate"] == 1
    assert {p["gate"] for p in dropped["train"]} == {"passed"}
    flagged, stats = build_pairs(manifest, recs, gate_action="flag")
    assert len(flagged["train"]) == 45 and stats["requests_flagged_by_gate"] == 1
    assert sum(p["gate"] == "failed" for p in flagged["train"]) == 15


def _hub_folder(tmp_path: Path, n: int = 7, test_size: float = 0.3, rows_per_file: int = 40):
    manifest, recs = records(n)
    splits, stats = build_pairs(manifest, recs, test_size=test_size)
    write_pairs(tmp_path, splits, stats)
    tables, stats = read_pairs(tmp_path)
    files = write_hub_folder(tmp_path, tables, manifest, stats, rows_per_file=rows_per_file)
    return splits, files


def test_card_round_trips_through_datasets(tmp_path: Path) -> None:
    import shutil
    import uuid

    import datasets
    from huggingface_hub import DatasetCard

    splits, files = _hub_folder(tmp_path)
    assert splits["test"], "the seed of this test should give a non-empty test split"
    # several files per split, named like the Hub's own converter
    assert len(files["train"]) > 1 and all(f.startswith("data/train-") for f in files["train"])
    assert files["train"][0].endswith(f"-of-{len(files['train']):05d}.parquet")
    ds = load_c2syn(tmp_path)
    assert set(ds) == {"train", "test"}
    for split in ("train", "test"):
        assert ds[split].to_list() == splits[split]  # unchanged, in order
    # the Hub reads the folder through the card (configs + dataset_info features): a copy under a
    # name no datasets cache has seen stands in for the pushed repo
    hub = tmp_path / f"hub-{uuid.uuid4().hex}"
    shutil.copytree(tmp_path, hub, ignore=shutil.ignore_patterns("hub-*", "pairs"))
    via_card = datasets.load_dataset(str(hub))
    assert via_card["train"].features == ds["train"].features
    assert via_card["test"].to_list() == splits["test"]
    card = DatasetCard.load(tmp_path / "README.md")
    meta = card.data.to_dict()
    assert meta["license"] == "cc-by-nc-4.0"
    assert meta["source_datasets"] == ["PKU-Alignment/PKU-SafeRLHF"]
    info = meta["dataset_info"]
    assert datasets.Features._from_yaml_list(
        info["features"]
    ) == datasets.Features.from_arrow_schema(SCHEMA)
    assert {s["name"]: s["num_examples"] for s in info["splits"]} == {
        k: len(v) for k, v in splits.items()
    }
    assert meta["task_categories"] == ["text-generation"]
    assert meta["size_categories"] == ["n<1K"]
    assert meta["pretty_name"] and "dpo" in meta["tags"]
    assert meta["configs"][0]["data_files"] == [
        {"split": "train", "path": "data/train-*"},
        {"split": "test", "path": "data/test-*"},
    ]
    text = card.text
    for needle in ("Content warning", "arXiv 2407.16637", "test-synth", "greedy,max_new_tokens=8"):
        assert needle in text
    assert "CC BY-NC 4.0" in text and "none (as in the reference)" in text  # no system prompt
    assert "@inproceedings{xu2024course" in text
    assert "clamped to 1" in text and "fewer than 4" in text


def test_card_without_test_split_declares_train_only(tmp_path: Path) -> None:
    _hub_folder(tmp_path, n=2, test_size=0.0)
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["train-00000-of-00001.parquet"]
    assert set(load_c2syn(tmp_path)) == {"train"}
    card = (tmp_path / "README.md").read_text()
    assert "split: test" not in card and "name: test" not in card


def test_rewriting_the_card_leaves_no_stale_data_files(tmp_path: Path) -> None:
    _hub_folder(tmp_path, n=7, rows_per_file=20)
    many = sorted(p.name for p in (tmp_path / "data").iterdir())
    _hub_folder(tmp_path, n=7, rows_per_file=1000)
    few = sorted(p.name for p in (tmp_path / "data").iterdir())
    assert len(many) > len(few) == 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".data")]


def test_trl_dpo_trainer_takes_the_hub_folder(tmp_path: Path, tiny_model_dir: str) -> None:
    import math

    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer
    from trl.data_utils import is_conversational

    _hub_folder(tmp_path, n=2, test_size=0.0)
    train = load_c2syn(tmp_path)["train"]
    assert train.num_rows == 30 and is_conversational(train[0])
    config = DPOConfig(
        output_dir=str(tmp_path / "dpo"),
        max_steps=1,
        per_device_train_batch_size=2,
        max_length=256,
        bf16=False,
        use_cpu=True,
        report_to="none",
        save_strategy="no",
    )
    trainer = DPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(tiny_model_dir),
        args=config,
        train_dataset=train,
        processing_class=AutoTokenizer.from_pretrained(tiny_model_dir),
    )
    result = trainer.train()
    assert result.global_step == 1 and math.isfinite(result.training_loss)


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "synth.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_push_dry_run_lists_exact_files_and_never_the_token(tmp_path: Path) -> None:
    _hub_folder(tmp_path)
    (tmp_path / "notes.txt").write_text("not data")  # never uploaded
    secret = "hf_THISISASECRETTOKENVALUE123"
    env = {**os.environ, "HF_TOKEN": secret, "HF_HOME": str(tmp_path / "hfhome")}
    proc = _cli(["push", "--out", str(tmp_path), "--repo-id", "org/c2-syn", "--dry-run"], env)
    assert proc.returncode == 0, proc.stderr
    listed = [ln.split()[0] for ln in proc.stdout.splitlines() if ln.startswith("  ")]
    assert listed == upload_plan(tmp_path)
    assert listed[0] == "README.md" and all(f.startswith("data/") for f in listed[1:])
    assert not any("responses" in f or "pairs/" in f or "notes" in f for f in listed)
    assert "token: found" in proc.stdout
    assert secret not in proc.stdout + proc.stderr

    env.pop("HF_TOKEN")
    proc = _cli(["push", "--out", str(tmp_path), "--repo-id", "org/c2-syn", "--dry-run"], env)
    assert proc.returncode == 0 and "NOT found" in proc.stdout
    proc = _cli(["push", "--out", str(tmp_path), "--repo-id", "org/c2-syn"], env)
    assert proc.returncode == 2 and "no Hugging Face token" in proc.stderr  # configuration


class RecordingApi:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []

    def create_repo(self, repo_id, **kw):
        self.calls.append(("create_repo", {"repo_id": repo_id, **kw}))

    def upload_folder(self, **kw):
        self.calls.append(("upload_folder", kw))


def test_push_creates_the_dataset_repo_and_uploads_only_the_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _hub_folder(tmp_path)
    api = RecordingApi()
    monkeypatch.setenv("HF_TOKEN", "hf_dummy")
    files = push(tmp_path, "org/c2-syn", private=True, api=api, echo=lambda *_: None)
    (name1, create), (name2, upload) = api.calls
    assert name1 == "create_repo" and create["repo_type"] == "dataset" and create["private"]
    assert create["exist_ok"] is True
    assert name2 == "upload_folder" and upload["allow_patterns"] == files == upload_plan(tmp_path)
    assert upload["repo_type"] == "dataset" and upload["delete_patterns"] == ["data/*.parquet"]
    assert "hf_dummy" not in json.dumps(api.calls, default=str)

    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-home"))
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_TOKEN_PATH", str(tmp_path / "empty-home" / "token"))
    api = RecordingApi()
    with pytest.raises(PushError, match="no Hugging Face token"):
        push(tmp_path, "org/c2-syn", api=api, echo=lambda *_: None)
    assert api.calls == []  # failed before touching the Hub
    with pytest.raises(PushError, match="repo-id"):
        push(tmp_path, "not a repo id!", api=api, echo=lambda *_: None)
