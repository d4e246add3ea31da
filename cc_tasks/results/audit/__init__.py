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

- :mod:`.runs` reads the runs' judged paths, :mod:`.prepare` draws the sample and reads the
  key and labels back, :mod:`.score` scores and budgets, :mod:`.report` brings the audit into
  ``c2-report``, :mod:`.page` renders the labelling page.
"""

from __future__ import annotations

from .page import PAGE_FILE
from .prepare import (
    DEFAULT_SEED,
    ITEMS_FILE,
    KEY_FILE,
    KEY_SCHEMA,
    allocate,
    match_runs,
    prepare,
    read_key,
    read_labels,
)
from .report import audit_of, audit_summary, audited_run, with_audits
from .runs import LABELS, AuditError, AuditPath, AuditRun, digest, load_runs
from .score import AUDIT_FILE, AUDIT_SCHEMA, budget, read_audit, report_text, score, write_reports

__all__ = [
    "AUDIT_FILE",
    "AUDIT_SCHEMA",
    "DEFAULT_SEED",
    "ITEMS_FILE",
    "KEY_FILE",
    "KEY_SCHEMA",
    "LABELS",
    "PAGE_FILE",
    "AuditError",
    "AuditPath",
    "AuditRun",
    "allocate",
    "audit_of",
    "audit_summary",
    "audited_run",
    "budget",
    "digest",
    "load_runs",
    "match_runs",
    "prepare",
    "read_audit",
    "read_key",
    "read_labels",
    "report_text",
    "score",
    "with_audits",
    "write_reports",
]
