"""``c2-judge validate --rubric overrefusal``: how well an over-refusal judge agrees with labels.

The over-refusal counterpart of :mod:`.validate` (method section 2.9): the judge
classifies each labelled answer (:mod:`.gold.refusal`) and the report gives, against
the gold classes, Cohen's kappa with a bootstrap interval over items, accuracy,
precision and recall per class with Wilson intervals, the confusion matrix and the
invalid rate; for the safety-talk flag, on the answers whose gold class is
``full_compliance`` (the population of the task's rate), kappa and precision and
recall of "yes". Invalid and error verdicts count as wrong. Statistics: :mod:`cc_tasks.stats`.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cc_tasks.errors import RunFailure, UsageError
from cc_tasks.files import atomic_write_text
from cc_tasks.stats import bootstrap_kappa, cohen_kappa, confusion, per_class, wilson, yes_counts

from .base import ERROR, FULL_COMPLIANCE, INVALID, REFUSAL_CLASSES, Judge
from .gold import GoldError, gold_version
from .gold.refusal import REFUSAL_GOLD_PATH, RefusalGoldItem, read_refusal_gold

VERDICT_LABELS = (*REFUSAL_CLASSES, INVALID, ERROR)


def _yn(flag: bool | None) -> str:
    return "yes" if flag else "no"


def evaluate(
    items: Sequence[RefusalGoldItem],
    labels: Sequence[str],
    talk: Sequence[bool | None],
    *,
    resamples: int,
    seed: int,
) -> dict[str, Any]:
    """Every number of the report for gold items vs the judge's classes and safety-talk flags."""
    gold = [g.label for g in items]
    n = len(items)
    agree = sum(g == v for g, v in zip(gold, labels, strict=True))
    report: dict[str, Any] = {
        "n": n,
        "kappa": cohen_kappa(gold, list(labels)),
        "kappa_ci": bootstrap_kappa(gold, labels, resamples=resamples, seed=seed),
        "accuracy": agree / n if n else None,
        "accuracy_ci": list(wilson(agree, n) or []) or None,
        "per_class": per_class(gold, labels, REFUSAL_CLASSES),
        "confusion": confusion(gold, labels, REFUSAL_CLASSES, VERDICT_LABELS),
        "invalid": sum(v == INVALID for v in labels),
        "errors": sum(v == ERROR for v in labels),
    }
    report["invalid_rate"] = (report["invalid"] + report["errors"]) / n if n else None
    compliant = [i for i, g in enumerate(items) if g.label == FULL_COMPLIANCE]
    gold_talk = [_yn(items[i].safety_talk) for i in compliant]
    said_talk = [_yn(talk[i]) for i in compliant]
    counts = yes_counts(gold_talk, said_talk)
    report["safety_talk"] = {
        "n": len(compliant),
        "gold_yes": counts.truth_yes,
        "said_yes": counts.predicted_yes,
        "kappa": cohen_kappa(gold_talk, said_talk),
        "precision": counts.precision,
        "precision_ci": list(counts.precision_ci) if counts.precision_ci else None,
        "recall": counts.recall,
        "recall_ci": list(counts.recall_ci) if counts.recall_ci else None,
    }
    report["bootstrap"] = {"unit": "item", "resamples": resamples, "seed": seed}
    return report


def _f(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _ci(ci: Sequence[float] | None) -> str:
    return "" if not ci else f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def format_report(report: Mapping[str, Any]) -> str:
    """Markdown: overall agreement, per class, safety talk, confusion."""
    judge = report.get("judge", {})
    lines = [
        f"# c2-judge validate: {judge.get('name', '?')} (over-refusal) on the {report['split']} split",
        "",
        f"Judge: `{json.dumps(judge, sort_keys=True)}`",
        f"Gold: {report['gold_source']} (version {report['gold_version']}), {report['n']} answers",
        "",
        "| metric | value | 95% CI |",
        "|---|---|---|",
        f"| kappa (3 classes) | {_f(report['kappa'])} | {_ci(report['kappa_ci'])} |",
        f"| accuracy | {_f(report['accuracy'])} | {_ci(report['accuracy_ci'])} |",
        f"| invalid rate | {_f(report['invalid_rate'])} | ({report['invalid']} invalid, "
        f"{report['errors']} errors) |",
        "",
        "| class | gold | said | precision | 95% CI | recall | 95% CI |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, row in report["per_class"].items():
        lines.append(
            f"| {label} | {row['gold']} | {row['said']} | {_f(row['precision'])} | "
            f"{_ci(row['precision_ci'])} | {_f(row['recall'])} | {_ci(row['recall_ci'])} |"
        )
    t = report["safety_talk"]
    lines += [
        "",
        f"Safety talk, on the {t['n']} gold-compliant answers: gold yes {t['gold_yes']}, said yes "
        f"{t['said_yes']}, kappa {_f(t['kappa'])}, precision {_f(t['precision'])} "
        f"{_ci(t['precision_ci'])}, recall {_f(t['recall'])} {_ci(t['recall_ci'])}",
        "",
        "Confusion (rows: gold, columns: verdict)",
        "",
        "| gold \\ verdict | " + " | ".join(VERDICT_LABELS) + " |",
        "|---|" + "---|" * len(VERDICT_LABELS),
    ]
    for g in REFUSAL_CLASSES:
        row = report["confusion"][g]
        lines.append(f"| {g} | " + " | ".join(str(row[v]) for v in VERDICT_LABELS) + " |")
    lines += [
        "",
        f"Kappa CI: percentile bootstrap over items ({report['bootstrap']['resamples']} resamples, "
        f"seed {report['bootstrap']['seed']}); precision, recall, accuracy: Wilson. "
        "Invalid/error verdicts count as wrong.",
    ]
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace, build_judge: Callable[[argparse.Namespace], Judge]) -> int:
    """Check the flags and the labelled file, then build the judge, judge, report."""
    from .card import card_line, config_key, judge_card, record_validation

    if args.record and (args.split != "test" or args.limit or args.gold):
        raise UsageError(
            "--record stores a measurement for the judge card: it needs --split test on the "
            f"project's over-refusal gold set ({REFUSAL_GOLD_PATH.name}), without --limit or --gold"
        )
    if args.json and Path(args.json).exists() and not args.overwrite:
        raise UsageError(f"{args.json} already exists; pass --overwrite or another --json path")
    path = Path(args.gold) if args.gold else REFUSAL_GOLD_PATH
    if not path.is_file():
        raise GoldError(
            f"{path}: no over-refusal gold set here yet; pass a labelled JSONL with --gold FILE "
            "(fields: request, answer, label, safety_talk, split, source)"
        )
    items = read_refusal_gold(path, args.split)
    if not items:
        raise GoldError(f"{path}: no labelled answers in split {args.split!r}")
    if args.limit is not None:
        items = items[: args.limit]
    judge = build_judge(args)  # after the labels are known good
    start = time.perf_counter()
    verdicts = judge.judge([g.item for g in items])
    seconds = time.perf_counter() - start
    if len(verdicts) != len(items):
        raise RunFailure(f"judge {judge.name} returned {len(verdicts)} verdicts for {len(items)}")
    report = evaluate(
        items,
        [v.label for v in verdicts],
        [v.safety_talk for v in verdicts],
        resamples=args.resamples,
        seed=args.seed,
    )
    description = judge.describe()
    report = {
        "judge": description,
        "config_key": config_key(description),
        "rubric": "overrefusal",
        "split": args.split,
        "gold_source": str(path),
        "gold_version": gold_version(path),
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "judge_seconds": round(seconds, 3),
        **report,
    }
    print(format_report(report), end="")
    if args.record:
        stored = record_validation(description, report, ship=args.ship)
        print(f"recorded the measurement in {stored}")
        print(f"card: {card_line(judge_card(description))}")
    if args.json:
        detail = dict(report)
        detail["verdicts"] = [
            {"ref": g.id, "gold": g.label, "verdict": v.label, "gold_safety_talk": g.safety_talk,
             "safety_talk": v.safety_talk}
            for g, v in zip(items, verdicts, strict=True)
        ]  # fmt: skip
        atomic_write_text(args.json, json.dumps(detail, indent=2, ensure_ascii=False) + "\n")
        print(f"wrote {args.json}")
    return 0
