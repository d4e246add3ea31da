"""``c2-judge validate``: how well a judge agrees with the labelled gold set.

Runs any judge on the gold continuations of one split (``dev``, ``test`` or
``all``) and reports, against the gold labels:

- Cohen's kappa, accuracy, precision and recall of ``yes`` (:mod:`cc_tasks.stats`,
  the project's one copy of those formulas);
- 95% bootstrap intervals for those four: percentile intervals over
  ``resamples`` resamples of the *items* (with replacement, seeded, so the
  same run prints the same interval). Items that share a request are resampled
  independently; that keeps it simple and makes the intervals somewhat narrow
  where one request contributes several continuations;
- the invalid rate (``invalid`` + ``error`` verdicts / items) and the confusion
  matrix gold x verdict;
- the same numbers per item kind: each hard-case kind, and the model-written
  continuations per source (``model: <condition>``: the base model, each adapter, the
  synthesiser, the safety-prompted model), since a judge's error depends on the model
  whose text it reads;
- kappa with its interval on all model-written items together (``model_written``).

Invalid and error verdicts are kept as their own label: they are never right,
so they lower accuracy, recall and kappa (a judge cannot look good by refusing
to answer the hard items). Precision counts only ``yes`` verdicts.

``--record`` stores a test-split measurement as the judge's validation, which its
judge card (:mod:`.card`) then quotes; ``--ship`` writes it into the package
(``validations.json``).
The gold file is read and checked completely before the judge is built.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cc_tasks.errors import RunFailure, UsageError
from cc_tasks.files import atomic_write_text
from cc_tasks.seeding import stable_seed
from cc_tasks.stats import BOOTSTRAP_ITERS as DEFAULT_RESAMPLES
from cc_tasks.stats import BOOTSTRAP_SEED as DEFAULT_SEED
from cc_tasks.stats import METRICS, bootstrap_over_items, confusion, point_metrics

from . import gold as gold_set
from .base import ERROR, INVALID, NO, YES, Judge
from .gold import GOLD_LABELS, GoldError, GoldItem

SPLITS = (*gold_set.SPLITS, "all")
VERDICT_LABELS = (YES, NO, INVALID, ERROR)


# --------------------------------------------------------------------------- arithmetic
def evaluate(
    gold: Sequence[str],
    verdicts: Sequence[str],
    kinds: Sequence[str] | None = None,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> dict[str, Any]:
    """All validation numbers for gold labels vs verdict labels (see the module docstring)."""
    if len(gold) != len(verdicts):
        raise ValueError("gold labels and verdicts differ in length")
    bad = sorted({g for g in gold if g not in GOLD_LABELS})
    if bad:
        raise ValueError(f"gold labels must be yes/no, got {bad}")
    bad = sorted({v for v in verdicts if v not in VERDICT_LABELS})
    if bad:
        raise ValueError(f"verdict labels must be one of {VERDICT_LABELS}, got {bad}")
    n = len(gold)
    counts = Counter(verdicts)
    report: dict[str, Any] = {"n": n, "gold_yes": sum(g == YES for g in gold)}
    report["said_yes"] = counts[YES]
    report.update(point_metrics(gold, verdicts))
    cis = bootstrap_over_items(gold, verdicts, resamples=resamples, seed=seed)
    for name in METRICS:
        report[f"{name}_ci"] = cis[name]
    report["invalid"] = counts[INVALID]
    report["errors"] = counts[ERROR]
    report["invalid_rate"] = (counts[INVALID] + counts[ERROR]) / n if n else None
    report["confusion"] = confusion(gold, verdicts, GOLD_LABELS, VERDICT_LABELS)
    report["bootstrap"] = {
        "unit": "item",
        "resamples": resamples,
        "seed": seed,
        "interval": "percentile 95%",
    }
    if kinds is not None:
        per_kind: dict[str, dict[str, Any]] = {}
        for kind in sorted(set(kinds)):
            idx = [i for i, k in enumerate(kinds) if k == kind]
            g = [gold[i] for i in idx]
            v = [verdicts[i] for i in idx]
            per_kind[kind] = {
                "n": len(idx),
                "gold_yes": sum(x == YES for x in g),
                "said_yes": sum(x == YES for x in v),
                **point_metrics(g, v),
                "invalid": sum(x in (INVALID, ERROR) for x in v),
            }
        report["per_kind"] = per_kind
        model = [i for i, k in enumerate(kinds) if k.startswith(MODEL_PREFIX)]
        if model:
            g = [gold[i] for i in model]
            v = [verdicts[i] for i in model]
            cis = bootstrap_over_items(g, v, resamples=resamples, seed=seed)
            report["model_written"] = {
                "n": len(model),
                "gold_yes": sum(x == YES for x in g),
                "said_yes": sum(x == YES for x in v),
                **point_metrics(g, v),
                **{f"{name}_ci": cis[name] for name in METRICS},
            }
    return report


MODEL_PREFIX = "model: "


def group_of(item: GoldItem) -> str:
    """What ``per_kind`` groups by: ``model: <condition>`` for model-written text, else the kind."""
    if item.source == "model":
        return f"{MODEL_PREFIX}{item.condition or '?'}"
    return item.kind


# --------------------------------------------------------------------------- gold set
def take_limit(items: list[GoldItem], limit: int | None) -> list[GoldItem]:
    """A deterministic subset of ``limit`` items (spread over the set, not its first rows)."""
    if limit is None or limit >= len(items):
        return items
    ranked = sorted(items, key=lambda g: stable_seed("c2-judge-validate-limit", g.id))
    keep = {id(g) for g in ranked[:limit]}
    return [g for g in items if id(g) in keep]


# --------------------------------------------------------------------------- running
def validate(
    judge: Judge,
    items: Sequence[GoldItem],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> tuple[dict[str, Any], list[str]]:
    """Judge ``items`` and compute the report; returns (report, verdict labels)."""
    start = time.perf_counter()
    verdicts = [v.label for v in judge.judge([g.item for g in items])]
    seconds = time.perf_counter() - start
    if len(verdicts) != len(items):
        raise RunFailure(
            f"judge {judge.name} returned {len(verdicts)} verdicts for {len(items)} items"
        )
    report = evaluate(
        [g.label for g in items],
        verdicts,
        [group_of(g) for g in items],
        resamples=resamples,
        seed=seed,
    )
    report["judge_seconds"] = round(seconds, 3)
    return report, verdicts


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _fmt_ci(ci: Sequence[float] | None) -> str:
    return "" if not ci else f" [{ci[0]:.3f}, {ci[1]:.3f}]"


def format_report(report: Mapping[str, Any]) -> str:
    """The human-readable report (markdown tables)."""
    judge = report.get("judge", {})
    lines = [
        f"# c2-judge validate: {judge.get('name', '?')} on the gold {report['split']} split",
        "",
        f"Judge: `{json.dumps(judge, sort_keys=True)}`",
        f"Gold: {report.get('gold_source')} (version {report.get('gold_version')}), "
        f"{report['n']} items, {report['gold_yes']} labelled yes"
        + (f"; --limit {report['limit']}" if report.get("limit") else ""),
        "",
        "| metric | value | 95% CI |",
        "|---|---|---|",
    ]
    for name in METRICS:
        lines.append(f"| {name} | {_fmt(report[name])} |{_fmt_ci(report[f'{name}_ci'])} |")
    lines.append(
        f"| invalid rate | {_fmt(report['invalid_rate'])} | ({report['invalid']} invalid, "
        f"{report['errors']} errors) |"
    )
    boot = report["bootstrap"]
    lines += [
        "",
        f"CI: {boot['interval']} bootstrap over {boot['unit']}s, {boot['resamples']} resamples, "
        f"seed {boot['seed']}. Invalid/error verdicts count as wrong.",
        "",
        "Confusion (rows: gold, columns: verdict)",
        "",
        "| gold \\ verdict | " + " | ".join(VERDICT_LABELS) + " |",
        "|---|" + "---|" * len(VERDICT_LABELS),
    ]
    for g in GOLD_LABELS:
        row = report["confusion"][g]
        lines.append(f"| {g} | " + " | ".join(str(row[v]) for v in VERDICT_LABELS) + " |")
    lines += [
        "",
        "Per kind",
        "",
        "| kind | n | gold yes | said yes | accuracy | precision | recall | kappa | invalid |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for kind, row in report.get("per_kind", {}).items():
        lines.append(
            f"| {kind} | {row['n']} | {row['gold_yes']} | {row['said_yes']} | {_fmt(row['accuracy'])} "
            f"| {_fmt(row['precision'])} | {_fmt(row['recall'])} | {_fmt(row['kappa'])} | {row['invalid']} |"
        )
    mw = report.get("model_written")
    if mw:
        lines += [
            "",
            f"Model-written items together: n {mw['n']} ({mw['gold_yes']} yes), kappa "
            f"{_fmt(mw['kappa'])}{_fmt_ci(mw.get('kappa_ci'))}, precision of yes "
            f"{_fmt(mw['precision'])}{_fmt_ci(mw.get('precision_ci'))}, recall "
            f"{_fmt(mw['recall'])}{_fmt_ci(mw.get('recall_ci'))}",
        ]
    lines += ["", f"Judged in {report['judge_seconds']:.1f} s."]
    return "\n".join(lines) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The validate-specific flags (the judge flags come from the CLI's shared judge settings)."""
    parser.add_argument(
        "--split", choices=SPLITS, default="dev", help="gold split to judge (default dev)"
    )
    parser.add_argument(
        "--gold",
        help="another labelled JSONL instead of the project's gold set: self-contained (request, "
        "prefill, continuation, label[, kind, split]) or in gold.jsonl's form (row_id, k, ...)",
    )
    parser.add_argument(
        "--data",
        help="the 500-row C²-EVAL file (e.g. ../shared/data/c2_eval_pku_saferlhf_test500.jsonl) "
        "the project's gold set rebuilds requests and prefills from (default: $C2_EVAL_DATA)",
    )
    parser.add_argument(
        "--limit", type=int, help="judge only this many items (a fixed spread subset; slow judges)"
    )
    parser.add_argument(
        "--resamples",
        type=int,
        default=DEFAULT_RESAMPLES,
        help=f"bootstrap resamples (default {DEFAULT_RESAMPLES})",
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="bootstrap seed (default 0)")
    parser.add_argument(
        "--json", help="also write the report (and per-item verdicts) to this JSON file"
    )
    parser.add_argument(
        "--record",
        action="store_true",
        help="store this measurement for the judge's card (test split, no --limit, no --gold)",
    )
    parser.add_argument(
        "--ship",
        action="store_true",
        help="with --record: write it into the package (cc_tasks/judges/validations.json)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --json file")
    parser.add_argument(
        "--rubric",
        choices=("course_correction", "overrefusal"),
        default="course_correction",
        help="what the judge judges: course-correction (default) or over-refusal (method section "
        "2.9; --gold FILE of labelled answers: request, answer, label, safety_talk, split, source)",
    )


def run(args: argparse.Namespace, build_judge: Callable[[argparse.Namespace], Judge]) -> int:
    """The subcommand: check flags and the gold set, then build the judge, judge, report."""
    from .card import card_line, config_key, judge_card, record_validation

    if getattr(args, "rubric", "course_correction") == "overrefusal":
        from . import validate_refusal

        if args.limit is not None and args.limit < 1:
            raise UsageError(f"--limit must be >= 1, got {args.limit}")
        return validate_refusal.run(args, build_judge)
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit must be >= 1, got {args.limit}")
    if args.resamples < 0:
        raise UsageError(f"--resamples must be >= 0, got {args.resamples}")
    if args.ship and not args.record:
        raise UsageError("--ship needs --record")
    if args.record and (args.split != "test" or args.limit or args.gold):
        raise UsageError(
            "--record stores a measurement for the judge card: it needs --split test on the "
            "project's gold set, without --limit"
        )
    if args.json and Path(args.json).exists() and not args.overwrite:
        raise UsageError(f"{args.json} already exists; pass --overwrite or another --json path")
    items = gold_set.load_items(args.split, data_path=args.data, gold_path=args.gold)
    if args.gold:
        source, version = str(args.gold), gold_set.gold_version(args.gold)
    else:
        source, version = "cc_tasks/judges/gold", gold_set.gold_version()
    if not items:
        raise GoldError(f"the gold set has no items in split {args.split!r}")
    total = len(items)
    items = take_limit(items, args.limit)

    judge = build_judge(args)  # after the gold set is known good
    report, verdicts = validate(judge, items, resamples=args.resamples, seed=args.seed)
    description = judge.describe()
    report = {
        "judge": description,
        "config_key": config_key(description),
        "split": args.split,
        "gold_source": source,
        "gold_version": version,
        "gold_items_in_split": total,
        "limit": args.limit,
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **report,
    }
    print(format_report(report), end="")
    if args.record:
        path = record_validation(description, report, ship=args.ship)
        print(f"recorded the measurement in {path}")
        print(f"card: {card_line(judge_card(description))}")
    if args.json:
        detail = dict(report)
        detail["verdicts"] = [
            {"ref": g.id, "kind": g.kind, "gold": g.label, "verdict": v}
            for g, v in zip(items, verdicts, strict=True)
        ]
        atomic_write_text(args.json, json.dumps(detail, indent=2, ensure_ascii=False) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":  # pragma: no cover - use `c2-judge validate`
    sys.exit("use: c2-judge validate --judge KIND [--split dev|test|all]")
