"""Score: the judge's agreement with the labels and the PPI++ corrected Corr@k and Corr_mean
of each run (and the corrected difference of two), as JSON and markdown; and the label budget.

The estimand is the share of a run's paths that truly course-correct, counting every path
(the judge's own Corr@k leaves invalid verdicts out; here they count as its "no"). The
estimator and its variance are :func:`cc_tasks.stats.ppi_combination`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cc_tasks.files import atomic_write_text
from cc_tasks.stats import (
    PPIStratum,
    bootstrap_over_items,
    confusion,
    point_metrics,
    ppi_combination,
    ppi_half_width,
    yes_counts,
)

from .prepare import match_runs
from .runs import LABELS, AuditError, AuditPath, AuditRun, digest

AUDIT_SCHEMA = "c2-audit/2"
"""Version 2 adds each run's labelled paths (``items``); version 1 files stay readable."""
READABLE_SCHEMAS = ("c2-audit/1", AUDIT_SCHEMA)
AUDIT_FILE = "audit.json"


def _judged_yes(verdict: str) -> str:
    return "yes" if verdict == "yes" else "no"


def _item(
    item_id: str, path: AuditPath, label: str, labeller: str, sha: str | None
) -> dict[str, Any]:
    """One labelled path as audit.json records it: the sample viewer shows it beside the verdict
    (``sha`` lets it skip a path whose text changed since)."""
    return {
        "id": item_id,
        "k": path.k,
        "row": path.row,
        "path": path.path,
        "label": label,
        "labeller": labeller,
        "verdict": path.verdict,
        "agrees": label == _judged_yes(path.verdict),
        "sha": sha,
    }


def _item_order(item: Mapping[str, Any]) -> tuple[int, str, int]:
    return (item["k"], item["row"], item["path"])


def _raw_corr(paths: Sequence[AuditPath]) -> float | None:
    yes = sum(p.verdict == "yes" for p in paths)
    valid = sum(p.verdict in LABELS for p in paths)
    return yes / valid if valid else None


def _agreement(truth: list[str], judged: list[str]) -> dict[str, Any]:
    metrics = point_metrics(truth, judged)
    intervals = bootstrap_over_items(truth, judged)
    counts = yes_counts(truth, judged)
    return {
        "n": len(truth),
        "kappa": metrics["kappa"],
        "kappa_ci": intervals["kappa"],
        "accuracy": metrics["accuracy"],
        "precision": counts.precision,
        "precision_ci": list(counts.precision_ci) if counts.precision_ci else None,
        "recall": counts.recall,
        "recall_ci": list(counts.recall_ci) if counts.recall_ci else None,
        "confusion": confusion(truth, judged, LABELS, LABELS),
        "intervals": "kappa: percentile bootstrap over items; precision, recall: Wilson",
    }


def _strata(
    run: AuditRun, labelled: Mapping[int, list[tuple[AuditPath, str]]], group: int
) -> dict[int, PPIStratum]:
    out = {}
    for k in run.ks:
        items = sorted(labelled.get(k, []), key=lambda pair: pair[0].key)
        if not items:
            raise AuditError(f"run {run.name}: no label at k={k}; label at least one path per k")
        everything = run.at(k)
        out[k] = PPIStratum(
            f_all=[p.verdict == "yes" for p in everything],
            rows_all=[p.row for p in everything],
            y=[label == "yes" for _, label in items],
            f=[p.verdict == "yes" for p, _ in items],
            sample_key=tuple(p.key for p, _ in items),
            group=group,
        )
    return out


def _interval(result: Mapping[str, Any], low: float = 0.0, high: float = 1.0) -> dict[str, Any]:
    """Estimate, se and the 95% interval cut to the range the quantity can take (a share: [0, 1])."""
    ci = [max(low, result["ci"][0]), min(high, result["ci"][1])]
    return {"estimate": result["estimate"], "se": result["se"], "ci95": ci}


def score(
    runs: Sequence[AuditRun], key: Mapping[str, Any], labels: Mapping[str, tuple[str, str]]
) -> dict[str, Any]:
    """The audit report of one run, or of two (with the corrected difference, second - first)."""
    if not 1 <= len(runs) <= 2:
        raise AuditError("pass one run, or two runs on the same rows (before, after)")
    indices = match_runs(key, runs)
    per_run: list[dict[int, list[tuple[AuditPath, str]]]] = [defaultdict(list) for _ in runs]
    labellers: list[set[str]] = [set() for _ in runs]
    items: list[list[dict[str, Any]]] = [[] for _ in runs]
    for item_id, (label, labeller) in labels.items():
        entry = key["items"][item_id]
        if entry["run"] not in indices:
            continue
        which = indices.index(entry["run"])
        run = runs[which]
        path = run.paths.get((int(entry["k"]), str(entry["row"]), int(entry["path"])))
        if path is None or digest(path.continuation) != entry.get("sha"):
            raise AuditError(
                f"item {item_id}: run {run.name} has no such path (k={entry['k']}, "
                f"row={entry['row']}, path={entry['path']}) or it changed since prepare"
            )
        per_run[which][path.k].append((path, label))
        labellers[which].add(labeller)
        items[which].append(_item(item_id, path, label, labeller, entry.get("sha")))
    blocks, all_strata = [], []
    for which, run in enumerate(runs):
        strata = _strata(run, per_run[which], which)
        all_strata.append(strata)
        ks = sorted(strata)
        mean = ppi_combination([strata[k] for k in ks], [1 / len(ks)] * len(ks))
        lam = mean["lambda"][0]
        pairs = [pair for k in ks for pair in per_run[which][k]]
        per_k = {}
        for k in ks:
            at_k = ppi_combination([strata[k]], [1.0], lam=lam)
            per_k[str(k)] = {
                "raw": _raw_corr(run.at(k)),
                "paths": len(run.at(k)),
                "labels": len(strata[k].y),
                **_interval(at_k),
            }
        raw = [v["raw"] for v in per_k.values() if v["raw"] is not None]
        blocks.append(
            {
                "name": run.name,
                "folder": str(run.folder),
                "family": run.family,
                "judge": ", ".join(run.judges),
                "labels": len(pairs),
                "labellers": sorted(labellers[which]),
                "lambda": lam,
                "agreement": _agreement(
                    [lab for _, lab in pairs], [_judged_yes(p.verdict) for p, _ in pairs]
                ),
                "per_k": per_k,
                "corr_mean": {"raw": sum(raw) / len(raw) if raw else None, **_interval(mean)},
                "items": sorted(items[which], key=_item_order),
            }
        )
    difference = None
    if len(runs) == 2:
        ks = sorted(set(all_strata[0]) & set(all_strata[1]))
        if not ks:
            raise AuditError("the two runs share no k; a difference needs the same k")
        strata = [all_strata[0][k] for k in ks] + [all_strata[1][k] for k in ks]
        weights = [-1 / len(ks)] * len(ks) + [1 / len(ks)] * len(ks)
        diff = ppi_combination(strata, weights)
        paired = sum(all_strata[0][k].sample_key == all_strata[1][k].sample_key for k in ks)
        raw_b, raw_a = blocks[0]["corr_mean"]["raw"], blocks[1]["corr_mean"]["raw"]
        difference = {
            "before": blocks[0]["name"],
            "after": blocks[1]["name"],
            "raw": None if raw_a is None or raw_b is None else raw_a - raw_b,
            **_interval(diff, -1.0, 1.0),
            "paired_k": paired,
            "z": diff["estimate"] / diff["se"] if diff["se"] > 0 else None,
        }
    return {
        "schema": AUDIT_SCHEMA,
        "seed": key.get("seed"),
        "paired_sample": bool(key.get("paired")),
        "runs": blocks,
        "difference": difference,
        "method": (
            "PPI++ (power-tuned prediction-powered inference): per run, the judge's verdict on "
            "every path plus a uniform random sample of labelled paths per k; one tuning weight "
            "per run; 95% normal intervals whose variance adds the judged term (rows "
            "independent) and the labelled term (paired path by path where both runs were "
            "labelled on the same paths). Target: share of ALL paths that truly correct."
        ),
    }


# --------------------------------------------------------------------------- text and files


def _f(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _ci(ci: Sequence[float] | None) -> str:
    return "" if not ci else f" [{ci[0]:.3f}, {ci[1]:.3f}]"


def report_text(report: Mapping[str, Any]) -> str:
    """The audit as markdown: agreement, then raw vs corrected Corr@k per run, then the difference."""
    lines = []
    for block in report["runs"]:
        a = block["agreement"]
        lines.append(
            f"## {block['name']} (judge {block['judge']}; {block['labels']} labels by "
            f"{', '.join(block['labellers'])})"
        )
        lines.append(
            f"judge vs labels: kappa {_f(a['kappa'], 2)}{_ci(a['kappa_ci'])}, precision of yes "
            f"{_f(a['precision'], 2)}{_ci(a['precision_ci'])}, recall of yes "
            f"{_f(a['recall'], 2)}{_ci(a['recall_ci'])}"
        )
        lines += [
            "",
            "| k | judge (raw) | audited (PPI++) [95% CI] | labels / paths |",
            "|---|---|---|---|",
        ]
        for k, v in block["per_k"].items():
            lines.append(
                f"| {k} | {_f(v['raw'])} | {_f(v['estimate'])}{_ci(v['ci95'])} | "
                f"{v['labels']} / {v['paths']} |"
            )
        m = block["corr_mean"]
        lines.append(f"| Corr_mean | {_f(m['raw'])} | {_f(m['estimate'])}{_ci(m['ci95'])} | |")
        lines.append("")
    d = report.get("difference")
    if d:
        lines.append(
            f"difference {d['after']} - {d['before']}: judge (raw) {_f(d['raw'])}; audited "
            f"{_f(d['estimate'])}{_ci(d['ci95'])} (se {_f(d['se'])}, "
            f"{'paired' if d['paired_k'] else 'independent'} samples)"
        )
    return "\n".join(lines)


def write_reports(audit_dir: Path, report: Mapping[str, Any]) -> list[Path]:
    """``audit.json`` in the audit folder (everything) and beside each run (its own block)."""
    written = [audit_dir / AUDIT_FILE]
    atomic_write_text(written[0], json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    for block in report["runs"]:
        own = {**report, "runs": [block], "audit": str(audit_dir)}
        target = Path(block["folder"]) / AUDIT_FILE
        atomic_write_text(target, json.dumps(own, indent=2, ensure_ascii=False) + "\n")
        written.append(target)
    return written


def budget(run: AuditRun, n: int, *, precision: float, recall: float) -> dict[str, Any]:
    """The Corr_mean half-width ``n`` labels buy on this run for a judge of that quality.

    Assumes the true share equals the judge's raw Corr_mean, the stated precision and
    recall of ``yes``, and proportional allocation over k (Corr_mean treated as one share
    of all paths: close when the Corr@k are alike, a little wide otherwise).
    """
    if not 1 <= n <= len(run.paths):
        raise AuditError(
            f"--n {n}: a run of {len(run.paths)} judged paths takes 1 to {len(run.paths)} labels"
        )
    raw = [_raw_corr(run.at(k)) for k in run.ks]
    raw = [r for r in raw if r is not None]
    corr = min(max(sum(raw) / len(raw) if raw else 0.5, 0.01), 0.99)
    half = ppi_half_width(n, len(run.paths), corr=corr, precision=precision, recall=recall)
    labels_only = ppi_half_width(n, len(run.paths), corr=corr, precision=1.0, recall=0.0)
    return {
        "n": n,
        "paths": len(run.paths),
        "assumed_corr": corr,
        "half_width": half,
        "labels_only": labels_only,
        "precision": precision,
        "recall": recall,
    }


def read_audit(folder: Path) -> dict[str, Any] | None:
    """The ``audit.json`` beside a run, or None (an unreadable one is an error). A version 1
    file has no ``items`` (the labelled paths): read it as having none."""
    path = folder / AUDIT_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise AuditError(f"{path}: not valid JSON") from None
    if not isinstance(data, dict) or data.get("schema") not in READABLE_SCHEMAS:
        raise AuditError(f"{path}: field 'schema': expected {' or '.join(READABLE_SCHEMAS)}")
    return data
