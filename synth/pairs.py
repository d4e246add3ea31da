"""Stage 2 of C²-SYN: six ranked responses -> all 15 preference pairs per request (method section 3.6).

Ranking, best first: r0 (plain reply) > r1 (corrected after p1) > r2 > r3 > r4
> r5 (the harmful response). Every ordered pair (a better, b worse) is one row in
TRL's conversational preference format::

    prompt   = [{"role": "user", "content": request}]
    chosen   = [{"role": "assistant", "content": r_a}]
    rejected = [{"role": "assistant", "content": r_b}]

plus metadata (see :data:`SCHEMA`). A request whose six responses fail
validation (an empty response, two identical responses) is dropped whole, so
every kept request has exactly 15 pairs. The optional held-out split is drawn
per *request* from a stable hash of the request text
(:func:`synth.dataset.split_of`, which the DPO recipe's ``test_size`` uses too):
a request (and any duplicate of its text) never lands in both splits.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from cc_tasks.files import atomic_path, atomic_write_text

from .dataset import split_of
from .gate import gate_passed, gate_stats
from .responses import NUM_RANKS

PAIRS_DIR = "pairs"
RANK_PAIRS: tuple[tuple[int, int], ...] = tuple(
    (a, b) for a in range(NUM_RANKS) for b in range(a + 1, NUM_RANKS)
)
PAIRS_PER_REQUEST = len(RANK_PAIRS)  # 15
GATE_ACTIONS = ("drop", "flag")

MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
SCHEMA = pa.schema(
    [
        ("prompt", pa.list_(MESSAGE)),
        ("chosen", pa.list_(MESSAGE)),
        ("rejected", pa.list_(MESSAGE)),
        ("request_id", pa.string()),
        ("source_row", pa.int64()),
        ("chosen_rank", pa.int64()),
        ("rejected_rank", pa.int64()),
        ("prefix_lengths", pa.list_(pa.int64())),
        ("opener", pa.list_(pa.string())),
        ("trigger", pa.list_(pa.string())),
        ("synthesizer", pa.string()),
        ("decoding", pa.string()),
        ("gate", pa.string()),
    ]
)


def invalid_reason(record: Mapping[str, Any]) -> str | None:
    """Why a generated request cannot give 15 valid pairs, or None."""
    responses = record["responses"]
    if len(responses) != NUM_RANKS:
        return "wrong number of responses"
    if any(not r.strip() for r in responses):
        return "empty response"
    if len({r.strip() for r in responses}) != NUM_RANKS:
        return "identical responses"
    return None


def request_pairs(
    record: Mapping[str, Any], *, synthesizer: str, decoding: str, gate: str
) -> list[dict[str, Any]]:
    """The 15 pair rows of one request, (a, b) in lexicographic order."""
    responses = record["responses"]
    prompt = [{"role": "user", "content": record["prompt"]}]
    return [
        {
            "prompt": prompt,
            "chosen": [{"role": "assistant", "content": responses[a]}],
            "rejected": [{"role": "assistant", "content": responses[b]}],
            "request_id": record["request_id"],
            "source_row": record["source_row"],
            "chosen_rank": a,
            "rejected_rank": b,
            "prefix_lengths": list(record["prefix_lengths"]),
            "opener": list(record["openers"]),
            "trigger": list(record["triggers"]),
            "synthesizer": synthesizer,
            "decoding": decoding,
            "gate": gate,
        }
        for a, b in RANK_PAIRS
    ]


def validate_pair_rows(rows: Sequence[Mapping[str, Any]]) -> None:
    """Raise ValueError unless every request has exactly the 15 rank pairs, valid and in order."""
    by_request: dict[str, list[tuple[int, int]]] = {}
    for i, row in enumerate(rows):
        where = f"pair {i} (request {row.get('request_id')})"
        chosen, rejected = row["chosen"][0]["content"], row["rejected"][0]["content"]
        if not row["prompt"][0]["content"].strip() or not chosen.strip() or not rejected.strip():
            raise ValueError(f"{where}: empty text")
        if chosen == rejected:
            raise ValueError(f"{where}: chosen == rejected")
        if not row["chosen_rank"] < row["rejected_rank"]:
            raise ValueError(f"{where}: chosen rank {row['chosen_rank']} is not better")
        by_request.setdefault(row["request_id"], []).append(
            (row["chosen_rank"], row["rejected_rank"])
        )
    for rid, ranks in by_request.items():
        if tuple(ranks) != RANK_PAIRS:
            raise ValueError(
                f"request {rid}: {len(ranks)} pairs, expected the 15 rank pairs in order"
            )


def build_pairs(
    manifest: Mapping[str, Any],
    records: Sequence[Mapping[str, Any]],
    *,
    test_size: float = 0.0,
    gate_action: str = "drop",
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Any]]:
    """``({"train": rows, "test": rows}, stats)`` from the generated records."""
    if not 0.0 <= test_size < 1.0:
        raise ValueError(f"--test-size must be in [0, 1), got {test_size}")
    if gate_action not in GATE_ACTIONS:
        raise ValueError(f"--gate-action must be one of {GATE_ACTIONS}")
    synth = manifest["synthesizer"]
    name, decoding = synth.get("name") or synth["model"], synth["decoding"]
    splits: dict[str, list[dict[str, Any]]] = {"train": [], "test": []}
    requests_by_split: Counter[str] = Counter()
    dropped: Counter[str] = Counter()
    skipped = flagged = gated_out = 0
    generated = [r for r in records if not r.get("skipped")]
    for record in records:
        if record.get("skipped"):
            skipped += 1
            continue
        reason = invalid_reason(record)
        if reason:
            dropped[reason] += 1
            continue
        passed = gate_passed(record)
        gate = "unchecked" if passed is None else ("passed" if passed else "failed")
        if passed is False:
            if gate_action == "drop":
                gated_out += 1
                continue
            flagged += 1
        split = split_of(record["prompt"], test_size, manifest.get("seed"))
        splits[split].extend(request_pairs(record, synthesizer=name, decoding=decoding, gate=gate))
        requests_by_split[split] += 1
    for rows in splits.values():
        validate_pair_rows(rows)
    stats = {
        "requests_selected": len(records),
        "requests_skipped_few_punctuation": skipped,
        "requests_dropped_invalid": dict(sorted(dropped.items())),
        "requests_dropped_by_gate": gated_out,
        "requests_flagged_by_gate": flagged,
        "requests_kept": sum(requests_by_split.values()),
        "requests_by_split": {k: requests_by_split[k] for k in splits},
        "pairs_by_split": {k: len(v) for k, v in splits.items()},
        "responses": NUM_RANKS * sum(requests_by_split.values()),
        "generated_tokens": sum(sum(r.get("generated_tokens") or []) for r in generated),
        "test_size": test_size,
        "gate_action": gate_action,
        "gate": gate_stats(generated),
    }
    return splits, stats


def to_table(rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(list(rows), schema=SCHEMA)


def write_parquet(path: Path, table: pa.Table) -> None:
    """Parquet written beside its final name, then renamed into place."""
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def write_pairs(
    out: str | os.PathLike,
    splits: Mapping[str, Sequence[Mapping[str, Any]]],
    stats: Mapping[str, Any],
) -> Path:
    """``<out>/pairs/{train,test}.parquet`` and ``stats.json`` (the card reads them)."""
    folder = Path(out) / PAIRS_DIR
    for split, rows in splits.items():
        write_parquet(folder / f"{split}.parquet", to_table(rows))
    atomic_write_text(folder / "stats.json", json.dumps(stats, indent=2, ensure_ascii=False) + "\n")
    return folder


def read_pairs(out: str | os.PathLike) -> tuple[dict[str, pa.Table], dict[str, Any]]:
    folder = Path(out) / PAIRS_DIR
    stats_path = folder / "stats.json"
    if not stats_path.is_file():
        raise FileNotFoundError(f"{stats_path}: no such file; run `c2-syn pairs --out {out}` first")
    stats = json.loads(stats_path.read_text(encoding="utf-8"))
    tables = {split: pq.read_table(folder / f"{split}.parquet") for split in ("train", "test")}
    return tables, stats
