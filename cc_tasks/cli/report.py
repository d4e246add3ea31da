"""``c2-report``: compare C²-EVAL runs side by side (markdown table, CSV, JSON, Corr@k plot).

Usage::

    c2-report runs/before runs/after --label before --label after --out report/
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cc_tasks.errors import CCError, UsageError, cli_exit
from cc_tasks.files import atomic_write_text
from cc_tasks.results import find_result_files, load_runs, markdown_table, table_notes, viewer
from cc_tasks.results.audit import with_audits
from cc_tasks.results.overrefusal import load_refusal_runs, refusal_table
from cc_tasks.results.report import plot, write_csv, write_json


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="c2-report", description=__doc__.splitlines()[0])
    parser.add_argument(
        "inputs",
        nargs="+",
        help="lm-eval result files/folders (--output_path) or c2-judge outputs (corr.json or its "
        "folder); sample files beside them give exact counts and the bootstrap over rows",
    )
    parser.add_argument("--label", action="append", help="name of each input, in order (repeat)")
    parser.add_argument(
        "--out", type=Path, help="folder for report.md, report.csv, report.json, corr_at_k.png"
    )
    parser.add_argument("--csv", type=Path, help="write the table as CSV here")
    parser.add_argument("--json", type=Path, help="write the runs as JSON here")
    parser.add_argument("--plot", type=Path, help="write the Corr@k plot (PNG) here")
    parser.add_argument("--title", default="C²-EVAL: course-correction rate", help="plot title")
    parser.add_argument(
        "--html",
        type=Path,
        help="write the sample viewer here: one self-contained HTML file with the table, the plot "
        "and every sample of the runs, filterable (see cc_tasks/c2_eval/README.md)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Exit codes (:mod:`cc_tasks.errors`): 0 ok, 2 an input or output path is unusable."""
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except (CCError, OSError) as err:  # one line, no traceback
        return cli_exit("c2-report", err)


def run(args: argparse.Namespace) -> int:
    labels = args.label or []
    files = [
        (file, labels[i] if i < len(labels) else None)
        for i, raw in enumerate(args.inputs)
        for file in find_result_files([raw])
    ]
    refusal = load_refusal_runs(files)  # over-refusal subtasks (method section 2.9), if any
    reports = load_runs(args.inputs, args.label, missing_ok=bool(refusal))
    if not reports:
        return _refusal_only(args, refusal)
    # --html: check its path and read every sample before anything is written
    samples = (
        viewer.prepare(args.html, reports, overwrite=getattr(args, "overwrite", False))
        if args.html
        else None
    )
    reports = with_audits(reports)  # a corrected row after each run audited by c2-judge audit
    table = markdown_table(reports) + "\n\n" + table_notes(reports)
    if refusal:
        table += "\n\nOver-refusal\n\n" + refusal_table(refusal)
        if args.out:
            _write_refusal_json(args.out, refusal)
    print(table)
    for r in reports:
        print(f"{r.label}: {r.reference_list()}")
    csv_path, json_path, png_path = args.csv, args.json, args.plot
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out / "report.md", table + "\n")
        csv_path = csv_path or args.out / "report.csv"
        json_path = json_path or args.out / "report.json"
        png_path = png_path or args.out / "corr_at_k.png"
    if csv_path:
        write_csv(reports, csv_path)
    if json_path:
        write_json(reports, json_path)
    if png_path:
        plot(reports, png_path, args.title)
        print(f"plot: {png_path}")
    if args.html and samples is not None:
        print(
            viewer.write_report(
                args.html,
                samples,
                table_markdown=table,
                title=args.title,
                plot=lambda path: plot(reports, path, args.title),
                png_path=png_path,
            )
        )
    return 0


def _write_refusal_json(out: Path, refusal: list) -> None:
    from cc_tasks.results import json_safe

    out.mkdir(parents=True, exist_ok=True)
    data = json_safe([r.to_dict() for r in refusal])
    atomic_write_text(
        out / "overrefusal.json", json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    )


def _refusal_only(args: argparse.Namespace, refusal: list) -> int:
    """Inputs with over-refusal results only: the table (report.md, overrefusal.json)."""
    if args.html or args.plot or args.csv:
        raise UsageError(
            "--html, --plot and --csv show C²-EVAL runs; these inputs hold over-refusal results only"
        )
    table = "Over-refusal\n\n" + refusal_table(refusal)
    print(table)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out / "report.md", table + "\n")
        _write_refusal_json(args.out, refusal)
    if args.json:
        from cc_tasks.results import json_safe

        text = json.dumps(json_safe([r.to_dict() for r in refusal]), indent=2, ensure_ascii=False)
        atomic_write_text(args.json, text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
