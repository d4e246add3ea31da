"""``c2-judge audit``: measure the judge on a run itself and correct its numbers (PPI++).

- ``c2-judge audit prepare RUN [RUN ...] --n N -o DIR`` draws a seeded, blinded, uniform
  random sample of N paths per run (stratified by k; the same paths in every run where the
  runs share their rows) and writes ``DIR/audit.html`` (the labelling page),
  ``DIR/items.jsonl`` (the same items, for a script or an API model) and ``DIR/key.json``
  (ids -> run, k, row, path: keep it away from the labeller).
- ``c2-judge audit score RUN [RUN2] --audit DIR --labels L.jsonl`` prints the judge's
  agreement with the labels and the corrected Corr@k and Corr_mean (and, for two runs, the
  corrected difference RUN2 - RUN), and writes ``audit.json`` in DIR and beside each run,
  where ``c2-report`` finds it.
- ``c2-judge audit budget RUN --n N`` prints the interval half-width N labels buy.

The method is :mod:`cc_tasks.results.audit`; exit 2 on bad input, before any work.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from cc_tasks.files import atomic_write_text
from cc_tasks.results import audit
from cc_tasks.results.audit import page as audit_page

ASSUMED = 0.7
"""Precision and recall of ``yes`` that ``budget`` assumes when neither is given nor measured."""


def _existing(out: Path, overwrite: bool) -> None:
    for name in (audit.PAGE_FILE, audit.ITEMS_FILE, audit.KEY_FILE):
        if (out / name).exists() and not overwrite:
            raise audit.AuditError(f"{out / name} already exists; pass --overwrite or another -o")


def _budget_line(run: audit.AuditRun, n: int, precision: float, recall: float) -> str:
    b = audit.budget(run, n, precision=precision, recall=recall)
    return (
        f"{run.name}: {n} labels buy about ±{b['half_width']:.3f} on Corr_mean (95%; labels "
        f"alone ±{b['labels_only']:.3f}), assuming Corr {b['assumed_corr']:.2f} and a judge with "
        f"precision {precision:.2f} and recall {recall:.2f} of yes; a paired difference of two "
        f"such runs: about ±{b['half_width'] * 2**0.5:.3f} or less"
    )


def prepare(args: argparse.Namespace) -> int:
    out = Path(args.output_dir)
    _existing(out, args.overwrite)
    runs = audit.load_runs(args.runs)
    sample = audit.prepare(runs, args.n, args.seed)
    out.mkdir(parents=True, exist_ok=True)
    key = sample["key"]
    atomic_write_text(out / audit.KEY_FILE, json.dumps(key, indent=2, ensure_ascii=False) + "\n")
    atomic_write_text(
        out / audit.ITEMS_FILE,
        "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in sample["items"]),
    )
    atomic_write_text(out / audit.PAGE_FILE, audit_page.render(sample["items"], key["token"]))
    print(
        f"{len(sample['items'])} items from {len(runs)} run(s) "
        f"({'paired: the same paths in every run' if key['paired'] else 'independent samples'}); "
        f"wrote {out / audit.PAGE_FILE}, {out / audit.ITEMS_FILE} and {out / audit.KEY_FILE} "
        "(the key: keep it from the labeller)"
    )
    for run in runs:
        print(_budget_line(run, args.n, ASSUMED, ASSUMED))
    return 0


def score(args: argparse.Namespace) -> int:
    folder = Path(args.audit)
    key = audit.read_key(folder)
    labels = audit.read_labels(Path(args.labels), key["items"])
    runs = audit.load_runs(args.runs)
    report = audit.score(runs, key, labels)
    report["labels_file"] = str(args.labels)
    print(audit.report_text(report))
    for path in audit.write_reports(folder, report):
        print(f"wrote {path}")
    return 0


def budget(args: argparse.Namespace) -> int:
    runs = audit.load_runs([args.run])
    for run in runs:
        precision, recall = args.precision, args.recall
        measured: dict[str, Any] | None = audit.read_audit(run.folder)
        if measured and (precision is None or recall is None):
            agreement = measured["runs"][0]["agreement"]
            precision = precision if precision is not None else agreement.get("precision")
            recall = recall if recall is not None else agreement.get("recall")
        print(
            _budget_line(
                run,
                args.n,
                ASSUMED if precision is None else precision,
                ASSUMED if recall is None else recall,
            )
        )
    return 0


def add_subcommand(sub: Any) -> None:
    """``audit prepare | score | budget`` under ``c2-judge``."""
    parser = sub.add_parser(
        "audit", help="label a random sample of a run; PPI++-corrected Corr@k with intervals"
    )
    inner = parser.add_subparsers(dest="audit_command", required=True)
    pr = inner.add_parser("prepare", help="draw and blind the sample; write page, items, key")
    pr.add_argument("runs", nargs="+", help="judged run folders or sample files")
    pr.add_argument("--n", type=int, required=True, help="paths to label per run")
    pr.add_argument("-o", "--output-dir", required=True, help="the audit folder to write")
    pr.add_argument("--seed", type=int, default=audit.DEFAULT_SEED, help="sample seed (default 0)")
    pr.add_argument("--overwrite", action="store_true", help="replace an existing audit folder")
    pr.set_defaults(func=prepare)
    sc = inner.add_parser("score", help="agreement and corrected Corr@k from the labels")
    sc.add_argument("runs", nargs="+", help="the run, or two runs (before, after)")
    sc.add_argument("--audit", required=True, help="the folder audit prepare wrote")
    sc.add_argument("--labels", required=True, help="labels JSONL: {id, label, labeller}")
    sc.set_defaults(func=score)
    bu = inner.add_parser("budget", help="the interval half-width N labels buy on a run")
    bu.add_argument("run", help="a judged run folder")
    bu.add_argument("--n", type=int, required=True, help="labels per run")
    bu.add_argument(
        "--precision",
        type=float,
        help=f"judge precision of yes (default: measured, else {ASSUMED})",
    )
    bu.add_argument(
        "--recall", type=float, help=f"judge recall of yes (default: measured, else {ASSUMED})"
    )
    bu.set_defaults(func=budget)
