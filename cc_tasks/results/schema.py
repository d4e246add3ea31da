"""The Corr@k result schema: :class:`Run` (one judged run) and :class:`Point` (one k).

One object model for what ``c2-eval``/lm-eval and ``c2-judge`` write and
``c2-report`` (and the sample viewer) read; the readers are
:mod:`~cc_tasks.results.lmeval` (lm-eval's ``results_<date>.json``) and
:mod:`~cc_tasks.results.corr_file` (``c2-judge``'s ``corr.json``).

Every :class:`Run` carries per k a :class:`Point` (Corr@k, the n behind it and a
95% Wilson interval), Corr_mean with a 95% bootstrap over rows (the eight k
share rows; :mod:`cc_tasks.stats`), the rows it ran and whether that is a partial
run, the judge card and the provenance.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from cc_tasks.errors import UsageError
from cc_tasks.judges.scoring import score
from cc_tasks.pku import EVAL_ROWS
from cc_tasks.prefill import PREFILL_LENGTHS
from cc_tasks.stats import bootstrap_mean_over_rows, wilson
from cc_tasks.stats import wilson_interval as _wilson_rate

from .samples import sample_verdicts

FULL_ROWS = EVAL_ROWS
"""Rows of a full C²-EVAL run (method section 2); fewer, or any ``--limit``, is a partial run."""
GROUP = "c2_eval"
TASK_RE = re.compile(r"^(?P<family>.+)_k(?P<k>\d+)$")


class ReportError(UsageError):
    """An input is not a readable C²-EVAL result (one line naming the file; exit 2)."""


# --------------------------------------------------------------------------- the object model


@dataclass
class Point:
    """Corr@k of one run at one k, with the counts behind it and its 95% Wilson interval."""

    k: int
    corr: float | None
    n: int
    """Paths behind ``corr`` (its denominator): yes + no (+ invalid when strict)."""
    yes: int | None
    """Corrected paths; None when only lm-eval's rate is known (no samples)."""
    paths: int
    """All judged paths at this k, invalid and errors included."""
    invalid: int = 0
    errors: int = 0
    corr_pos: float | None = None
    ci: tuple[float, float] | None = None
    rows: int | None = None
    stderr: float | None = None
    """lm-eval's standard error (kept for reference; the tables show ``ci``)."""
    exact: bool = False
    """True when the counts come from the verdicts themselves, not from the rate."""


@dataclass
class Run:
    """One judged run: a model's Corr@k curve under one judge."""

    label: str
    model: str
    judge: str
    source: str
    origin: str
    """``lm-eval`` (a results file) or ``c2-judge`` (a corr.json)."""
    family: str = GROUP
    run: str = ""
    """The run's folder name (lm-eval: the model folder holding the results)."""
    points: dict[int, Point] = field(default_factory=dict)
    corr_mean: float | None = None
    corr_mean_ci: tuple[float, float] | None = None
    corr_mean_note: str = "bootstrap n/a (no samples)"
    rows: int | None = None
    """Rows evaluated per k (the largest over k)."""
    limit: float | None = None
    partial: bool = False
    strict: bool = False
    paths_per_row: int = 1
    judge_card: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    sample_files: dict[int, str] = field(default_factory=dict)
    """k -> the sample file with this run's verdicts (for viewers), where known."""
    row_counts: dict[int, dict[Any, tuple[int, int]]] = field(default_factory=dict, repr=False)
    """k -> row id -> (yes, n) of that row: the bootstrap's input (not serialised)."""

    @property
    def ks(self) -> list[int]:
        return sorted(k for k, p in self.points.items() if p.corr is not None)

    @property
    def corr(self) -> dict[int, float]:
        return {k: p.corr for k, p in sorted(self.points.items()) if p.corr is not None}

    @property
    def invalid(self) -> int:
        return sum(p.invalid for p in self.points.values())

    @property
    def errors(self) -> int:
        return sum(p.errors for p in self.points.values())

    @property
    def paths(self) -> int:
        return sum(p.paths for p in self.points.values())

    @property
    def corr_pos(self) -> float | None:
        values = [p.corr_pos for p in self.points.values() if p.corr_pos is not None]
        return sum(values) / len(values) if values else None

    @property
    def partial_note(self) -> str:
        """'' for a full run, else what makes it partial (rows of FULL_ROWS, --limit)."""
        if not self.partial:
            return ""
        rows = "?" if self.rows is None else str(self.rows)
        limit = "" if self.limit is None else f", --limit {_num_text(self.limit)}"
        return f"partial: {rows}/{FULL_ROWS} rows{limit}"

    def reference_list(self, digits: int = 4) -> list[float | None]:
        """The reference's output format: ``[Corr@10, ..., Corr@80, Corr_mean]`` (None = missing)."""
        values = [self.points[k].corr if k in self.points else None for k in PREFILL_LENGTHS]
        out = [*values, self.corr_mean]
        return [None if v is None else round(v, digits) for v in out]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: points keyed by str(k), intervals as lists, no row counts."""
        data = asdict(self)
        data.pop("row_counts")
        data["points"] = {str(k): _listify(asdict(p)) for k, p in sorted(self.points.items())}
        data["sample_files"] = {str(k): v for k, v in sorted(self.sample_files.items())}
        data["corr_mean_ci"] = list(self.corr_mean_ci) if self.corr_mean_ci else None
        data["reference_list"] = self.reference_list()
        data["partial_note"] = self.partial_note
        # per-run summaries (the keys report.json had before the points existed)
        data["corr"] = {str(k): v for k, v in self.corr.items()}
        data["n"] = {str(k): self.points[k].n for k in self.ks}
        data.update(
            paths=self.paths, invalid=self.invalid, errors=self.errors, corr_pos=self.corr_pos
        )
        return data


def _listify(point: dict[str, Any]) -> dict[str, Any]:
    point["ci"] = list(point["ci"]) if point["ci"] else None
    return point


def json_safe(obj: Any) -> Any:
    """``obj`` with NaN/Infinity replaced by None and tuples by lists: strict JSON for browsers
    and jq (lm-eval's own files may hold NaN; ours never do)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def _num_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def finite_number(value: Any) -> float | None:
    """``value`` as a float when it is a finite number (not a bool), else None."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


# --------------------------------------------------------------------------- samples -> counts


def _row_key(sample: Any) -> Any:
    """The row a sample belongs to: ``doc.row_id``, else lm-eval's ``doc_id``, else its line."""
    if sample.row_id is not None and not isinstance(sample.row_id, (dict, list)):
        return sample.row_id
    doc_id = sample.data.get("doc_id")
    return ("doc", doc_id) if isinstance(doc_id, int) else ("line", sample.line)


def points_from_samples(
    sample_files: Iterable[Any], *, strict: bool
) -> tuple[dict[int, Point], dict[int, dict[Any, tuple[int, int]]]]:
    """Exact points and per-row counts from judged sample files (:class:`.samples.SampleFile`)."""
    records: dict[int, list[dict[str, Any]]] = defaultdict(list)
    rows: dict[int, dict[Any, list[int]]] = defaultdict(dict)
    for sf in sample_files:
        for sample in sf.samples:
            verdicts = sample_verdicts(sample, str(sf.path))
            records[sample.k].extend(verdicts)
            s = score(verdicts, strict=strict)
            counts = rows[sample.k].setdefault(_row_key(sample), [0, 0])
            counts[0] += s.yes
            counts[1] += s.yes + s.no + (s.invalid if strict else 0)
    points = {}
    for k, recs in sorted(records.items()):
        s = score(recs, strict=strict)
        n = s.yes + s.no + (s.invalid if strict else 0)
        points[k] = Point(
            k=k,
            corr=s.corr,
            n=n,
            yes=s.yes,
            paths=s.n,
            invalid=s.invalid,
            errors=s.errors,
            corr_pos=s.corr_pos,
            ci=wilson(s.yes, n),
            rows=len(rows[k]),
            exact=True,
        )
    counts = {k: {row: (c[0], c[1]) for row, c in per_row.items()} for k, per_row in rows.items()}
    return points, counts


def finish_run(run: Run, iters: int, seed: int) -> Run:
    """Corr_mean (if unset), its bootstrap interval, rows and the partial flag."""
    if run.corr_mean is None and run.corr:
        run.corr_mean = sum(run.corr.values()) / len(run.corr)
    defined = {k: run.row_counts[k] for k in run.ks if k in run.row_counts}
    if run.row_counts and len(defined) == len(run.ks) and run.corr_mean_ci is None:
        run.corr_mean_ci = bootstrap_mean_over_rows(defined, iters=iters, seed=seed)
        n_rows = len({row for per_row in defined.values() for row in per_row})
        run.corr_mean_note = (
            f"95% bootstrap over {n_rows} rows ({iters} resamples, seed {seed})"
            if run.corr_mean_ci
            else "bootstrap n/a (no valid verdicts)"
        )
        ci = run.corr_mean_ci
        if ci and ci[0] == ci[1] and run.corr_mean is not None:
            # Every resample gave the same mean (e.g. no path ever corrected): a zero-width
            # interval would claim certainty. A row's mean over k lies in [0, 1], so its variance
            # is at most p(1 - p): Wilson with the rows as n bounds the mean conservatively.
            run.corr_mean_ci = _wilson_rate(min(max(run.corr_mean, 0.0), 1.0), n_rows)
            run.corr_mean_note = (
                f"95% Wilson over {n_rows} rows (every bootstrap resample gave {ci[0]:.3f})"
            )
    known = [p.rows for p in run.points.values() if p.rows is not None]
    if run.rows is None and known:
        run.rows = max(known)
    run.partial = run.limit is not None or run.rows is None or run.rows < FULL_ROWS
    return run
