"""Join the manifest with the annotators' labels into ``cc_tasks/judges/gold/gold.jsonl``.

Usage (from the repository root)::

    python -m cc_tasks.judges.gold.build merge --force            # defaults under runs/gold
    python -m cc_tasks.judges.gold.build merge --labels-b labels_b.jsonl --settled settled.jsonl --force

Inputs (JSONL, one object per line):

- ``manifest.jsonl`` (``build_items``): every item, without labels;
- ``labels_a.jsonl``: annotator A, every item: ``id, label (yes/no), borderline, reason``;
- ``labels_b.jsonl`` (optional): the independent second annotator on the
  ``second_pass_ids.txt`` subset: ``id, label`` (``reason``/``borderline`` optional);
- ``settled.jsonl`` (optional): one line per A/B disagreement: ``id, label, reason``,
  decided by re-reading the rubric (``cc_tasks/judges/gold/RUBRIC.md``).

With labels B it prints Cohen's kappa and agreement on the overlap and writes the
disagreements to ``disagreements.jsonl`` beside labels B. Every disagreement needs a
settlement; unsettled ones stop the merge (exit 1) unless ``--provisional`` keeps label A
for them (and says how many). Each gold line records ``label_a``/``label_b`` where the
item was labelled twice. Finally it prints the counts for the gold README.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from cc_tasks.judges.gold import GOLD_PATH, count_table, read_records
from cc_tasks.stats import cohen_kappa

TEAM = Path("runs") / "gold"  # relative to the repository root
FIELDS = (
    "id",
    "row_id",
    "k",
    "source",
    "condition",
    "kind",
    "continuation",
    "label",
    "borderline",
    "reason",
    "split",
    "request_sha",
)


def read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def by_id(path: Path, manifest_ids: set[str], what: str) -> dict[str, dict]:
    """Labels keyed by id; every id must be known and labelled yes/no, once."""
    out: dict[str, dict] = {}
    for n, row in enumerate(read_jsonl(path), 1):
        gid = row.get("id")
        if gid not in manifest_ids:
            raise SystemExit(f"{path}: line {n}: id {gid!r} is not in the manifest")
        if row.get("label") not in ("yes", "no"):
            raise SystemExit(f"{path}: line {n}: field 'label': expected yes/no ({what})")
        if gid in out:
            raise SystemExit(f"{path}: line {n}: id {gid} labelled twice ({what})")
        out[gid] = row
    return out


def merge(
    manifest: list[dict],
    labels_a: dict[str, dict],
    labels_b: dict[str, dict],
    settled: dict[str, dict],
    provisional: bool,
) -> tuple[list[dict], list[dict], int]:
    """Gold lines, the A/B disagreements, and how many of those were left unsettled."""
    missing = [e["id"] for e in manifest if e["id"] not in labels_a]
    if missing:
        raise SystemExit(f"labels A miss {len(missing)} items (first: {missing[:5]})")
    gold, disagreements, unsettled = [], [], 0
    for e in manifest:
        a = labels_a[e["id"]]
        line = {f: e.get(f) for f in FIELDS}
        line["label"] = a["label"]
        line["borderline"] = bool(a.get("borderline", False))
        line["reason"] = str(a.get("reason", ""))
        if e["source"] == "handwritten":
            line["condition"] = None
        b = labels_b.get(e["id"])
        if b is not None:
            line["label_a"], line["label_b"] = a["label"], b["label"]
            if a["label"] != b["label"]:
                disagreements.append(
                    {
                        "id": e["id"],
                        "label_a": a["label"],
                        "reason_a": a.get("reason", ""),
                        "label_b": b["label"],
                        "reason_b": b.get("reason", ""),
                    }
                )
                s = settled.get(e["id"])
                if s is not None:
                    line["label"] = s["label"]
                    line["borderline"] = True  # two careful readers disagreed
                    line["reason"] = (
                        f"settled ({a['label']}/{b['label']} -> {s['label']}): {s['reason']}"
                    )
                elif provisional:
                    unsettled += 1
                    line["reason"] = (
                        f"UNSETTLED (A {a['label']} / B {b['label']}): {line['reason']}"
                    )
                else:
                    unsettled += 1
        gold.append(line)
    return gold, disagreements, unsettled


def agreement_by_source(overlap: list[dict]) -> dict[str, str]:
    """A vs B per source (model condition or hand-written kind): n, agreement, kappa."""
    groups: dict[str, list[dict]] = {}
    for g in overlap:
        groups.setdefault(f"{g['source']}:{g.get('condition') or g['kind']}", []).append(g)
    out = {}
    for source, lines in sorted(groups.items()):
        a = [g["label_a"] for g in lines]
        b = [g["label_b"] for g in lines]
        agree = sum(x == y for x, y in zip(a, b, strict=True))
        kappa = cohen_kappa(a, b)
        shown = "undefined" if kappa is None else f"{kappa:.3f}"
        out[source] = f"{agree}/{len(lines)} agree, kappa {shown} (A yes {a.count('yes')}, B yes {b.count('yes')})"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, default=TEAM / "manifest.jsonl")
    parser.add_argument("--labels-a", type=Path, default=TEAM / "labels_a.jsonl")
    parser.add_argument("--labels-b", type=Path, default=TEAM / "labels_b.jsonl")
    parser.add_argument("--settled", type=Path, default=TEAM / "settled.jsonl")
    parser.add_argument("--out", type=Path, default=GOLD_PATH)
    parser.add_argument(
        "--base",
        type=Path,
        help="an existing gold file whose lines are kept as they are, the manifest's items "
        "appended after them (a new version of the set adds items, never relabels old ones)",
    )
    parser.add_argument("--provisional", action="store_true", help="keep label A where unsettled")
    parser.add_argument("--force", action="store_true", help="replace an existing --out")
    args = parser.parse_args(argv)

    manifest = read_jsonl(args.manifest)
    ids = {e["id"] for e in manifest}
    labels_a = by_id(args.labels_a, ids, "annotator A")
    labels_b = by_id(args.labels_b, ids, "annotator B") if args.labels_b.is_file() else {}
    settled = by_id(args.settled, ids, "settlement") if args.settled.is_file() else {}
    gold, disagreements, unsettled = merge(manifest, labels_a, labels_b, settled, args.provisional)
    if args.base:
        kept = read_records(args.base)
        clash = {r["id"] for r in kept} & ids
        if clash:
            raise SystemExit(f"{args.base}: {len(clash)} ids are also in the manifest")
        gold = kept + gold

    if labels_b:
        overlap = [g for g in gold if "label_b" in g]
        a = [g["label_a"] for g in overlap]
        b = [g["label_b"] for g in overlap]
        agree = sum(x == y for x, y in zip(a, b, strict=True))
        kappa = cohen_kappa(a, b)
        print(
            f"A vs B on {len(overlap)} items: agreement {agree}/{len(overlap)} "
            f"({100 * agree / len(overlap):.1f} %), Cohen's kappa "
            f"{'undefined' if kappa is None else f'{kappa:.3f}'}; "
            f"A yes {a.count('yes')}, B yes {b.count('yes')}; {len(disagreements)} disagreements"
        )
        for source, group in agreement_by_source(overlap).items():
            print(f"  {source}: {group}")
        out = args.labels_b.with_name("disagreements.jsonl")
        out.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in disagreements))
        print(f"disagreements -> {out}")
    else:
        print(f"no labels B at {args.labels_b}: single-annotator gold set (merge pending)")
    if unsettled and not args.provisional:
        print(
            f"{unsettled} disagreements have no line in {args.settled}; settle them "
            "(id, label, reason) or pass --provisional",
            file=sys.stderr,
        )
        return 1
    if unsettled:
        print(f"warning: {unsettled} disagreements unsettled, label A kept", file=sys.stderr)

    if args.out.exists() and not args.force:
        print(f"{args.out} exists; pass --force to replace it", file=sys.stderr)
        return 1
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(
        "".join(json.dumps(g, ensure_ascii=False) + "\n" for g in gold), encoding="utf-8"
    )
    os.replace(tmp, args.out)
    read_records(args.out)  # the loader's own checks
    print(f"{len(gold)} items -> {args.out}\n")
    print(count_table(gold))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
