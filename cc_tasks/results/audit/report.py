"""The audit in ``c2-report``: the audited row after each run with an ``audit.json`` beside
it, and the audit's summary on the run's judge card; an audit that no longer fits is ignored.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..schema import Point, Run
from .score import AUDIT_FILE, read_audit

log = logging.getLogger(__name__)


def audit_summary(block: Mapping[str, Any]) -> dict[str, Any]:
    """What the run's judge card records of an audit: n, who labelled, the agreement."""
    agreement = block.get("agreement") or {}
    return {
        "n": block.get("labels"),
        "labellers": block.get("labellers") or [],
        **{
            name: agreement.get(name)
            for name in ("kappa", "kappa_ci", "precision", "precision_ci", "recall", "recall_ci")
        },
    }


def _audit_folder(run: Run) -> Path | None:
    files = list(run.sample_files.values())
    if files:
        return Path(files[0]).resolve().parent
    return Path(run.source).resolve().parent if run.source else None


def audited_run(run: Run, block: Mapping[str, Any], source: Path) -> Run:
    """The corrected row of a run: PPI++ Corr@k and Corr_mean with their 95% intervals."""
    points = {}
    for k, v in (block.get("per_k") or {}).items():
        ci = v.get("ci95")
        points[int(k)] = Point(
            k=int(k),
            corr=v.get("estimate"),
            n=int(v.get("labels") or 0),
            yes=None,
            paths=int(v.get("paths") or 0),
            ci=(float(ci[0]), float(ci[1])) if ci else None,
        )
    mean = block.get("corr_mean") or {}
    mean_ci = mean.get("ci95")
    return Run(
        label=f"{run.label} (audited, n={block.get('labels')})",
        model=run.model,
        judge=f"{run.judge} + audit",
        source=str(source),
        origin="audit",
        family=run.family,
        run=run.run,
        points=points,
        corr_mean=mean.get("estimate"),
        corr_mean_ci=(float(mean_ci[0]), float(mean_ci[1])) if mean_ci else None,
        corr_mean_note="PPI++ 95% interval",
        rows=run.rows,
        limit=run.limit,
        partial=run.partial,
        strict=run.strict,
        paths_per_row=run.paths_per_row,
        judge_card=run.judge_card,
        provenance=run.provenance,
    )


def _stale(run: Run, block: Mapping[str, Any]) -> str:
    """Why an audit no longer fits its run (the run was redone or re-judged since), or ''."""
    for k, v in (block.get("per_k") or {}).items():
        point = run.points.get(int(k))
        if point is None or (point.exact and point.paths != v.get("paths")):
            return (
                f"k={k}: {v.get('paths')} paths audited, the run has {getattr(point, 'paths', 0)}"
            )
        raw = v.get("raw")
        known = point.exact and not run.strict and raw is not None and point.corr is not None
        if known and abs(raw - point.corr) > 1e-9:
            return f"k={k}: the judge's Corr@k was {raw:.4f} when audited, now {point.corr:.4f}"
    return ""


def audit_of(run: Run, *, quiet: bool = False) -> tuple[Path, dict[str, Any]] | None:
    """The run's block of the ``audit.json`` beside it and that file, or None where there is
    none or it no longer fits the run (logged unless ``quiet``: the viewer asks too)."""
    folder = _audit_folder(run)
    data = read_audit(folder) if folder is not None else None
    block = next((b for b in (data or {}).get("runs", []) if b.get("family") == run.family), None)
    if block is None or folder is None:
        return None
    stale = _stale(run, block)
    if stale:
        if not quiet:
            log.warning(
                "%s: ignored, it does not match run %s (%s)", folder / AUDIT_FILE, run.label, stale
            )
        return None
    return folder / AUDIT_FILE, block


def with_audits(runs: Sequence[Run]) -> list[Run]:
    """The runs, each followed by its audited row where an ``audit.json`` sits beside it; the
    run's judge card then records the audit (n, labellers, agreement)."""
    out: list[Run] = []
    for run in runs:
        out.append(run)
        found = audit_of(run)
        if found is None:
            continue
        source, block = found
        run.judge_card = {"name": run.judge, **run.judge_card, "audit": audit_summary(block)}
        out.append(audited_run(run, block, source))
    return out
