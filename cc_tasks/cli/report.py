"""``c2-report``: compare C²-EVAL runs side by side (markdown table, CSV, JSON, Corr@k plot).

Usage::

    c2-report runs/before runs/after --label before --label after --out report/
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cc_tasks.report import (
    ReportError,
    load_reports,
    markdown_table,
    plot,
    reference_list,
    write_csv,
    write_json,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="c2-report", description=__doc__.splitlines()[0])
    parser.add_argument(
        "inputs",
        nargs="+",
        help="lm-eval result files/folders (--output_path) or c2-judge JSON outputs",
    )
    parser.add_argument("--label", action="append", help="name of each input, in order (repeat)")
    parser.add_argument(
        "--out", type=Path, help="folder for report.md, report.csv, report.json, corr_at_k.png"
    )
    parser.add_argument("--csv", type=Path, help="write the table as CSV here")
    parser.add_argument("--json", type=Path, help="write the runs as JSON here")
    parser.add_argument("--plot", type=Path, help="write the Corr@k plot (PNG) here")
    parser.add_argument("--title", default="C²-EVAL: course-correction rate", help="plot title")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        reports = load_reports(args.inputs, args.label)
    except ReportError as err:
        print(f"c2-report: error: {err}", file=sys.stderr)
        return 2
    table = markdown_table(reports)
    print(table)
    for r in reports:
        print(f"{r.label}: {reference_list(r)}")
    csv_path, json_path, png_path = args.csv, args.json, args.plot
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "report.md").write_text(table + "\n", encoding="utf-8")
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
