"""C²-EVAL results: what ``c2-eval``/lm-eval and ``c2-judge`` write, and ``c2-report`` reads.

- :mod:`.schema`: the object model (:class:`Run`, :class:`Point`) and the counts from samples;
- :mod:`.lmeval`: lm-eval's ``results_<date>.json`` (and the sample files beside it);
- :mod:`.corr_file`: ``c2-judge``'s ``corr.json`` / ``corr.md``, written and read;
- :mod:`.find`: finding result files below folders and loading their runs;
- :mod:`.samples`: the one reader of lm-eval sample files (``--log_samples``);
- :mod:`.tables` (markdown), :mod:`.report` (CSV, JSON, plot), :mod:`.viewer` (the HTML page).

The statistics behind the intervals live in :mod:`cc_tasks.stats`.
"""

from __future__ import annotations

from .corr_file import (
    CORR_SCHEMA,
    corr_document,
    corr_markdown,
    judged_runs,
    runs_from_corr,
    write_corr,
)
from .find import find_result_files, load_runs, read_result_file, require_complete_output
from .lmeval import model_label, runs_from_lm_eval
from .samples import (
    Sample,
    SampleError,
    SampleFile,
    find_sample_files,
    read_sample_file,
    sample_verdicts,
)
from .schema import FULL_ROWS, Point, ReportError, Run, json_safe, points_from_samples
from .tables import markdown_table, point_cell, table_notes

__all__ = [
    "CORR_SCHEMA",
    "FULL_ROWS",
    "Point",
    "ReportError",
    "Run",
    "Sample",
    "SampleError",
    "SampleFile",
    "corr_document",
    "corr_markdown",
    "find_result_files",
    "find_sample_files",
    "json_safe",
    "judged_runs",
    "load_runs",
    "markdown_table",
    "model_label",
    "point_cell",
    "points_from_samples",
    "read_result_file",
    "read_sample_file",
    "require_complete_output",
    "runs_from_corr",
    "runs_from_lm_eval",
    "sample_verdicts",
    "table_notes",
    "write_corr",
]
