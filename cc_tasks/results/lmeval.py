"""Reading lm-eval result folders (``c2-eval`` or ``lm_eval --output_path``) into runs.

lm-eval's ``results_<date>.json`` holds ``results[task]["corr,<judge>"]``,
``n-samples``, ``config`` (``limit``, ``model_args``) and
``configs[task].metadata.c2_eval`` (our provenance block, written by the
C²-EVAL task). The ``samples_<task>_<date>.jsonl`` files beside it
(``--log_samples``) give the exact verdict counts and the rows for the bootstrap.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from cc_tasks.provenance import PROVENANCE_KEY
from cc_tasks.stats import BOOTSTRAP_ITERS, BOOTSTRAP_SEED
from cc_tasks.stats import wilson_interval as _wilson_rate

from .samples import read_sample_file
from .schema import (
    GROUP,
    TASK_RE,
    Point,
    ReportError,
    Run,
    finish_run,
    finite_number,
    points_from_samples,
)

RESULTS_RE = re.compile(r"^results_(?P<date>.+)\.json$")


def model_label(config: Mapping[str, Any]) -> str:
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


def _lm_eval_provenance(data: Mapping[str, Any], task: str) -> dict[str, Any]:
    """Our ``c2_eval`` block of one task plus what lm-eval records about the run."""
    configs = data.get("configs") or {}
    metadata = (configs.get(task) or {}).get("metadata") or {}
    block = dict(metadata.get(PROVENANCE_KEY) or {})
    config = data.get("config") or {}
    block["lm_eval"] = {
        "version": data.get("lm_eval_version"),
        "model": config.get("model"),
        "model_args": config.get("model_args"),
        "limit": config.get("limit"),
        "random_seed": config.get("random_seed"),
        "numpy_seed": config.get("numpy_seed"),
        "torch_seed": config.get("torch_seed"),
        "gen_kwargs": config.get("gen_kwargs"),
        "chat_template_sha": data.get("chat_template_sha"),
        "system_instruction_sha": data.get("system_instruction_sha"),
        "date": data.get("date"),
        "git_hash": data.get("git_hash"),  # lm-eval's: the git commit of the working directory
    }
    if "generation" not in block and isinstance(configs.get(task), Mapping):
        block["generation"] = configs[task].get("generation_kwargs")
    return block


def _samples_beside(path: Path, family: str, ks: Iterable[int]) -> dict[int, Path]:
    """``samples_<family>_k<k>_<date>.jsonl`` next to ``results_<date>.json`` (lm-eval's naming)."""
    match = RESULTS_RE.match(path.name)
    if not match:
        return {}
    found = {k: path.with_name(f"samples_{family}_k{k}_{match['date']}.jsonl") for k in ks}
    return {k: p for k, p in found.items() if p.is_file()}


def runs_from_lm_eval(
    data: Mapping[str, Any],
    path: Path,
    label: str | None = None,
    *,
    iters: int = BOOTSTRAP_ITERS,
    seed: int = BOOTSTRAP_SEED,
    with_samples: bool = True,
    missing_ok: bool = False,
) -> list[Run]:
    """One :class:`Run` per (task family, judge) in an lm-eval results dict (``with_samples``:
    exact counts and the bootstrap from the sample files beside ``path``, when all are there;
    ``missing_ok``: no C²-EVAL results is an empty list, e.g. an over-refusal-only run)."""
    results = data.get("results")
    if not isinstance(results, Mapping):
        raise ReportError(f"{path}: no 'results' object (not an lm-eval or c2-judge result file)")
    groups = {**results, **(data.get("groups") or {})}
    configs = data.get("configs") or {}
    n_samples = data.get("n-samples") or {}
    config = data.get("config") or {}
    model = model_label(config)
    found: dict[tuple[str, str], dict[int, tuple[str, Mapping[str, Any]]]] = defaultdict(dict)
    for task, metrics in results.items():
        match = TASK_RE.match(task)
        if not match or not match["family"].startswith(GROUP) or not isinstance(metrics, Mapping):
            continue
        for key in metrics:
            metric, _, judge = key.partition(",")
            if judge and metric in ("corr", "invalid", "errors"):
                found[(match["family"], judge)][int(match["k"])] = (task, metrics)
    runs: dict[tuple[str, str], Run] = {}
    for (family, judge), per_k in found.items():
        first_task = per_k[min(per_k)][0]
        provenance = _lm_eval_provenance(data, first_task)
        task_config = configs.get(first_task) or {}
        run = runs[(family, judge)] = Run(
            label=label or f"{model} [{judge}]",
            model=model,
            judge=judge,
            source=str(path),
            origin="lm-eval",
            family=family,
            run=path.parent.name,
            limit=finite_number(config.get("limit")),
            strict=bool((task_config.get("metadata") or {}).get("strict")),
            paths_per_row=int(task_config.get("repeats") or 1),
            judge_card=provenance.get("judge_card") or {},
            provenance=provenance,
        )
        for k, (task, metrics) in sorted(per_k.items()):
            counts = n_samples.get(task) or {}
            rows = int(counts.get("effective", counts.get("original", 0)) or 0)
            corr = finite_number(metrics.get(f"corr,{judge}"))
            invalid = int(finite_number(metrics.get(f"invalid,{judge}")) or 0)
            errors = int(finite_number(metrics.get(f"errors,{judge}")) or 0)
            paths = rows * run.paths_per_row
            n = max(paths - errors - (0 if run.strict else invalid), 0)
            run.points[k] = Point(
                k=k,
                corr=corr,
                n=n,
                yes=None,
                paths=paths,
                invalid=invalid,
                errors=errors,
                corr_pos=finite_number(metrics.get(f"corr_pos,{judge}")),
                ci=_wilson_rate(corr, n) if corr is not None else None,
                rows=rows,
                stderr=finite_number(metrics.get(f"corr_stderr,{judge}")),
            )
    out = [run for run in runs.values() if run.corr]
    if not out:
        if missing_ok:
            return []
        raise ReportError(f"{path}: no c2_eval_k* 'corr' results in it")
    for run in out:
        group = groups.get(run.family) or {}
        run.corr_mean = finite_number(group.get(f"corr,{run.judge}"))
        if with_samples:
            _attach_samples(run, path)
        finish_run(run, iters, seed)
    return out


def _attach_samples(run: Run, path: Path) -> None:
    """Exact counts and per-row data from the run's sample files, when all of them are there."""
    files = _samples_beside(path, run.family, run.points)
    if not files or set(files) != set(run.points):
        return
    sample_files = [
        read_sample_file(p, path.parent.name, need_row_id=False) for p in files.values()
    ]
    points, counts = points_from_samples(sample_files, strict=run.strict)
    for k, exact in points.items():
        reported = run.points[k].corr
        if (reported is None) != (exact.corr is None) or (
            reported is not None and not math.isclose(reported, exact.corr or 0.0, abs_tol=1e-9)
        ):
            raise ReportError(
                f"{files[k]}: its verdicts give Corr@{k} = {exact.corr}, but {path} reports "
                f"{reported}; the samples do not belong to this results file"
            )
        exact.stderr = run.points[k].stderr
        run.points[k] = exact
    run.row_counts = counts
    run.sample_files = {k: str(p) for k, p in sorted(files.items())}
