"""The synthesiser's continuations after its triggers, on C²-EVAL prefills, for the judges' gold set.

Usage (repository root, venv active)::

    OMP_NUM_THREADS=1 python -m synth.gold_candidates --out runs/gold/runs \\
        --data ../shared/data/c2_eval_pku_saferlhf_test500.jsonl [--system-prompt TEXT]

A judge of C²-EVAL meets text like C²-SYN's r1..r4 (method section 3.3: a harmful prefix, a
corrective trigger, then the synthesiser's own words) whenever a trained model has learnt
to correct itself. This writes such text where the gold set can use it: for every
(row, k) of its rows (``row_id % 12 == 9``), the C²-EVAL prefill of that row at that k, one
of the synthesiser's triggers (:data:`synth.truncate.TRIGGERS`, drawn per row and k from a
stable seed) and the synthesiser's greedy continuation through its own hf backend. The
gold item's continuation is ``" " + trigger + continuation``: what a judge reads after the
prefill. Writes ``OUT/synth-after-trigger/candidates.jsonl`` (``row_id, k, condition,
path, continuation``, the format ``python -m cc_tasks.judges.gold.build candidates``
merges) and ``.../timing.json``; an existing file is not overwritten.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from cc_tasks.judges.gold.build.make_candidates import DEFAULT_DATA, KS, v2_rows
from cc_tasks.seeding import stable_rng

from .backends.base import Decoding, Turn
from .truncate import TRIGGERS

CONDITION = "synth-after-trigger"
ROWS = v2_rows(9)


def turns(data: Path) -> list[tuple[int, int, str, Turn]]:
    """(row_id, k, trigger, turn) of every candidate, in row and k order."""
    from cc_tasks.pku import harmful_response, load_rows
    from cc_tasks.prefill import build_prefill

    rows, _ = load_rows(str(data), split="test", need_unsafe=True)
    out = []
    for row_id in ROWS:
        row = rows[row_id - 1]
        harmful = harmful_response(row)
        if harmful is None:
            continue
        for k in KS:
            _, prefill = build_prefill(row["prompt"], harmful, k)
            trigger = stable_rng("gold-synth-trigger", row_id, k).choice(TRIGGERS)
            out.append((row_id, k, trigger, Turn(row["prompt"], f"{prefill} {trigger}")))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="the candidates folder")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--system-prompt", default=None, help="the synthesiser's system prompt")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args(argv)
    if not args.data.is_file():
        parser.error(f"--data {args.data}: no such file")
    target = args.out / CONDITION / "candidates.jsonl"
    if target.exists():
        print(f"{target} exists, not regenerating")
        return 0
    from cc_tasks.embedded import embedded_model_path

    from .backends.hf import HFBackend

    todo = turns(args.data)
    decoding = Decoding(mode="greedy", max_new_tokens=args.max_new_tokens)
    start = time.perf_counter()
    backend = HFBackend(
        embedded_model_path(),
        decoding,
        system_prompt=args.system_prompt,
        batch_size=args.batch_size,
    )
    records = []
    step = args.batch_size * 4
    for first in range(0, len(todo), step):
        chunk = todo[first : first + step]
        for (row_id, k, trigger, _), gen in zip(
            chunk, backend.generate([t for *_, t in chunk]), strict=True
        ):
            records.append(
                {
                    "row_id": row_id,
                    "k": k,
                    "condition": CONDITION,
                    "path": 0,
                    "continuation": f" {trigger}{gen.text}",
                }
            )
        print(f"{len(records)}/{len(todo)} continuations", flush=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    timing = {
        "condition": CONDITION,
        "decoding": decoding.label(),
        "system_prompt": args.system_prompt,
        "generations": len(records),
        "wall_s": round(time.perf_counter() - start, 1),
    }
    (target.parent / "timing.json").write_text(json.dumps(timing, indent=1) + "\n")
    print(f"{len(records)} candidates -> {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
