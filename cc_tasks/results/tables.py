"""Markdown tables of runs side by side (``c2-report``'s ``report.md``), with their notes."""

from __future__ import annotations

from collections.abc import Sequence

from cc_tasks.judges.card import card_line
from cc_tasks.prefill import PREFILL_LENGTHS
from cc_tasks.stats import BOOTSTRAP_ITERS, BOOTSTRAP_SEED

from .schema import FULL_ROWS, Point, Run

INTERVAL_NOTE = (
    "Corr@k: share of judged paths that course-correct; [95% Wilson score interval], "
    "n = judged paths behind the value (valid verdicts). Corr_mean: mean of the Corr@k; "
    "[95% percentile bootstrap over rows, {iters} resamples, seed {seed}; where every resample "
    "gives the same mean, the 95% Wilson interval with the rows as n]: the eight k share their "
    "rows, so lm-eval's group stderr (which treats them as independent) is not used."
)


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
    if any(r.origin == "audit" for r in runs):
        lines.append(
            "(audited, n=...) rows: Corr@k corrected by a blind audit of the run (c2-judge "
            "audit): PPI++ from the judge's verdicts on every path and n labelled paths (cells: "
            "labels at that k), [95% normal interval]; counts every path, invalid ones included."
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
