"""Blind items of a demo run (the dated blind reading): both evaluations' continuations, shuffled together for a reader.

Why: the demo's judge is a screen, not a measurement (its agreement with readers on an
adapter's continuations is low; docs/measurements.md), so the demo hands its samples to a reader
**blind**: before and after mixed (the order seeded from the item keys) under opaque ids, with
no condition, k or verdict in what the reader sees. ``key.json`` unblinds them afterwards
(``python -m experiments.blind_reading.blind_read score``; experiments/blind_reading/).

    python -m experiments.blind_reading.blind_items runs/demo runs/demo/blind   # items.jsonl, key.json, second.txt

The items hold model text and the request: keep them out of the repository (runs/ is ignored).

No longer a step of the demo (its blind sample is now ``c2-judge audit prepare``); kept here so
the dated blind reading can be reproduced.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

CONDITIONS = ("before", "after")
SECOND_SHARE = 25  # percent of the items a second reader labels independently


def _samples(folder: Path) -> list[tuple[Any, int, str, str, str, str]]:
    """(row_id, k, request, prefill, continuation, judge label) of every path under ``folder``."""
    from cc_tasks.results.samples import find_sample_files, sample_verdicts

    out = []
    for sf in find_sample_files([str(folder)], need_row_id=True):
        for sample in sf.samples:
            verdicts = sample_verdicts(sample, str(sf.path))
            for text, verdict in zip(sample.continuations, verdicts, strict=True):
                out.append(
                    (sample.row_id, sample.k, sample.prompt, sample.prefill, text, verdict["label"])
                )
    return out


def prepare(demo: Path, target: Path) -> int:
    """Write ``items.jsonl`` (what the reader sees) and ``key.json`` (what unblinds it)."""
    from cc_tasks.files import atomic_write_text
    from cc_tasks.seeding import stable_seed

    if target.exists() and any(target.iterdir()):
        print(f"blind_read: error: {target} is not empty", file=sys.stderr)
        return 2
    items = []
    for condition in CONDITIONS:
        folder = demo / f"eval_{condition}"
        if not folder.is_dir():
            print(f"blind_read: error: {folder}: no such folder", file=sys.stderr)
            return 2
        for row_id, k, request, prefill, text, judged in _samples(folder):
            key = f"{condition}|{row_id}|{k}"
            items.append(
                {
                    "order": stable_seed("blind-read", key),
                    "key": key,
                    "condition": condition,
                    "row_id": row_id,
                    "k": k,
                    "judge_label": judged,
                    "request": request,
                    "prefill": prefill,
                    "continuation": text,
                }
            )
    items.sort(key=lambda item: item["order"])
    target.mkdir(parents=True, exist_ok=True)
    shown = [
        {
            "id": f"i{n:04d}",
            "request": it["request"],
            "prefill": it["prefill"],
            "continuation": it["continuation"],
        }
        for n, it in enumerate(items)
    ]
    key = {
        f"i{n:04d}": {k: it[k] for k in ("condition", "row_id", "k", "judge_label")}
        for n, it in enumerate(items)
    }
    atomic_write_text(
        target / "items.jsonl", "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in shown)
    )
    atomic_write_text(target / "key.json", json.dumps(key, indent=1) + "\n")
    # the second reader's share: every item whose id's stable draw falls under SECOND_SHARE
    second = [s["id"] for s in shown if stable_seed("blind-second", s["id"]) % 100 < SECOND_SHARE]
    atomic_write_text(target / "second.txt", "".join(i + "\n" for i in second))
    print(
        f"{len(shown)} items (before and after mixed) in {target / 'items.jsonl'}; "
        f"{len(second)} for a second reader in {target / 'second.txt'}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "demo", type=Path, help="the demo's output folder (eval_before/, eval_after/)"
    )
    parser.add_argument(
        "target", type=Path, help="an empty or new folder for items.jsonl, key.json"
    )
    args = parser.parse_args(argv)
    return prepare(args.demo, args.target)


if __name__ == "__main__":
    raise SystemExit(main())
