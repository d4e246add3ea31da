"""Finding result files (lm-eval ``results*.json``, ``c2-judge``'s ``corr.json``) and loading
their runs, whichever kind each file is."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from cc_tasks.stats import BOOTSTRAP_ITERS, BOOTSTRAP_SEED

from .corr_file import CORR_SCHEMA, runs_from_corr
from .lmeval import runs_from_lm_eval
from .schema import ReportError, Run

REJUDGED_KEY = "rejudged_by"
"""The field ``c2-judge rejudge`` adds to every sample line it writes (its judge's description)."""
FIRST_LINE_LIMIT = 16 << 20
"""Bytes read to tell a re-judged sample file from lm-eval's own (its first line only)."""


def _rejudged(path: Path) -> bool:
    """Whether ``path`` is a sample file written by ``c2-judge rejudge`` (by its first line)."""
    try:
        with path.open("rb") as handle:
            first = json.loads(handle.readline(FIRST_LINE_LIMIT))
    except (OSError, ValueError):
        return False  # unreadable or not JSON: the sample reader names the file and line
    return isinstance(first, Mapping) and REJUDGED_KEY in first


def _listed_samples(corr: Path) -> tuple[list[str], list[str]]:
    """The sample files a ``corr.json`` lists, and those of them that are not there."""
    try:
        data = json.loads(corr.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return [], []  # read_result_file reports it in one line
    listed: list[str] = []
    missing: list[str] = []
    blocks = data.get("results") if isinstance(data, Mapping) else None
    for block in blocks if isinstance(blocks, list) else []:
        samples = block.get("samples") if isinstance(block, Mapping) else None
        for name in (samples if isinstance(samples, Mapping) else {}).values():
            where = Path(str(name))
            candidates = [
                where,
                corr.parent / where,
                corr.parent / str(block.get("run")) / where.name,
            ]
            listed.append(str(name))
            if not any(c.is_file() for c in candidates):
                missing.append(str(name))
    return listed, missing


def require_complete_output(folder: Path) -> None:
    """Refuse a ``c2-judge -o`` folder that a run left half written (a full disk, a kill).

    ``c2-judge rejudge`` writes its sample files first and ``corr.json`` last, so a folder
    with re-judged sample files but no ``corr.json`` above them, or with only some of the
    sample files its ``corr.json`` lists, is incomplete: ``c2-report`` and ``c2-judge agree``
    would otherwise count a fraction of the paths as if it were the run. A ``corr.json``
    kept without any of its sample files is a summary, and is read as one.
    """
    for corr in sorted(folder.rglob("corr.json")):
        listed, missing = _listed_samples(corr)
        if missing and len(missing) < len(listed):  # none there: a corr.json kept on its own
            raise ReportError(
                f"{folder}: incomplete c2-judge output: {len(missing)} of the {len(listed)} "
                f"sample files that {corr.name} lists are missing (first: {missing[0]}); "
                "rerun c2-judge rejudge with --overwrite"
            )
    orphans = [
        p
        for p in sorted(folder.rglob("samples_*.jsonl"))
        if not (p.parent.parent / "corr.json").is_file() and _rejudged(p)
    ]
    if orphans:
        noun = "file" if len(orphans) == 1 else "files"
        raise ReportError(
            f"{folder}: incomplete c2-judge output: {len(orphans)} re-judged sample {noun} but "
            "no corr.json (c2-judge writes it last: was the run cut short?); "
            "rerun c2-judge rejudge with --overwrite"
        )


def find_result_files(paths: Iterable[str | Path]) -> list[Path]:
    """Result files: given files as they are; folders searched for ``results*.json`` and ``corr.json``."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            require_complete_output(path)
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
    missing_ok: bool = False,
) -> list[Run]:
    """The runs of one file, whichever of the two kinds it is (``missing_ok``: an lm-eval file
    without C²-EVAL results gives none instead of an error)."""
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
    return runs_from_lm_eval(data, path, label, iters=iters, seed=seed, missing_ok=missing_ok)


def load_runs(
    paths: Sequence[str | Path],
    labels: Sequence[str] | None = None,
    *,
    iters: int = BOOTSTRAP_ITERS,
    seed: int = BOOTSTRAP_SEED,
    missing_ok: bool = False,
) -> list[Run]:
    """All runs of all inputs, in order; ``labels`` name the inputs (one per input path).

    ``missing_ok``: lm-eval files without C²-EVAL results are skipped (the caller reads their
    other tasks, e.g. over-refusal: :mod:`.overrefusal`)."""
    runs: list[Run] = []
    for i, raw in enumerate(paths):
        label = labels[i] if labels and i < len(labels) else None
        found: list[Run] = []
        for file in find_result_files([raw]):
            found.extend(
                read_result_file(file, label, iters=iters, seed=seed, missing_ok=missing_ok)
            )
        if label and len(found) > 1:
            for run in found:
                run.label = f"{label} [{run.judge}]"
        runs.extend(found)
    return runs
