"""The per-run judge audit: a blind random sample of a run's paths, labelled by a careful reader,
corrects the judge's Corr@k and Corr_mean by prediction-powered inference (PPI++).

A judge's quality depends on the text it reads, and that changes with every trained model;
the gold-set kappa of its card says nothing about THIS run. The audit measures it here:

- :func:`prepare` draws, with a fixed seed, a uniform random sample of ``n`` paths per run,
  stratified by k (allocation proportional to the paths at each k). Where every run covers
  the same (k, row, path) keys (before/after on the same rows), the SAME paths are drawn in
  every run (a paired sample: the difference is then measured path by path). The items are
  blinded: opaque random ids, shuffled, no verdict, no run or condition. A private key maps
  ids back to (run, k, row, path) and a hash of the continuation.
- :func:`score` reads the labels, the key and the runs, and reports per run the judge's
  agreement with the labels (kappa, precision and recall of ``yes``, with intervals), the
  PPI++ corrected Corr@k and Corr_mean with 95% intervals next to the judge's raw numbers,
  and for two runs the corrected difference (second minus first).

The estimand is the share of a run's paths that truly course-correct, counting every path
(the judge's own Corr@k leaves invalid verdicts out; here they count as its "no"). The
estimator and its variance are :func:`cc_tasks.stats.ppi_combination`. Labelling only a
prefix of the shuffled items keeps the sample uniform (the order is random).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cc_tasks.errors import UsageError
from cc_tasks.files import atomic_write_text, iter_jsonl
from cc_tasks.seeding import stable_rng
from cc_tasks.stats import (
    PPIStratum,
    bootstrap_over_items,
    confusion,
    point_metrics,
    ppi_combination,
    ppi_half_width,
    yes_counts,
)

from .samples import find_sample_files, sample_verdicts
from .schema import Point, Run

KEY_SCHEMA = "c2-audit-key/1"
AUDIT_SCHEMA = "c2-audit/1"
KEY_FILE = "key.json"
ITEMS_FILE = "items.jsonl"
PAGE_FILE = "audit.html"
AUDIT_FILE = "audit.json"
LABELS = ("yes", "no")
DEFAULT_SEED = 0
log = logging.getLogger(__name__)


class AuditError(UsageError):
    """An audit input is unusable (one line naming file, line and field; exit 2)."""


@dataclass(frozen=True)
class AuditPath:
    """One judged path of a run: where it is, what was shown, and the judge's verdict."""

    k: int
    row: str
    path: int
    request: str
    prefill: str
    continuation: str
    verdict: str

    @property
    def key(self) -> tuple[int, str, int]:
        return (self.k, self.row, self.path)


@dataclass
class AuditRun:
    """One run of one task family: every judged path, by (k, row, path)."""

    name: str
    folder: Path
    family: str
    judges: list[str]
    paths: dict[tuple[int, str, int], AuditPath] = field(default_factory=dict)

    @property
    def ks(self) -> list[int]:
        return sorted({key[0] for key in self.paths})

    def at(self, k: int) -> list[AuditPath]:
        return [p for key, p in sorted(self.paths.items()) if key[0] == k]


def digest(text: str) -> str:
    """Short content hash: the key notices a run whose continuations changed since prepare."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def load_runs(args: Sequence[str]) -> list[AuditRun]:
    """The judged runs below each argument (one per run folder and task family)."""
    runs: dict[tuple[str, str], AuditRun] = {}
    for arg in args:
        for sf in find_sample_files([arg], need_row_id=True):
            folder = sf.path.resolve().parent
            unit = runs.get((str(folder), sf.family))
            if unit is None:
                unit = AuditRun(sf.run, folder, sf.family, [])
                runs[(str(folder), sf.family)] = unit
            for sample in sf.samples:
                records = sample_verdicts(sample, str(sf.path))
                for index, (text, record) in enumerate(
                    zip(sample.continuations, records, strict=True)
                ):
                    key = (sample.k, str(sample.row_id), index)
                    if key in unit.paths:
                        raise AuditError(
                            f"{sf.path}: line {sample.line}: path (k={key[0]}, row_id={key[1]}, "
                            f"path={index}) appears twice in run {sf.run}"
                        )
                    judge = str(record.get("judge", "?"))
                    if judge not in unit.judges:
                        unit.judges.append(judge)
                    unit.paths[key] = AuditPath(
                        sample.k,
                        key[1],
                        index,
                        sample.prompt,
                        sample.prefill,
                        text,
                        str(record.get("label")),
                    )
    found = list(runs.values())
    names = [r.name for r in found]
    for r in found:
        if r.family != "c2_eval" or names.count(r.name) > 1:
            r.name = f"{r.name} {r.family}" if r.family != "c2_eval" else f"{r.name} ({r.folder})"
    return found


# --------------------------------------------------------------------------- prepare


def allocate(n: int, sizes: Mapping[int, int]) -> dict[int, int]:
    """``n`` labels over strata in proportion to their sizes (largest remainder, capped)."""
    total = sum(sizes.values())
    if n > total:
        raise AuditError(f"--n {n} is more than the run's {total} judged paths")
    quota = {k: n * size / total for k, size in sizes.items()}
    out = {k: min(sizes[k], int(q)) for k, q in quota.items()}
    for k in sorted(quota, key=lambda k: (-(quota[k] - int(quota[k])), k)):
        if sum(out.values()) >= n:
            break
        if out[k] < sizes[k]:
            out[k] += 1
    return out


def prepare(runs: Sequence[AuditRun], n: int, seed: int = DEFAULT_SEED) -> dict[str, Any]:
    """The blinded sample: ``{"items": [...], "key": {...}}`` (the key maps ids to paths)."""
    if n < 1:
        raise AuditError(f"--n must be at least 1, got {n}")
    if not runs:
        raise AuditError("no runs to audit")
    paired = len(runs) > 1 and all(set(r.paths) == set(runs[0].paths) for r in runs[1:])
    picks: list[tuple[int, AuditPath]] = []
    for index, run in enumerate(runs):
        sizes = {k: len(run.at(k)) for k in run.ks}
        for k, m in sorted(allocate(n, sizes).items()):
            keys = [p.key for p in run.at(k)]
            # a paired sample draws the same keys in every run: the stream ignores the run
            rng = stable_rng("audit", seed, "paired" if paired else index, k)
            picks += [(index, run.paths[key]) for key in sorted(rng.sample(keys, m))]
    ids_rng = stable_rng("audit ids", seed, len(picks))
    ids: list[str] = []
    while len(ids) < len(picks):
        candidate = f"i{ids_rng.getrandbits(48):012x}"
        if candidate not in ids:
            ids.append(candidate)
    order = list(range(len(picks)))
    stable_rng("audit order", seed, len(picks)).shuffle(order)
    items, entries = [], {}
    for position in order:
        index, p = picks[position]
        item_id = ids[position]
        items.append(
            {
                "id": item_id,
                "request": p.request,
                "prefill": p.prefill,
                "continuation": p.continuation,
            }
        )
        entries[item_id] = {
            "run": index,
            "k": p.k,
            "row": p.row,
            "path": p.path,
            "sha": digest(p.continuation),
        }
    key = {
        "schema": KEY_SCHEMA,
        "seed": seed,
        "n_per_run": n,
        "paired": paired,
        "token": f"{stable_rng('audit token', seed, sorted(entries)).getrandbits(64):016x}",
        "runs": [
            {
                "name": r.name,
                "folder": str(r.folder),
                "family": r.family,
                "paths": len(r.paths),
                "strata": {str(k): len(r.at(k)) for k in r.ks},
            }
            for r in runs
        ],
        "items": entries,
    }
    return {"items": items, "key": key}


# --------------------------------------------------------------------------- labels and key


def read_key(folder: Path) -> dict[str, Any]:
    path = folder / KEY_FILE
    if not path.is_file():
        raise AuditError(f"{path}: no such file (run c2-judge audit prepare first)")
    try:
        key = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise AuditError(f"{path}: not valid JSON") from None
    if not isinstance(key, dict) or key.get("schema") != KEY_SCHEMA:
        raise AuditError(f"{path}: field 'schema': expected {KEY_SCHEMA}")
    if not isinstance(key.get("items"), dict) or not isinstance(key.get("runs"), list):
        raise AuditError(f"{path}: field 'items' or 'runs': missing")
    return key


def read_labels(path: Path, known: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """id -> (label, labeller), every line checked (one line naming file, line and field)."""
    if not path.is_file():
        raise AuditError(f"{path}: no such file")
    out: dict[str, tuple[str, str]] = {}
    for line_no, data in iter_jsonl(path, unit="line", error=AuditError, not_json="not JSON"):
        where = f"{path}: line {line_no}"
        if not isinstance(data, dict):
            raise AuditError(f"{where}: expected a JSON object")
        item_id, label, labeller = data.get("id"), data.get("label"), data.get("labeller")
        if not isinstance(item_id, str) or item_id not in known:
            raise AuditError(f"{where}: field 'id': {item_id!r:.40} is not an item of this audit")
        if label not in LABELS:
            raise AuditError(f"{where}: field 'label': expected yes or no, got {label!r:.40}")
        if not isinstance(labeller, str) or not labeller.strip():
            raise AuditError(f"{where}: field 'labeller': missing (who labelled the item?)")
        if item_id in out:
            raise AuditError(f"{where}: field 'id': {item_id} is labelled twice; keep one label")
        out[item_id] = (label, labeller.strip())
    if not out:
        raise AuditError(f"{path}: no labels")
    return out


def match_runs(key: Mapping[str, Any], runs: Sequence[AuditRun]) -> list[int]:
    """For each given run, its index in the key (by folder and family, else by unique name)."""
    out = []
    for run in runs:
        same = [
            i
            for i, r in enumerate(key["runs"])
            if r.get("folder") == str(run.folder) and r.get("family") == run.family
        ]
        if not same:
            same = [i for i, r in enumerate(key["runs"]) if r.get("name") == run.name]
        if len(same) != 1:
            raise AuditError(f"run {run.name} ({run.folder}) is not one of the audit's runs")
        out.append(same[0])
    return out


# --------------------------------------------------------------------------- score


def _judged_yes(verdict: str) -> str:
    return "yes" if verdict == "yes" else "no"


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
    """The ``audit.json`` beside a run, or None (an unreadable one is an error)."""
    path = folder / AUDIT_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise AuditError(f"{path}: not valid JSON") from None
    if not isinstance(data, dict) or data.get("schema") != AUDIT_SCHEMA:
        raise AuditError(f"{path}: field 'schema': expected {AUDIT_SCHEMA}")
    return data


# --------------------------------------------------------------------------- c2-report


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


def with_audits(runs: Sequence[Run]) -> list[Run]:
    """The runs, each followed by its audited row where an ``audit.json`` sits beside it; the
    run's judge card then records the audit (n, labellers, agreement)."""
    out: list[Run] = []
    for run in runs:
        out.append(run)
        folder = _audit_folder(run)
        data = read_audit(folder) if folder is not None else None
        block = next(
            (b for b in (data or {}).get("runs", []) if b.get("family") == run.family), None
        )
        if block is None:
            continue
        stale = _stale(run, block)
        if stale:
            log.warning(
                "%s: ignored, it does not match run %s (%s)", folder / AUDIT_FILE, run.label, stale
            )
            continue
        run.judge_card = {"name": run.judge, **run.judge_card, "audit": audit_summary(block)}
        out.append(audited_run(run, block, folder / AUDIT_FILE))
    return out
