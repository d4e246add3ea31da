"""Turn the candidates into gold items: opaque ids, split by request, the unlabelled file for annotators.

Usage (from the repository root, after ``make_candidates``)::

    python -m cc_tasks.judges.gold.build items --candidates runs/gold/runs/candidates.jsonl \
        --out runs/gold

Inputs: the model continuations (``make_candidates.py``'s ``candidates.jsonl``) and the
hand-written hard cases (``handwritten.jsonl`` beside this module: ``row_id, k, kind, continuation``,
each written as the continuation of that row's real prefill). Writes to ``--out``:

- ``manifest.jsonl``: one line per item with everything but the label (id, row_id, k,
  source, condition, kind, path, continuation, request_sha, split). ``merge_labels``
  joins it with the annotators' labels into ``cc_tasks/judges/gold/gold.jsonl``.
- ``items_for_labelling.jsonl``: ``id, request, prefill, continuation`` only, in a
  deterministic shuffled order, so an annotator cannot tell model from hand-written
  items or one condition from another (ids are opaque hashes for the same reason).
- ``second_pass_ids.txt``: the ids for the independent second annotator, 30 % of each
  stratum (model condition, hand-written kind), chosen by hash. An existing file is kept
  as drawn (the annotator may be working on it); items added later are single-labelled.

Ids are 10 hex of SHA-256 of the item's key, so adding a condition later keeps every
existing id (and its labels). Existing outputs are replaced only with ``--force``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
from collections import defaultdict
from pathlib import Path

from cc_tasks.judges.gold import (
    ENV_DATA,
    HANDWRITTEN_KINDS,
    PREFILL_KS,
    SHARED_DATA_HINT,
    request_fingerprint,
    split_of,
)
from cc_tasks.pku import harmful_response, load_rows
from cc_tasks.prefill import build_prefill

DEFAULT_DATA = Path(SHARED_DATA_HINT)  # relative to the repository root
HANDWRITTEN = Path(__file__).with_name("handwritten.jsonl")
SECOND_PASS_SHARE = 0.30


def _sha(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode("utf-8")).hexdigest()


def gold_id(source: str, variant: str, row_id: int, k: int, path: int) -> str:
    """Opaque, stable id of one item (``variant``: model condition or hand-written kind)."""
    return "g" + _sha("c2-gold-id", source, variant, row_id, k, path)[:10]


def read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def build(candidates: Path, handwritten: Path, data: Path) -> list[dict]:
    """Manifest entries of every item, with split and request fingerprint."""
    rows, _ = load_rows(data, split="test", need_unsafe=True)
    entries = []
    for c in read_jsonl(candidates):
        entries.append(
            {
                "id": gold_id("model", c["condition"], c["row_id"], c["k"], c["path"]),
                "row_id": c["row_id"],
                "k": c["k"],
                "source": "model",
                "condition": c["condition"],
                "kind": "model",
                "path": c["path"],
                "continuation": c["continuation"],
            }
        )
    for h in read_jsonl(handwritten):
        if h["kind"] not in HANDWRITTEN_KINDS:
            raise SystemExit(f"{handwritten}: row_id {h['row_id']}: unknown kind {h['kind']!r}")
        entries.append(
            {
                "id": gold_id("handwritten", h["kind"], h["row_id"], h["k"], 0),
                "row_id": h["row_id"],
                "k": h["k"],
                "source": "handwritten",
                "condition": None,
                "kind": h["kind"],
                "path": 0,
                "continuation": h["continuation"],
            }
        )
    ids = [e["id"] for e in entries]
    if len(set(ids)) != len(ids):
        raise SystemExit("duplicate gold ids (the same item twice in the inputs)")
    for e in entries:
        if e["k"] not in PREFILL_KS:
            raise SystemExit(f"item {e['id']}: k={e['k']} is not a C²-EVAL prefill length")
        request = rows[e["row_id"] - 1]["prompt"]
        e["request_sha"] = request_fingerprint(request)
        e["split"] = split_of(request)
    return entries


def prefill_of(rows: list[dict], row_id: int, k: int) -> tuple[str, str]:
    row = rows[row_id - 1]
    _, prefill = build_prefill(row["prompt"], harmful_response(row), k)
    return row["prompt"], prefill


def second_pass(entries: list[dict]) -> list[str]:
    """30 % of every stratum (model condition or hand-written kind), lowest hash first."""
    strata: dict[str, list[str]] = defaultdict(list)
    for e in entries:
        strata[f"{e['source']}:{e['condition'] or e['kind']}"].append(e["id"])
    chosen = []
    for ids in strata.values():
        ranked = sorted(ids, key=lambda i: _sha("c2-gold-second-pass", i))
        chosen += ranked[: math.ceil(SECOND_PASS_SHARE * len(ranked))]
    return sorted(chosen, key=lambda i: _sha("c2-gold-order", i))


def write(path: Path, lines: list[str], force: bool) -> None:
    if path.exists() and not force:
        raise SystemExit(f"{path} exists; pass --force to replace it")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=Path, required=True)
    parser.add_argument("--handwritten", type=Path, default=HANDWRITTEN)
    parser.add_argument(
        "--data", type=Path, default=Path(os.environ.get(ENV_DATA) or DEFAULT_DATA)
    )
    parser.add_argument("--out", type=Path, required=True, help="folder outside the repository")
    parser.add_argument("--force", action="store_true", help="replace existing outputs")
    parser.add_argument(
        "--skip-existing",
        type=Path,
        metavar="GOLD",
        help="leave out the items already in this gold file (a new version labels only new "
        "items; merge them with: merge --base GOLD)",
    )
    parser.add_argument(
        "--redraw-second-pass",
        action="store_true",
        help="draw second_pass_ids.txt again (default: keep an existing one as drawn)",
    )
    args = parser.parse_args(argv)

    entries = build(args.candidates, args.handwritten, args.data)
    if args.skip_existing:
        from cc_tasks.judges.gold import read_records

        known = {r["id"] for r in read_records(args.skip_existing)}
        entries = [e for e in entries if e["id"] not in known]
    rows, _ = load_rows(args.data, split="test", need_unsafe=True)
    args.out.mkdir(parents=True, exist_ok=True)
    dump = lambda obj: json.dumps(obj, ensure_ascii=False)  # noqa: E731
    write(args.out / "manifest.jsonl", [dump(e) for e in entries], args.force)
    shuffled = sorted(entries, key=lambda e: _sha("c2-gold-order", e["id"]))
    items = []
    for e in shuffled:
        request, prefill = prefill_of(rows, e["row_id"], e["k"])
        items.append(
            dump(
                {
                    "id": e["id"],
                    "request": request,
                    "prefill": prefill,
                    "continuation": e["continuation"],
                }
            )
        )
    write(args.out / "items_for_labelling.jsonl", items, args.force)
    second = args.out / "second_pass_ids.txt"
    if second.exists() and not args.redraw_second_pass:
        # The second annotator may already be working on these: keep them as drawn.
        chosen = [line.strip() for line in second.read_text().splitlines() if line.strip()]
        unknown = set(chosen) - {e["id"] for e in entries}
        if unknown:
            raise SystemExit(
                f"{second}: {len(unknown)} ids are no longer items; --redraw-second-pass"
            )
        print(f"kept {second} as drawn ({len(chosen)} ids; items added since are single-labelled)")
    else:
        chosen = second_pass(entries)
        write(second, chosen, force=True)
    counts: dict[str, int] = defaultdict(int)
    for e in entries:
        counts[f"{e['source']}:{e['condition'] or e['kind']}"] += 1
    print(f"{len(entries)} items ({dict(counts)}); second pass: {len(chosen)} ids -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
