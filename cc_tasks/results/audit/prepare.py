"""Prepare: a seeded, stratified, blinded sample of paths and its private key; then, at
scoring time, the key and the labels read back and matched to the runs.

The sample is uniform per k (allocation proportional to the paths at each k); where every run
covers the same (k, row, path) keys the SAME paths are drawn in every run (a paired sample).
Items carry opaque random ids in a shuffled order, no verdict, no run or condition.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cc_tasks.files import iter_jsonl
from cc_tasks.seeding import stable_rng

from .runs import LABELS, AuditError, AuditPath, AuditRun, digest

KEY_SCHEMA = "c2-audit-key/1"
KEY_FILE = "key.json"
ITEMS_FILE = "items.jsonl"
DEFAULT_SEED = 0


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
