"""``c2-judge``'s ``corr.json``: building it from re-judged samples, writing it, reading it.

``c2-judge rejudge`` writes ``corr.json`` (``"schema": "c2_eval.corr/2"``, built by
:func:`corr_document`) and ``corr.md`` (:func:`corr_markdown`); ``c2-report`` reads
it back with :func:`runs_from_corr` (the version before it, without ``schema``, too).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cc_tasks.files import atomic_write_text
from cc_tasks.judges.card import card_line, judge_card
from cc_tasks.stats import BOOTSTRAP_ITERS, BOOTSTRAP_SEED, wilson

from .lmeval import runs_from_lm_eval
from .samples import read_sample_file, task_and_date
from .schema import (
    FULL_ROWS,
    GROUP,
    TASK_RE,
    Point,
    ReportError,
    Run,
    finish_run,
    finite_number,
    json_safe,
    points_from_samples,
)

CORR_SCHEMA = "c2_eval.corr/2"


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
        runs.append(finish_run(run, iters, seed))
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
            limit=finite_number(block.get("limit")),
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
                corr=finite_number(s.get("corr")),
                n=n,
                yes=yes,
                paths=int(s.get("n") or 0),
                invalid=invalid,
                errors=int(s.get("errors") or 0),
                corr_pos=finite_number(s.get("corr_pos")),
                ci=wilson(yes, n),
                rows=s.get("rows") if isinstance(s.get("rows"), int) else None,
                exact=True,
            )
        ci = block.get("corr_mean_ci")
        if isinstance(ci, list) and len(ci) == 2 and all(finite_number(v) is not None for v in ci):
            run.corr_mean_ci = (float(ci[0]), float(ci[1]))
            run.corr_mean_note = str(block.get("corr_mean_note") or "95% bootstrap over rows")
        run.corr_mean = finite_number(block.get("corr_mean"))
        _corr_samples(run, path, block)
        if run.corr:
            runs.append(finish_run(run, iters, seed))
    if not runs:
        raise ReportError(f"{path}: no Corr@k values in it")
    return runs


def _corr_samples(run: Run, path: Path, block: Mapping[str, Any]) -> None:
    """Sample files of a corr.json block (listed, else ``<folder>/<run>/samples_*``) for the
    bootstrap and rows, when the file predates them or was written without them."""
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
