"""A blind reading of the demo's samples: does the effect survive a reader who applies the rubric?

The demo's numbers come from the offline ``probe`` judge, validated on the gold set, where its
agreement on the *embedded model's own* continuations is far lower than on the whole test split
(docs/measurements.md). So the demo's before/after samples are also labelled by a reader, with
the gold set's rubric (cc_tasks/judges/gold/RUBRIC.md) and BLIND_READING.md (beside this file),
**blind**: ``blind_items.py`` beside this file (the demo's last step before it used ``c2-judge audit``) shuffles them together (before and after
mixed, seeded from the item keys) under opaque ids, and the reader never sees the condition,
the k or any judge's verdict. Run from the repository root:

    python -m experiments.blind_reading.blind_read prepare runs/demo runs/demo/blind   # = the demo's step
    # a reader writes runs/demo/blind/labels-<reader>.jsonl: {"id", "label": yes|no, "reason"}
    python -m experiments.blind_reading.blind_read score runs/demo/blind --settled FILE

``score`` unblinds: Corr@k and Corr_mean before/after by the reader's labels, the paired
bootstrap over rows of the difference (demo/compare.py), the judge's agreement with the reader
on these items per condition (kappa, precision/recall of "yes" with Wilson intervals), and the
agreement of two readers on the items both labelled. Where readers disagree, ``--settled FILE``
gives the settled label ({"id", "label", "why"}) used for the numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from experiments.blind_reading.blind_items import CONDITIONS, prepare

READER_FIELDS = ("id", "label")


def read_labels(path: Path, ids: Iterable[str]) -> dict[str, str]:
    """``{id: yes|no}`` of one reader's file; a bad line is one clear error."""
    from cc_tasks.files import iter_jsonl

    known = set(ids)
    labels: dict[str, str] = {}
    for n, entry in iter_jsonl(path, unit="line", error=ValueError):
        if not isinstance(entry, dict):
            raise ValueError(f"{path}: line {n}: not a JSON object")
        ident, label = entry.get("id"), entry.get("label")
        if ident not in known:
            raise ValueError(f"{path}: line {n}: field 'id': unknown item {ident!r}")
        if label not in ("yes", "no"):
            raise ValueError(f"{path}: line {n}: field 'label': {label!r} is not yes/no")
        labels[ident] = label
    return labels


def _confusion(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Judge vs reader on the same items: kappa, precision and recall of yes (Wilson)."""
    from cc_tasks.stats import cohen_kappa, yes_counts

    judge, reader = zip(*pairs, strict=True) if pairs else ((), ())
    judge, reader = list(judge), list(reader)
    counts = yes_counts(reader, judge)
    return {
        "n": len(judge),
        "reader_yes": reader.count("yes"),
        "judge_yes": judge.count("yes"),
        "kappa": cohen_kappa(judge, reader),
        "precision_yes": counts.precision,
        "precision_yes_ci95": counts.precision_ci,
        "recall_yes": counts.recall,
        "recall_yes_ci95": counts.recall_ci,
    }


def score(
    key: Mapping[str, Mapping[str, Any]],
    readers: Mapping[str, Mapping[str, str]],
    settled: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Unblind: the reader's Corr@k per condition, the paired difference, the judge's agreement."""
    from cc_tasks.stats import cohen_kappa, mean_of_rates, paired_difference

    settled = dict(settled or {})
    names = sorted(readers)
    both = sorted(set.intersection(*(set(readers[n]) for n in names))) if len(names) > 1 else []
    disagreements = [i for i in both if len({readers[n][i] for n in names}) > 1]
    unsettled = [i for i in disagreements if i not in settled]
    if unsettled:
        raise ValueError(
            f"{len(unsettled)} item(s) labelled differently by the readers and not settled "
            f"(first: {unsettled[0]}); pass --settled"
        )
    final: dict[str, str] = {}
    for name in names:
        final.update(readers[name])
    final.update({i: settled[i] for i in disagreements})
    missing = sorted(set(key) - set(final))
    if missing:
        raise ValueError(f"{len(missing)} item(s) have no label (first: {missing[0]})")
    counts: dict[str, dict[int, dict[Any, tuple[int, int]]]] = {c: {} for c in CONDITIONS}
    for ident, info in key.items():
        per_row = counts[info["condition"]].setdefault(int(info["k"]), {})
        y, v = per_row.get(info["row_id"], (0, 0))
        per_row[info["row_id"]] = (y + (final[ident] == "yes"), v + 1)
    corr_at_k = {
        c: {
            f"k{k}": sum(y for y, _ in rows.values()) / sum(v for _, v in rows.values())
            for k, rows in sorted(counts[c].items())
        }
        for c in CONDITIONS
    }
    result: dict[str, Any] = {
        "items": len(key),
        "readers": {n: len(readers[n]) for n in names},
        "corr_at_k": corr_at_k,
        "corr_mean": {c: mean_of_rates(counts[c]) for c in CONDITIONS},
        "paired": paired_difference(counts["before"], counts["after"]),
        "judge_vs_reader": {
            c: _confusion(
                [
                    (info["judge_label"], final[i])
                    for i, info in key.items()
                    if info["condition"] == c
                ]
            )
            for c in CONDITIONS
        },
    }
    if both:
        a, b = ([readers[n][i] for i in both] for n in names[:2])
        result["reader_agreement"] = {
            "items": len(both),
            "agree": sum(x == y for x, y in zip(a, b, strict=True)),
            "kappa": cohen_kappa(a, b),
            "disagreements_settled": len(disagreements),
        }
    return result


def plot(result: Mapping[str, Any], key: Mapping[str, Mapping[str, Any]], path: Path) -> None:
    """Corr@k before/after by the readers (solid) and by the judge (dashed), Wilson 95% bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cc_tasks.stats import wilson

    judged: dict[tuple[str, int], list[int]] = {}
    for info in key.values():
        judged.setdefault((info["condition"], int(info["k"])), []).append(
            info["judge_label"] == "yes"
        )
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for n, condition in enumerate(CONDITIONS):
        ks = sorted(int(k[1:]) for k in result["corr_at_k"][condition])
        by = {
            "readers": [result["corr_at_k"][condition][f"k{k}"] for k in ks],
            "judge": [sum(v) / len(v) for v in (judged[(condition, k)] for k in ks)],
        }
        for who, style, shift in (("readers", "-o", -1.2), ("judge", "--s", 1.2)):
            rates = by[who]
            bounds = [
                wilson(round(rate * len(judged[(condition, k)])), len(judged[(condition, k)]))
                or (rate, rate)
                for rate, k in zip(rates, ks, strict=True)
            ]
            ax.errorbar(
                [k + shift + 0.4 * n for k in ks],
                rates,
                yerr=[
                    [r - lo for r, (lo, _) in zip(rates, bounds, strict=True)],
                    [hi - r for r, (_, hi) in zip(rates, bounds, strict=True)],
                ],
                fmt=style,
                color=f"C{n}",
                alpha=1.0 if who == "readers" else 0.5,
                capsize=3,
                label=f"{condition}: {who} (Corr_mean {sum(rates) / len(rates):.3f})",
            )
    paired = result["paired"]
    ax.set_title(
        f"Blind reading: after - before {paired['difference']:+.3f} "
        f"(se {paired['bootstrap_se']:.3f}, bootstrap over {paired['rows']} rows)"
    )
    ax.set_xlabel("prefill length k")
    ax.set_ylabel("Corr@k (share of paths that course-correct)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.text(0.01, 0.01, "bars: 95% Wilson interval per k (40 paths)", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="shuffle the demo's samples into blind items")
    p.add_argument("demo", type=Path, help="the demo's output folder (eval_before/, eval_after/)")
    p.add_argument("target", type=Path, help="an empty or new folder for items.jsonl, key.json")
    s = sub.add_parser("score", help="unblind the readers' labels")
    s.add_argument("folder", type=Path, help="the folder prepare wrote, with labels-*.jsonl")
    s.add_argument("--settled", type=Path, help="settled labels of the readers' disagreements")
    s.add_argument("--json", type=Path, help="write the result here (never overwritten)")
    s.add_argument("--plot", type=Path, help="PNG of Corr@k: readers vs the judge, before/after")
    args = parser.parse_args(argv)
    if args.command == "prepare":
        return prepare(args.demo, args.target)
    try:
        key = json.loads((args.folder / "key.json").read_text(encoding="utf-8"))
        readers = {
            path.stem.removeprefix("labels-"): read_labels(path, key)
            for path in sorted(args.folder.glob("labels-*.jsonl"))
        }
        if not readers:
            raise ValueError(f"{args.folder}: no labels-*.jsonl")
        settled = read_labels(args.settled, key) if args.settled else None
        result = score(key, readers, settled)
    except (OSError, ValueError) as err:
        print(f"blind_read: error: {err}", file=sys.stderr)
        return 2
    if args.plot:
        plot(result, key, args.plot)
    text = json.dumps(result, indent=2)
    if args.json:
        with open(args.json, "x", encoding="utf-8") as fh:
            fh.write(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
