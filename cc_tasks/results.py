"""The Corr@k result schema: one owner for what ``c2-eval``/lm-eval and ``c2-judge`` write and
``c2-report`` (and the sample viewer) read.

Two kinds of result file, one object model (:class:`Run`, one per judged run):

- lm-eval's ``results_<date>.json`` (``c2-eval`` or ``lm_eval --output_path``):
  ``results[task]["corr,<judge>"]``, ``n-samples``, ``config`` (``limit``,
  ``model_args``) and ``configs[task].metadata.c2_eval`` (our provenance block,
  written by :class:`cc_tasks.c2_eval.task.C2EvalTask`). The
  ``samples_<task>_<date>.jsonl`` files beside it (``--log_samples``) give the
  exact verdict counts and the rows for the bootstrap.
- ``c2-judge``'s ``corr.json`` (``"schema": "c2_eval.corr/2"``, built by
  :func:`corr_document`; the version before it, without ``schema``, is read too).

Every :class:`Run` carries per k a :class:`Point` (Corr@k, the n behind it and a
95% Wilson interval), Corr_mean with a 95% bootstrap over rows (the eight k
share rows; :mod:`cc_tasks.stats`), the rows it ran and whether that is a partial
run, the judge card and the provenance.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cc_tasks.c2_eval.docs import PROVENANCE_KEY
from cc_tasks.errors import UsageError
from cc_tasks.files import atomic_write_text
from cc_tasks.judges.card import card_line, judge_card
from cc_tasks.judges.scoring import score
from cc_tasks.pku import EVAL_ROWS
from cc_tasks.prefill import PREFILL_LENGTHS
from cc_tasks.stats import BOOTSTRAP_ITERS, BOOTSTRAP_SEED, bootstrap_mean_over_rows, wilson
from cc_tasks.stats import wilson_interval as _wilson_rate

CORR_SCHEMA = "c2_eval.corr/2"
FULL_ROWS = EVAL_ROWS
"""Rows of a full C²-EVAL run (SPEC section 2); fewer, or any ``--limit``, is a partial run."""
GROUP = "c2_eval"
TASK_RE = re.compile(r"^(?P<family>.+)_k(?P<k>\d+)$")
RESULTS_RE = re.compile(r"^results_(?P<date>.+)\.json$")
INTERVAL_NOTE = (
    "Corr@k: share of judged paths that course-correct; [95% Wilson score interval], "
    "n = judged paths behind the value (valid verdicts). Corr_mean: mean of the Corr@k; "
    "[95% percentile bootstrap over rows, {iters} resamples, seed {seed}; where every resample "
    "gives the same mean, the 95% Wilson interval with the rows as n]: the eight k share their "
    "rows, so lm-eval's group stderr (which treats them as independent) is not used."
)


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


def _num(value: Any) -> float | None:
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
    """Exact points and per-row counts from judged sample files (:class:`cc_tasks.samples.SampleFile`)."""
    from cc_tasks.samples import sample_verdicts

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


def _finish(run: Run, iters: int, seed: int) -> Run:
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


# --------------------------------------------------------------------------- lm-eval results


def model_label(config: Mapping[str, Any]) -> str:
    """``pretrained`` basename (+ ``peft`` basename) from lm-eval's ``config.model_args``."""
    args = config.get("model_args") or ""
    if isinstance(args, str):
        pairs = dict(p.split("=", 1) for p in args.split(",") if "=" in p)
    else:
        pairs = {k: str(v) for k, v in dict(args).items()}
    name = pairs.get("pretrained") or pairs.get("model") or str(config.get("model") or "model")
    label = Path(name.rstrip("/")).name or name
    if pairs.get("peft"):
        label += f" + {Path(pairs['peft'].rstrip('/')).name}"
    return label


def _lm_eval_provenance(data: Mapping[str, Any], task: str) -> dict[str, Any]:
    """Our ``c2_eval`` block of one task plus what lm-eval records about the run."""
    configs = data.get("configs") or {}
    metadata = (configs.get(task) or {}).get("metadata") or {}
    block = dict(metadata.get(PROVENANCE_KEY) or {})
    config = data.get("config") or {}
    block["lm_eval"] = {
        "version": data.get("lm_eval_version"),
        "model": config.get("model"),
        "model_args": config.get("model_args"),
        "limit": config.get("limit"),
        "random_seed": config.get("random_seed"),
        "numpy_seed": config.get("numpy_seed"),
        "torch_seed": config.get("torch_seed"),
        "gen_kwargs": config.get("gen_kwargs"),
        "chat_template_sha": data.get("chat_template_sha"),
        "system_instruction_sha": data.get("system_instruction_sha"),
        "date": data.get("date"),
        "git_hash": data.get("git_hash"),  # lm-eval's: the git commit of the working directory
    }
    if "generation" not in block and isinstance(configs.get(task), Mapping):
        block["generation"] = configs[task].get("generation_kwargs")
    return block


def _samples_beside(path: Path, family: str, ks: Iterable[int]) -> dict[int, Path]:
    """``samples_<family>_k<k>_<date>.jsonl`` next to ``results_<date>.json`` (lm-eval's naming)."""
    match = RESULTS_RE.match(path.name)
    if not match:
        return {}
    found = {k: path.with_name(f"samples_{family}_k{k}_{match['date']}.jsonl") for k in ks}
    return {k: p for k, p in found.items() if p.is_file()}


def runs_from_lm_eval(
    data: Mapping[str, Any],
    path: Path,
    label: str | None = None,
    *,
    iters: int = BOOTSTRAP_ITERS,
    seed: int = BOOTSTRAP_SEED,
    with_samples: bool = True,
) -> list[Run]:
    """One :class:`Run` per (task family, judge) in an lm-eval results dict (``with_samples``:
    exact counts and the bootstrap from the sample files beside ``path``, when all are there)."""
    results = data.get("results")
    if not isinstance(results, Mapping):
        raise ReportError(f"{path}: no 'results' object (not an lm-eval or c2-judge result file)")
    groups = {**results, **(data.get("groups") or {})}
    configs = data.get("configs") or {}
    n_samples = data.get("n-samples") or {}
    config = data.get("config") or {}
    model = model_label(config)
    found: dict[tuple[str, str], dict[int, tuple[str, Mapping[str, Any]]]] = defaultdict(dict)
    for task, metrics in results.items():
        match = TASK_RE.match(task)
        if not match or not match["family"].startswith(GROUP) or not isinstance(metrics, Mapping):
            continue
        for key in metrics:
            metric, _, judge = key.partition(",")
            if judge and metric in ("corr", "invalid", "errors"):
                found[(match["family"], judge)][int(match["k"])] = (task, metrics)
    runs: dict[tuple[str, str], Run] = {}
    for (family, judge), per_k in found.items():
        first_task = per_k[min(per_k)][0]
        provenance = _lm_eval_provenance(data, first_task)
        task_config = configs.get(first_task) or {}
        run = runs[(family, judge)] = Run(
            label=label or f"{model} [{judge}]",
            model=model,
            judge=judge,
            source=str(path),
            origin="lm-eval",
            family=family,
            run=path.parent.name,
            limit=_num(config.get("limit")),
            strict=bool((task_config.get("metadata") or {}).get("strict")),
            paths_per_row=int(task_config.get("repeats") or 1),
            judge_card=provenance.get("judge_card") or {},
            provenance=provenance,
        )
        for k, (task, metrics) in sorted(per_k.items()):
            counts = n_samples.get(task) or {}
            rows = int(counts.get("effective", counts.get("original", 0)) or 0)
            corr = _num(metrics.get(f"corr,{judge}"))
            invalid = int(_num(metrics.get(f"invalid,{judge}")) or 0)
            errors = int(_num(metrics.get(f"errors,{judge}")) or 0)
            paths = rows * run.paths_per_row
            n = max(paths - errors - (0 if run.strict else invalid), 0)
            run.points[k] = Point(
                k=k,
                corr=corr,
                n=n,
                yes=None,
                paths=paths,
                invalid=invalid,
                errors=errors,
                corr_pos=_num(metrics.get(f"corr_pos,{judge}")),
                ci=_wilson_rate(corr, n) if corr is not None else None,
                rows=rows,
                stderr=_num(metrics.get(f"corr_stderr,{judge}")),
            )
    out = [run for run in runs.values() if run.corr]
    if not out:
        raise ReportError(f"{path}: no c2_eval_k* 'corr' results in it")
    for run in out:
        group = groups.get(run.family) or {}
        run.corr_mean = _num(group.get(f"corr,{run.judge}"))
        if with_samples:
            _attach_samples(run, path)
        _finish(run, iters, seed)
    return out


def _attach_samples(run: Run, path: Path) -> None:
    """Exact counts and per-row data from the run's sample files, when all of them are there."""
    from cc_tasks.samples import read_sample_file

    files = _samples_beside(path, run.family, run.points)
    if not files or set(files) != set(run.points):
        return
    sample_files = [
        read_sample_file(p, path.parent.name, need_row_id=False) for p in files.values()
    ]
    points, counts = points_from_samples(sample_files, strict=run.strict)
    for k, exact in points.items():
        reported = run.points[k].corr
        if (reported is None) != (exact.corr is None) or (
            reported is not None and not math.isclose(reported, exact.corr or 0.0, abs_tol=1e-9)
        ):
            raise ReportError(
                f"{files[k]}: its verdicts give Corr@{k} = {exact.corr}, but {path} reports "
                f"{reported}; the samples do not belong to this results file"
            )
        exact.stderr = run.points[k].stderr
        run.points[k] = exact
    run.row_counts = counts
    run.sample_files = {k: str(p) for k, p in sorted(files.items())}


# --------------------------------------------------------------------------- c2-judge corr.json


def judged_runs(
    rejudged: Sequence[Any],
    *,
    judge: Any,
    strict: bool,
    originals: Sequence[Any] = (),
    iters: int = BOOTSTRAP_ITERS,
    seed: int = BOOTSTRAP_SEED,
) -> list[Run]:
    """The runs of re-judged sample files (``c2-judge rejudge`` output), one per (run, family).

    ``judge``: the :class:`~cc_tasks.judges.Judge` (or its ``describe()`` dict).
    ``originals``: the input sample files, in the same order; the lm-eval results
    file beside them (same date) gives the model, ``--limit`` and the provenance.
    """
    card = judge_card(judge)
    description = judge.describe() if hasattr(judge, "describe") else dict(judge)
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, sf in enumerate(rejudged):
        groups[(sf.run, sf.family)].append(i)
    runs = []
    for (run_name, family), indices in sorted(groups.items()):
        points, counts = points_from_samples([rejudged[i] for i in indices], strict=strict)
        source = _source_run([originals[i] for i in indices if i < len(originals)], family)
        provenance: dict[str, Any] = dict(source.provenance) if source else {}
        if source:
            provenance["rejudged_from"] = {
                "results": source.source,
                "judge_card": source.judge_card,
            }
        provenance["judge_card"] = card
        provenance["judge"] = description
        provenance["strict"] = strict
        run = Run(
            label=f"{source.model if source else run_name} [{card.get('name') or judge}]",
            model=source.model if source else run_name,
            judge=str(card.get("name")),
            source="",
            origin="c2-judge",
            family=family,
            run=run_name,
            points=points,
            limit=source.limit if source else None,
            strict=strict,
            paths_per_row=source.paths_per_row if source else 1,
            judge_card=card,
            provenance=provenance,
            sample_files={rejudged[i].samples[0].k: str(rejudged[i].path) for i in indices},
            row_counts=counts,
        )
        runs.append(_finish(run, iters, seed))
    return runs


def _source_run(originals: Sequence[Any], family: str) -> Run | None:
    """The lm-eval run the original sample files came from (its results file), if it is there."""
    for sf in originals:
        date = getattr(sf, "date", "")
        candidate = Path(sf.path).with_name(f"results_{date}.json") if date else None
        if candidate is None or not candidate.is_file():
            continue
        try:
            data = json.loads(candidate.read_text(encoding="utf-8"))
            runs = runs_from_lm_eval(data, candidate, with_samples=False)
        except (ValueError, OSError):
            continue
        for run in runs:
            if run.family == family:
                return run
    return None


def corr_document(
    runs: Sequence[Run], *, judge: Any, strict: bool, inputs: Sequence[str]
) -> dict[str, Any]:
    """The ``corr.json`` document of ``c2-judge rejudge`` (schema :data:`CORR_SCHEMA`)."""
    description = judge.describe() if hasattr(judge, "describe") else dict(judge)
    totals = {
        "errors": sum(r.errors for r in runs),
        "invalid": sum(r.invalid for r in runs),
        "n": sum(r.paths for r in runs),
    }
    blocks = []
    for run in runs:
        per_k = {}
        for k, p in sorted(run.points.items()):
            per_k[str(k)] = {
                "n": p.paths,
                "yes": p.yes,
                "no": None if p.yes is None else p.n - p.yes - (p.invalid if strict else 0),
                "invalid": p.invalid,
                "errors": p.errors,
                "corr": p.corr,
                "corr_pos": p.corr_pos,
                "strict": strict,
                "valid_n": p.n,
                "ci": list(p.ci) if p.ci else None,
                "rows": p.rows,
            }
        blocks.append(
            {
                "run": run.run,
                "family": run.family,
                "model": run.model,
                "per_k": per_k,
                "corr_mean": None if run.corr_mean is None else round(run.corr_mean, 4),
                "corr_mean_ci": list(run.corr_mean_ci) if run.corr_mean_ci else None,
                "corr_mean_note": run.corr_mean_note,
                "reference_list": run.reference_list(),
                "rows": run.rows,
                "limit": run.limit,
                "partial": run.partial,
                "samples": {str(k): v for k, v in sorted(run.sample_files.items())},
                "provenance": run.provenance,
            }
        )
    return {
        "schema": CORR_SCHEMA,
        "judge": description,
        "judge_card": runs[0].judge_card if runs else judge_card(description),
        "strict": strict,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "inputs": list(inputs),
        "totals": totals,
        "results": blocks,
    }


def runs_from_corr(
    data: Mapping[str, Any],
    path: Path,
    label: str | None = None,
    *,
    iters: int = BOOTSTRAP_ITERS,
    seed: int = BOOTSTRAP_SEED,
) -> list[Run]:
    """The runs of a ``c2-judge`` ``corr.json`` (this schema or the one before it)."""
    blocks = data.get("results")
    if not isinstance(blocks, list):
        raise ReportError(f"{path}: no 'results' list (not a c2-judge corr.json)")
    description = data.get("judge") if isinstance(data.get("judge"), Mapping) else {}
    card = data.get("judge_card") or judge_card(description or {"kind": "?"})
    strict = bool(data.get("strict"))
    judge = str(card.get("name") or description.get("name") or "?")
    runs = []
    for i, block in enumerate(blocks):
        where = f"{path}: results[{i}]"
        if not isinstance(block, Mapping) or not isinstance(block.get("per_k"), Mapping):
            raise ReportError(f"{where}: field 'per_k': missing or not an object")
        model = str(block.get("model") or block.get("run") or "model")
        run = Run(
            label=label or f"{model} [{judge}]",
            model=model,
            judge=judge,
            source=str(path),
            origin="c2-judge",
            family=str(block.get("family") or GROUP),
            run=str(block.get("run") or ""),
            limit=_num(block.get("limit")),
            strict=strict,
            judge_card=dict(card),
            provenance=dict(block.get("provenance") or {}),
            rows=block.get("rows") if isinstance(block.get("rows"), int) else None,
        )
        for key, s in block["per_k"].items():
            if not str(key).isdigit() or not isinstance(s, Mapping):
                raise ReportError(f"{where}: field 'per_k.{key}': expected k -> counts")
            k = int(key)
            yes, no, invalid = (int(s.get(f) or 0) for f in ("yes", "no", "invalid"))
            n = yes + no + (invalid if strict else 0)
            run.points[k] = Point(
                k=k,
                corr=_num(s.get("corr")),
                n=n,
                yes=yes,
                paths=int(s.get("n") or 0),
                invalid=invalid,
                errors=int(s.get("errors") or 0),
                corr_pos=_num(s.get("corr_pos")),
                ci=wilson(yes, n),
                rows=s.get("rows") if isinstance(s.get("rows"), int) else None,
                exact=True,
            )
        ci = block.get("corr_mean_ci")
        if isinstance(ci, list) and len(ci) == 2 and all(_num(v) is not None for v in ci):
            run.corr_mean_ci = (float(ci[0]), float(ci[1]))
            run.corr_mean_note = str(block.get("corr_mean_note") or "95% bootstrap over rows")
        run.corr_mean = _num(block.get("corr_mean"))
        _corr_samples(run, path, block)
        if run.corr:
            runs.append(_finish(run, iters, seed))
    if not runs:
        raise ReportError(f"{path}: no Corr@k values in it")
    return runs


def _corr_samples(run: Run, path: Path, block: Mapping[str, Any]) -> None:
    """Sample files of a corr.json block (listed, else ``<folder>/<run>/samples_*``) for the
    bootstrap and rows, when the file predates them or was written without them."""
    from cc_tasks.samples import read_sample_file, task_and_date

    listed = block.get("samples") if isinstance(block.get("samples"), Mapping) else {}
    files: dict[int, Path] = {}
    for key, name in listed.items():
        candidate = Path(str(name))
        candidate = candidate if candidate.is_absolute() else path.parent / candidate
        if str(key).isdigit() and candidate.is_file():
            files[int(key)] = candidate
    if not files and block.get("run"):
        for candidate in sorted((path.parent / str(block["run"])).glob("samples_*.jsonl")):
            task, _ = task_and_date(candidate)
            match = TASK_RE.match(task)
            if match and match["family"] == run.family:
                files[int(match["k"])] = candidate
    if not files or set(files) != set(run.points):
        return
    run.sample_files = {k: str(p) for k, p in sorted(files.items())}
    if run.corr_mean_ci is not None and run.rows is not None:
        return
    sample_files = [
        read_sample_file(p, str(block.get("run")), need_row_id=False) for p in files.values()
    ]
    points, counts = points_from_samples(sample_files, strict=run.strict)
    for k, point in points.items():
        run.points[k].rows = point.rows
    run.row_counts = counts


# --------------------------------------------------------------------------- finding and loading


def find_result_files(paths: Iterable[str | Path]) -> list[Path]:
    """Result files: given files as they are; folders searched for ``results*.json`` and ``corr.json``."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            found = sorted({*path.rglob("results*.json"), *path.rglob("corr.json")})
            if not found:
                raise ReportError(f"{path}: no results*.json or corr.json below this folder")
            files.extend(found)
        else:
            raise ReportError(f"{path}: no such file or folder")
    return files


def read_result_file(
    path: Path,
    label: str | None = None,
    *,
    iters: int = BOOTSTRAP_ITERS,
    seed: int = BOOTSTRAP_SEED,
) -> list[Run]:
    """The runs of one file, whichever of the two kinds it is."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ReportError(f"{path}: not valid JSON ({err.msg})") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ReportError(
            f"{path}: cannot read ({getattr(err, 'strerror', None) or err})"
        ) from None
    if not isinstance(data, Mapping):
        raise ReportError(f"{path}: expected a JSON object")
    if data.get("schema") == CORR_SCHEMA or isinstance(data.get("results"), list):
        return runs_from_corr(data, path, label, iters=iters, seed=seed)
    return runs_from_lm_eval(data, path, label, iters=iters, seed=seed)


def load_runs(
    paths: Sequence[str | Path],
    labels: Sequence[str] | None = None,
    *,
    iters: int = BOOTSTRAP_ITERS,
    seed: int = BOOTSTRAP_SEED,
) -> list[Run]:
    """All runs of all inputs, in order; ``labels`` name the inputs (one per input path)."""
    runs: list[Run] = []
    for i, raw in enumerate(paths):
        label = labels[i] if labels and i < len(labels) else None
        found: list[Run] = []
        for file in find_result_files([raw]):
            found.extend(read_result_file(file, label, iters=iters, seed=seed))
        if label and len(found) > 1:
            for run in found:
                run.label = f"{label} [{run.judge}]"
        runs.extend(found)
    return runs


# --------------------------------------------------------------------------- tables


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _interval(ci: tuple[float, float] | None) -> str:
    return "" if ci is None else f" [{ci[0]:.3f}, {ci[1]:.3f}]"


def point_cell(point: Point | None) -> str:
    """``0.100 [0.018, 0.404] n=20``: Corr@k, its 95% Wilson interval, the n behind it."""
    if point is None or point.corr is None:
        return "-"
    return f"{_rate(point.corr)}{_interval(point.ci)} n={point.n}"


def mean_cell(run: Run) -> str:
    if run.corr_mean is None:
        return "-"
    if run.corr_mean_ci is None:
        return f"{_rate(run.corr_mean)} ({run.corr_mean_note})"
    return f"{_rate(run.corr_mean)}{_interval(run.corr_mean_ci)}"


def markdown_table(runs: Sequence[Run]) -> str:
    """Runs side by side: one row per run, Corr@k columns with intervals and n, then the notes."""
    ks = sorted({k for r in runs for k in r.ks}) or list(PREFILL_LENGTHS)
    head = ["run", "judge", "rows", *[f"Corr@{k}" for k in ks], "Corr_mean", "invalid", "errors"]
    head.append("pos")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in runs:
        label = f"{r.label} ⚠ partial" if r.partial else r.label
        rows = "?" if r.rows is None else f"{r.rows}/{FULL_ROWS}"
        cells = [label, r.judge, rows, *[point_cell(r.points.get(k)) for k in ks]]
        cells += [mean_cell(r), str(r.invalid), str(r.errors)]
        cells.append("-" if r.corr_pos is None else f"{r.corr_pos:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def table_notes(
    runs: Sequence[Run], *, iters: int = BOOTSTRAP_ITERS, seed: int = BOOTSTRAP_SEED
) -> str:
    """What the brackets are, which runs are partial, and each judge's card."""
    lines = [INTERVAL_NOTE.format(iters=iters, seed=seed)]
    if any(r.paths_per_row > 1 for r in runs):
        lines.append(
            "Runs with several paths per row: paths of one row are correlated; the Wilson "
            "interval treats them as independent (too narrow), the bootstrap over rows does not."
        )
    for r in runs:
        if r.partial:
            lines.append(f"⚠ {r.label}: {r.partial_note} (a smoke test, not a C²-EVAL result).")
    seen: set[str] = set()
    for r in runs:
        line = (
            card_line(r.judge_card) if r.judge_card else f"{r.judge}: no judge card in {r.source}"
        )
        if line not in seen:
            seen.add(line)
            lines.append(f"Judge {line}.")
    return "\n".join(f"- {line}" for line in lines)


def corr_markdown(document: Mapping[str, Any]) -> str:
    """``corr.md``: per run, one row per k with the counts, Corr@k and its Wilson interval."""
    judge = document.get("judge") or {}
    card = document.get("judge_card") or {}
    lines = [f"# Corr@k judged by {judge.get('name')}", ""]
    lines.append(f"Judge: `{json.dumps(judge, sort_keys=True)}`; strict: {document.get('strict')}.")
    if card:
        lines.append(f"Judge card: {card_line(card)}.")
    for block in document.get("results") or []:
        partial = " (⚠ partial: a smoke test, not a result)" if block.get("partial") else ""
        lines += ["", f"## {block['run']} / {block['family']}{partial}", ""]
        rows = block.get("rows")
        lines.append(f"Rows: {'?' if rows is None else rows} of {FULL_ROWS}.")
        lines += ["", "| k | n | yes | no | invalid | errors | Corr@k | corr_pos | 95% Wilson |"]
        lines.append("|---|---|---|---|---|---|---|---|---|")
        for k, s in sorted(block["per_k"].items(), key=lambda kv: int(kv[0])):
            ci = s.get("ci")
            lines.append(
                f"| {k} | {s['n']} | {s['yes']} | {s['no']} | {s['invalid']} | {s['errors']} "
                f"| {_fixed(s['corr'])} | {_fixed(s['corr_pos'], 2)} "
                f"| {'-' if not ci else f'[{ci[0]:.4f}, {ci[1]:.4f}]'} |"
            )
        ci = block.get("corr_mean_ci")
        interval = f"[{ci[0]:.4f}, {ci[1]:.4f}]" if ci else block.get("corr_mean_note", "")
        lines.append(f"| mean | | | | | | {_fixed(block['corr_mean'])} | | {interval} |")
        lines += ["", f"Reference list: `{json.dumps(block['reference_list'])}`"]
    return "\n".join(lines) + "\n"


def _fixed(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def write_corr(out: Path, document: Mapping[str, Any]) -> str:
    """Write ``corr.json`` and ``corr.md`` under ``out`` (each atomically); returns the markdown."""
    markdown = corr_markdown(document)
    text = json.dumps(json_safe(document), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    atomic_write_text(out / "corr.json", text)
    atomic_write_text(out / "corr.md", markdown)
    return markdown


__all__ = [
    "CORR_SCHEMA",
    "FULL_ROWS",
    "Point",
    "ReportError",
    "Run",
    "corr_document",
    "corr_markdown",
    "find_result_files",
    "json_safe",
    "judged_runs",
    "load_runs",
    "markdown_table",
    "model_label",
    "point_cell",
    "points_from_samples",
    "read_result_file",
    "runs_from_corr",
    "runs_from_lm_eval",
    "table_notes",
    "write_corr",
]
