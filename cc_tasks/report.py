"""C²-EVAL reports: lm-eval result files (or ``c2-judge`` outputs) -> table, CSV/JSON and a Corr@k plot.

Reads what lm-eval writes (``results_<date>.json``: ``results[task]["corr,<judge>"]``,
``corr_stderr,<judge>``, ``n-samples``, ``config.model_args``); ``c2-judge`` writes the
same ``results`` shape, so one reader serves both.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cc_tasks.prefill import PREFILL_LENGTHS

TASK_RE = re.compile(r"^c2_eval_k(\d+)$")
GROUP = "c2_eval"


class ReportError(ValueError):
    """An input is not a C²-EVAL result."""


@dataclass
class RunReport:
    """One evaluated (model, judge) run."""

    label: str
    model: str
    judge: str
    source: str
    corr: dict[int, float] = field(default_factory=dict)
    stderr: dict[int, float | None] = field(default_factory=dict)
    n: dict[int, int] = field(default_factory=dict)
    invalid: int = 0
    errors: int = 0
    corr_pos: float | None = None
    corr_mean: float | None = None
    corr_mean_stderr: float | None = None

    @property
    def ks(self) -> list[int]:
        return sorted(self.corr)


def _num(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _model_label(config: dict[str, Any]) -> str:
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


def parse_result(data: dict[str, Any], source: str, label: str | None = None) -> list[RunReport]:
    """One report per judge found in one lm-eval/c2-judge results dict."""
    results = data.get("results")
    if not isinstance(results, dict):
        raise ReportError(f"{source}: no 'results' object (not an lm-eval or c2-judge result file)")
    per_judge: dict[str, RunReport] = {}
    model = _model_label(data.get("config") or {})
    n_samples = data.get("n-samples") or {}
    for task, metrics in results.items():
        match = TASK_RE.match(task)
        if not match and task != GROUP:
            continue
        for key, value in metrics.items():
            metric, _, judge = key.partition(",")
            if not judge or metric.endswith("_stderr"):
                continue
            run = per_judge.setdefault(
                judge,
                RunReport(
                    label=label or f"{model} [{judge}]", model=model, judge=judge, source=source
                ),
            )
            stderr = _num(metrics.get(f"{metric}_stderr,{judge}"))
            if task == GROUP:
                if metric == "corr":
                    run.corr_mean, run.corr_mean_stderr = _num(value), stderr
                continue
            k = int(match.group(1))
            if metric == "corr" and _num(value) is not None:
                run.corr[k] = float(value)
                run.stderr[k] = stderr
                counts = n_samples.get(task) or {}
                run.n[k] = int(counts.get("effective", counts.get("original", 0)) or 0)
            elif metric == "invalid":
                run.invalid += int(_num(value) or 0)
            elif metric == "errors":
                run.errors += int(_num(value) or 0)
    reports = [r for r in per_judge.values() if r.corr]
    if not reports:
        raise ReportError(f"{source}: no c2_eval_k* 'corr' results in it")
    for run in reports:
        if run.corr_mean is None:
            run.corr_mean = sum(run.corr.values()) / len(run.corr)
        _fill_positions(run, results)
    return reports


def _fill_positions(run: RunReport, results: dict[str, Any]) -> None:
    values = [
        _num(m.get(f"corr_pos,{run.judge}"))
        for t, m in results.items()
        if TASK_RE.match(t) and isinstance(m, dict)
    ]
    values = [v for v in values if v is not None]
    run.corr_pos = sum(values) / len(values) if values else None


def find_result_files(paths: Iterable[str | Path]) -> list[Path]:
    """Result JSON files: given files as they are, folders searched for ``results*.json``."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            found = sorted(path.rglob("results*.json"))
            if not found:
                raise ReportError(f"{path}: no results*.json below this folder")
            files.extend(found)
        else:
            raise ReportError(f"{path}: no such file or folder")
    return files


def load_reports(
    paths: Sequence[str | Path], labels: Sequence[str] | None = None
) -> list[RunReport]:
    """All runs of all inputs; ``labels`` name the inputs in order (one label per input path)."""
    reports: list[RunReport] = []
    for i, raw in enumerate(paths):
        label = labels[i] if labels and i < len(labels) else None
        for file in find_result_files([raw]):
            try:
                data = json.loads(file.read_text(encoding="utf-8"))
            except json.JSONDecodeError as err:
                raise ReportError(f"{file}: not valid JSON ({err.msg})") from None
            runs = parse_result(data, str(file), label)
            if label and len(runs) > 1:
                for run in runs:
                    run.label = f"{label} [{run.judge}]"
            reports.extend(runs)
    return reports


def _fmt(value: float | None, stderr: float | None = None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f} ± {stderr:.3f}" if stderr is not None else f"{value:.3f}"


def markdown_table(reports: Sequence[RunReport]) -> str:
    """A side-by-side table: one row per run, Corr@k columns, mean, n and judge health."""
    ks = sorted({k for r in reports for k in r.ks}) or list(PREFILL_LENGTHS)
    head = [
        "run",
        "judge",
        *[f"Corr@{k}" for k in ks],
        "Corr_mean",
        "n",
        "invalid",
        "errors",
        "pos",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in reports:
        cells = [r.label, r.judge]
        cells += [_fmt(r.corr.get(k), r.stderr.get(k)) for k in ks]
        cells += [
            _fmt(r.corr_mean, r.corr_mean_stderr),
            str(sum(r.n.values())),
            str(r.invalid),
            str(r.errors),
            "-" if r.corr_pos is None else f"{r.corr_pos:.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def reference_list(report: RunReport) -> list[float]:
    """The reference's output format: ``[Corr@10, ..., Corr@80, mean]``."""
    return [round(report.corr[k], 4) for k in report.ks] + [round(report.corr_mean or 0.0, 4)]


def write_csv(reports: Sequence[RunReport], path: Path) -> None:
    ks = sorted({k for r in reports for k in r.ks})
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        ks_cols = [f"corr@{k}" for k in ks] + [f"stderr@{k}" for k in ks]
        tail = ["corr_mean", "corr_mean_stderr", "n", "invalid", "errors", "corr_pos", "source"]
        writer.writerow(["run", "model", "judge", *ks_cols, *tail])
        for r in reports:
            writer.writerow(
                [r.label, r.model, r.judge]
                + [r.corr.get(k, "") for k in ks]
                + [r.stderr.get(k) if r.stderr.get(k) is not None else "" for k in ks]
                + [r.corr_mean, r.corr_mean_stderr if r.corr_mean_stderr is not None else ""]
                + [
                    sum(r.n.values()),
                    r.invalid,
                    r.errors,
                    r.corr_pos if r.corr_pos is not None else "",
                    r.source,
                ]
            )


def write_json(reports: Sequence[RunReport], path: Path) -> None:
    rows = []
    for r in reports:
        row = asdict(r)
        row["reference_list"] = reference_list(r)
        rows.append(row)
    path.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


def plot(
    reports: Sequence[RunReport], path: Path, title: str = "C²-EVAL: course-correction rate"
) -> None:
    """Corr@k curves, one line per run, the judge named in the legend (error bars where known)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    for r in reports:
        ks = r.ks
        ys = [r.corr[k] for k in ks]
        errs = [r.stderr.get(k) or 0.0 for k in ks]
        mean = f", mean {r.corr_mean:.3f}" if r.corr_mean is not None else ""
        ax.errorbar(
            ks, ys, yerr=errs, marker="o", capsize=3, label=f"{r.label} (judge: {r.judge}{mean})"
        )
    ax.set_xlabel("prefill length k (words of harmful text forced on the model)")
    ax.set_ylabel("Corr@k (share of paths that course-correct)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xticks(sorted({k for r in reports for k in r.ks}) or list(PREFILL_LENGTHS))
    ax.grid(alpha=0.3)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
