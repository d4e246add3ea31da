"""C²-EVAL reports: :class:`~cc_tasks.results.Run` objects -> CSV, JSON and the Corr@k plot.

The result schema, its readers and the markdown tables live beside it in
:mod:`cc_tasks.results`; this module only renders runs for ``c2-report``.
The plot draws each run's 95% Wilson intervals as error bars, offsets runs
slightly along k and gives each its own marker so overlapping runs stay
visible, draws partial runs dashed with hollow markers, and says in a caption
what the bars are.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

from cc_tasks.files import atomic_path, atomic_write_text
from cc_tasks.prefill import PREFILL_LENGTHS

from .schema import FULL_ROWS, Run, json_safe

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
CAPTION = (
    "Bars: 95% Wilson score interval of each Corr@k (n = judged paths per point, in the legend); "
    "audited rows: the PPI++ 95% normal interval (n = labelled paths). "
    "Mean: Corr_mean [95% bootstrap over rows; Wilson over rows where every resample agrees]. "
    "Dashed, hollow: partial run (< {full} rows or "
    "--limit): a smoke test. Runs are offset slightly along k so that they do not hide each other."
)


def write_csv(runs: Sequence[Run], path: Path) -> None:
    """One row per run: Corr@k with its interval and n per k, then Corr_mean and its interval."""
    ks = sorted({k for r in runs for k in r.ks})
    per_k = [f"{name}@{k}" for k in ks for name in ("corr", "low", "high", "n")]
    head = ["run", "model", "judge", "rows", "partial", *per_k, "corr_mean"]
    head += ["corr_mean_low", "corr_mean_high", "paths", "invalid", "errors", "corr_pos", "source"]
    with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(head)
        for r in runs:
            cells: list[object] = [r.label, r.model, r.judge, _blank(r.rows), r.partial]
            for k in ks:
                p = r.points.get(k)
                if p is None or p.corr is None:
                    cells += ["", "", "", ""]
                else:
                    ci = p.ci or ("", "")
                    cells += [p.corr, ci[0], ci[1], p.n]
            mean_ci = r.corr_mean_ci or ("", "")
            cells += [_blank(r.corr_mean), mean_ci[0], mean_ci[1], r.paths, r.invalid, r.errors]
            cells += [_blank(r.corr_pos), r.source]
            writer.writerow(cells)


def _blank(value: object) -> object:
    return "" if value is None else value


def write_json(runs: Sequence[Run], path: Path) -> None:
    """Every run with its points, intervals, judge card and provenance (strict JSON)."""
    data = json_safe([r.to_dict() for r in runs])
    text = json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False)
    atomic_write_text(path, text + "\n")


def _legend(run: Run) -> str:
    ns = sorted({p.n for p in run.points.values() if p.corr is not None})
    n = "n=?" if not ns else f"n={ns[0]}" if len(ns) == 1 else f"n={ns[0]}–{ns[-1]}"
    mean = ""
    if run.corr_mean is not None:
        ci = run.corr_mean_ci
        interval = f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else " (no bootstrap: no samples)"
        mean = f"; mean {run.corr_mean:.3f}{interval}"
    partial = f"; PARTIAL {run.rows if run.rows is not None else '?'}/{FULL_ROWS} rows"
    judge = "" if run.judge in run.label else f" (judge {run.judge})"
    return f"{run.label}{judge}{mean}; {n} per k{partial if run.partial else ''}"


def plot(runs: Sequence[Run], path: Path, title: str = "C²-EVAL: course-correction rate") -> None:
    """Corr@k curves with 95% Wilson error bars, one marker and a small k offset per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.4, 5.4), dpi=120)
    width = min(6.0, 1.6 * len(runs))  # total spread of the offsets along k (k steps are 10)
    for i, r in enumerate(runs):
        ks = r.ks
        offset = 0.0 if len(runs) == 1 else -width / 2 + width * i / (len(runs) - 1)
        xs = [k + offset for k in ks]
        ys = [r.points[k].corr for k in ks]
        low = [max(0.0, y - (r.points[k].ci or (y, y))[0]) for k, y in zip(ks, ys, strict=True)]
        high = [max(0.0, (r.points[k].ci or (y, y))[1] - y) for k, y in zip(ks, ys, strict=True)]
        marker = MARKERS[i % len(MARKERS)]
        bars = ax.errorbar(
            xs,
            ys,
            yerr=[low, high],
            marker=marker,
            markersize=6,
            capsize=3,
            linewidth=1.4,
            linestyle="--" if r.partial else "-",
            label=_legend(r),
            zorder=3 + i,
        )
        if r.partial:  # hollow markers: a partial run must not look like a result
            bars.lines[0].set_markerfacecolor("white")
    ax.set_xlabel("prefill length k (words of harmful text forced on the model)")
    ax.set_ylabel("Corr@k (share of judged paths that course-correct)")
    ax.set_ylim(-0.03, 1.03)
    ax.set_xticks(sorted({k for r in runs for k in r.ks}) or list(PREFILL_LENGTHS))
    ax.grid(alpha=0.3)
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=1, frameon=False)
    fig.text(
        0.5, 0.005, _wrap(CAPTION.format(full=FULL_ROWS)), ha="center", va="bottom", fontsize=7
    )
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    plt.close(fig)


def _wrap(text: str, width: int = 130) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))
