"""``c2-judge``: re-judge lm-eval sample files offline, and measure agreement between two judges.

``c2-judge rejudge SAMPLES... --judge KIND`` (``rejudge`` may be left out) reads
the ``samples_<task>_<date>.jsonl`` files that ``lm_eval --log_samples`` (or
``c2-eval``) wrote, judges every continuation in ``resps`` against
``doc.prompt`` and ``doc.prefill`` with any judge, and writes

- ``<out>/<run>/samples_<task>_<date>.jsonl``: the same samples with
  ``filtered_resps`` replaced by the new verdict records (so ``agree`` can
  compare them with the originals),
- ``<out>/corr.json`` and ``<out>/corr.md``: the Corr@k table per run, with the
  reference's list format ``[Corr@10, ..., Corr@80, Corr_mean]``.

``c2-judge agree A B`` matches the verdicts of two judged sample sets by
(k, doc.row_id, path index) and prints percent agreement and Cohen's kappa per
k and overall.

``c2-judge validate --judge KIND [--split dev|test|all]`` runs a judge on the
labelled gold set and prints Cohen's kappa, accuracy, precision and recall with
bootstrap intervals, the invalid rate, the confusion matrix and the numbers per
item kind (:mod:`cc_tasks.judges.validate`); ``--record`` stores the judge card.

``c2-judge audit prepare | score | budget`` measures the judge on a run itself, on a blind
random sample read by a person, and corrects Corr@k by PPI++ (:mod:`cc_tasks.cli.audit`).

Input is validated completely (one clear line naming file, line and field)
before any judge is built or called. Existing outputs are never overwritten
without ``--overwrite``. The judge flags are the ones every tool shares
(:mod:`cc_tasks.judges.settings`; the old spellings ``--cache-path``,
``--concurrency``, ``--no-cache`` and ``--probe`` still work). Exit status
(:mod:`cc_tasks.errors`): 0 ok; 1 judge errors (unless ``--allow-judge-errors``)
or more than ``--max-invalid`` (default 5%) invalid verdicts (unless
``--allow-invalid``), outputs written all the same; 2 bad input or configuration.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cc_tasks.errors import CCError, RunFailure, UsageError, cli_exit
from cc_tasks.files import atomic_write_text
from cc_tasks.judges import JudgeItem
from cc_tasks.judges.record import judge_batch, verdict_record
from cc_tasks.judges.scoring import agreement
from cc_tasks.judges.settings import add_judge_flags, invalid_policy, judge_from_args
from cc_tasks.results import (
    corr_document,
    find_sample_files,
    judged_runs,
    read_sample_file,
    require_complete_output,
    sample_verdicts,
    write_corr,
)

# the old c2-judge spellings, still accepted (hidden from --help)
OLD_FLAGS = {
    "--cache-path": "--judge-cache",
    "--concurrency": "--judge-concurrency",
    "--no-cache": "--no-judge-cache",
    "--probe": "--judge-check",
}
log = logging.getLogger("c2-judge")


class InputError(UsageError):
    """A sample file or argument is unusable (one line, names file/line/field)."""


# --------------------------------------------------------------------------- rejudge


def _fmt(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def rejudge(args: argparse.Namespace) -> int:
    files = find_sample_files(args.samples, need_row_id=False)
    out = Path(args.output_dir)
    targets = [out / sf.run / sf.path.name for sf in files] + [out / "corr.json", out / "corr.md"]
    sources = {sf.path.resolve() for sf in files}
    for target in targets:
        if target.resolve() in sources:
            raise InputError(
                f"{target}: the output would replace its own input; choose another --output-dir"
            )
    existing = [str(t) for t in targets if t.exists()]
    if existing and not args.overwrite:
        raise InputError(f"{existing[0]} already exists; pass --overwrite or another --output-dir")

    policy = invalid_policy(args)
    # after the input is known good, before any judging; nothing expensive precedes the
    # judging here, so no separate endpoint check unless --judge-check asks for one
    conveniences = {"endpoint_check": False, **({"progress": False} if args.no_progress else {})}
    judge = judge_from_args(args, defaults=conveniences)
    items: list[JudgeItem] = []
    for sf in files:
        for sample in sf.samples:
            items += [JudgeItem(sample.prompt, sample.prefill, c) for c in sample.continuations]
    log.info("judging %d continuations from %d files with %s", len(items), len(files), judge.name)
    judged, invalid = judge_batch(judge, items)
    verdicts = iter(judged)

    for sf in files:
        lines = []
        for sample in sf.samples:
            records = []
            for continuation in sample.continuations:
                record = verdict_record(next(verdicts), judge.name, continuation)
                records.append(record)
            data = dict(sample.data)
            # per-sample metric values of the old judge are stale: drop them
            for metric in data.get("metrics") or []:
                data.pop(metric, None)
            data["metrics"] = []
            data["filtered_resps"] = [records]  # as the C²-EVAL judge filter: per doc, one per path
            data["filter"] = judge.name
            data["rejudged_by"] = judge.describe()
            lines.append(json.dumps(data, ensure_ascii=False) + "\n")
        atomic_write_text(out / sf.run / sf.path.name, "".join(lines))

    # the Corr@k schema (cc_tasks.results): read back what was written, so corr.json and
    # c2-report count the same verdicts, with intervals, rows and the source run's provenance
    rejudged = [
        read_sample_file(out / sf.run / sf.path.name, sf.run, need_row_id=False) for sf in files
    ]
    runs = judged_runs(rejudged, judge=judge, strict=args.strict, originals=files)
    report = corr_document(
        runs, judge=judge, strict=args.strict, inputs=[str(sf.path) for sf in files]
    )
    totals = report["totals"]
    markdown = write_corr(out, report)
    print(markdown, end="")
    for block in report["results"]:
        print(f"{block['run']} {block['family']}: {json.dumps(block['reference_list'])}")
    print(f"wrote {out / 'corr.json'}, {out / 'corr.md'} and {len(files)} sample files under {out}")
    problems = []
    if totals["errors"] and not args.allow_judge_errors:
        problems.append(
            f"{totals['errors']} of {totals['n']} judgments failed (label 'error', reason in "
            "'raw' of the written samples); rerun to retry only those (the rest is cached) "
            "or pass --allow-judge-errors"
        )
    too_many_invalid = policy.failure(invalid)
    if too_many_invalid:
        problems.append(too_many_invalid)
    elif invalid.invalid:
        print(f"c2-judge: warning: {invalid.warning()}", file=sys.stderr)
    if problems:  # the outputs above are written all the same
        raise RunFailure("; and ".join(problems))
    return 0


# --------------------------------------------------------------------------- agree
def load_judged(paths: Sequence[str], side: str) -> dict[tuple[int, str, int], dict[str, Any]]:
    """(k, row_id, path index) -> verdict record for one judged sample set (a half-written
    ``c2-judge -o`` folder is refused, as ``c2-report`` refuses it)."""
    for path in map(Path, paths):
        if path.is_dir():
            require_complete_output(path)
    out: dict[tuple[int, str, int], dict[str, Any]] = {}
    for sf in find_sample_files(paths, need_row_id=True):
        for sample in sf.samples:
            for index, record in enumerate(sample_verdicts(sample, str(sf.path))):
                key = (sample.k, str(sample.row_id), index)
                if key in out:
                    raise InputError(
                        f"{sf.path}: line {sample.line}: path (k={key[0]}, row_id={key[1]}, "
                        f"path={index}) appears twice in set {side}; pass a single run"
                    )
                out[key] = record
    return out


def agree(args: argparse.Namespace) -> int:
    left = load_judged([args.a], "A")
    right = load_judged([args.b], "B")
    common = sorted(set(left) & set(right), key=lambda key: (key[0], key[1], key[2]))
    if not common:
        raise InputError(
            "the two sets share no (k, row_id, path) — are they judgments of the same run?"
        )
    by_k: dict[int, list[tuple[dict[str, Any], dict[str, Any]]]] = defaultdict(list)
    for key in common:
        by_k[key[0]].append((left[key], right[key]))
    rows = {str(k): agreement(pairs).to_dict() for k, pairs in sorted(by_k.items())}
    overall = agreement(pair for k in sorted(by_k) for pair in by_k[k]).to_dict()
    judges = {
        side: sorted({str(r.get("judge", "?")) for r in records.values()})
        for side, records in (("A", left), ("B", right))
    }
    report = {
        "a": args.a,
        "b": args.b,
        "judges": judges,
        "only_in_a": len(set(left) - set(right)),
        "only_in_b": len(set(right) - set(left)),
        "per_k": rows,
        "overall": overall,
    }
    print(
        f"A = {args.a} (judge {', '.join(judges['A'])}); B = {args.b} (judge {', '.join(judges['B'])})"
    )
    print("| k | paths | both valid | agree % | Cohen's kappa |")
    print("|---|---|---|---|---|")
    for k, row in [*rows.items(), ("overall", overall)]:
        print(
            f"| {k} | {row['pairs']} | {row['compared']} | {_fmt(row['percent'], 1)} | {_fmt(row['kappa'], 3)} |"
        )
    if report["only_in_a"] or report["only_in_b"]:
        print(f"unmatched paths: {report['only_in_a']} only in A, {report['only_in_b']} only in B")
    if args.json:
        atomic_write_text(Path(args.json), json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        print(f"wrote {args.json}")
    return 0


# --------------------------------------------------------------------------- entry point
def _add_validate(sub: Any) -> None:
    """``c2-judge validate``: a judge against the labelled gold set (cc_tasks.judges.validate)."""
    from cc_tasks.judges import settings, validate

    va = sub.add_parser(
        "validate",
        help="kappa, accuracy, precision, recall (bootstrap CIs) of a judge on the gold set",
    )
    settings.add_judge_flags(va, skip=("--max-invalid", "--allow-invalid", "--allow-judge-errors"))
    validate.add_arguments(va)
    va.set_defaults(
        func=lambda args: validate.run(
            args,
            lambda a: settings.judge_from_args(
                a, defaults={"endpoint_check": False}, rubric=a.rubric
            ),
        )
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="c2-judge",
        description="Re-judge C²-EVAL sample files (lm-eval --log_samples) and compare judges.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    rj = sub.add_parser(
        "rejudge", help="judge every continuation in sample files; write the Corr@k table"
    )
    rj.add_argument(
        "samples", nargs="+", help="samples_<task>_<date>.jsonl files or folders holding them"
    )
    add_judge_flags(rj.add_argument_group("judge"), aliases=OLD_FLAGS)
    rj.add_argument("--strict", action="store_true", help="count invalid verdicts as not corrected")
    rj.add_argument(
        "-o",
        "--output-dir",
        default="c2_judge_results",
        help="where to write (default ./c2_judge_results)",
    )
    rj.add_argument(
        "--overwrite", action="store_true", help="replace existing outputs in --output-dir"
    )
    rj.add_argument("--no-progress", action="store_true", help="no progress bar")
    rj.set_defaults(func=rejudge)
    ag = sub.add_parser(
        "agree", help="percent agreement and Cohen's kappa of two judged sample sets"
    )
    ag.add_argument(
        "a", help="judged samples (file or folder), e.g. a c2-eval --log_samples output"
    )
    ag.add_argument(
        "b", help="judged samples of the same run by another judge (e.g. c2-judge rejudge output)"
    )
    ag.add_argument("--json", help="also write the agreement report to this JSON file")
    ag.set_defaults(func=agree)
    _add_validate(sub)
    from cc_tasks.cli import audit

    audit.add_subcommand(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if (
        argv
        and argv[0] not in ("rejudge", "agree", "validate", "audit")
        and not argv[0].startswith("-")
    ):
        argv.insert(0, "rejudge")  # `c2-judge SAMPLES... --judge openai` is rejudge
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="c2-judge: %(levelname)s: %(message)s")
    try:
        return args.func(args)
    except (CCError, OSError) as err:  # one line; exit 2 bad input, 1 failed run (cc_tasks.errors)
        return cli_exit("c2-judge", err)


if __name__ == "__main__":
    raise SystemExit(main())
