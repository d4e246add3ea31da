"""Rows -> docs of the C²-EVAL tasks: validated PKU-SafeRLHF rows, prefilled for one length k.

The task class (:mod:`.task`), the ``custom_dataset`` hook (:mod:`.utils`) and
``c2-eval``'s up-front checks all read rows and docs through here, so each
check runs once, the same way. Doc fields: README "Docs".
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cc_tasks.c2_eval.options import ENV_DATA, C2EvalConfigError, RunOptions
from cc_tasks.errors import message
from cc_tasks.files import atomic_write_text
from cc_tasks.judges import Judge
from cc_tasks.judges.card import judge_card
from cc_tasks.pku import (
    EVAL_ROWS,
    HUB_ID,
    HUB_REVISION,
    REQUIRED_FIELDS,
    DataError,
    harmful_response,
    load_rows,
    select_eval,
)
from cc_tasks.prefill import build_prefill
from cc_tasks.provenance import PROJECT, file_sha256, project_version

HUB_FLAG = 'c2-eval --data (lm-eval: --metadata \'{"data": "FILE"}\')'


def _stamp(source: str) -> tuple[str, int, int]:
    """Identity of a local file for the row cache (a changed file is read again)."""
    path = Path(source)
    try:
        stat = path.stat()
    except OSError:
        return str(path), -1, -1
    return str(path.resolve()), stat.st_mtime_ns, stat.st_size


@functools.lru_cache(maxsize=8)
def _rows(source: str | None, stamp: tuple, select: bool) -> tuple[tuple[int, dict], ...]:
    """Validated ``(row_id, row)`` pairs; the eight subtasks and c2-eval's check share one read."""
    if source is None:  # the Hub: every row validated, then the C²-EVAL selection
        rows, label = load_rows(
            None, split="test", need_unsafe=False, env_var=ENV_DATA, flag=HUB_FLAG
        )
        select = True
    else:  # a local file: as given (every row needs an unsafe response) unless select
        rows, label = load_rows(source, split="test", need_unsafe=not select)
    numbered = [{**row, "__row_id": i} for i, row in enumerate(rows, 1)]
    if select:
        numbered = select_eval(numbered, limit=EVAL_ROWS)
    if not numbered:
        raise DataError(f"{label}: no row has how/what in its prompt and an unsafe response")
    return tuple((row.pop("__row_id"), row) for row in numbered)


def eval_rows(options: RunOptions) -> tuple[list[tuple[int, dict]], str]:
    """``([(row_id, row), ...], source label)``, validated (see README "Data")."""
    source = options.source
    if source is None:
        return list(_rows(None, (), True)), f"{HUB_ID}@{HUB_REVISION}:test"
    return list(_rows(source, _stamp(source), options.select)), source


def export_rows(options: RunOptions, path: str | os.PathLike) -> int:
    """Write the rows a run evaluates to ``path`` (JSONL, the schema's seven fields); their count.

    From the Hub this is the C²-EVAL file: the test split with the selection
    (README "Data"), one ``json.dumps`` object a line, no newline after the last,
    so its sha256 is the same wherever it is built.
    """
    rows, _ = eval_rows(options)
    text = "\n".join(json.dumps({f: row[f] for f in REQUIRED_FIELDS}) for _, row in rows)
    atomic_write_text(path, text)
    return len(rows)


@functools.lru_cache(maxsize=4)
def _tokenizer(name: str) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(name)


def prefill_tokenizer(options: RunOptions) -> Any:
    """The tokenizer of ``prefill_mode: token`` (metadata ``tokenizer``, else the model's)."""
    if options.prefill_mode != "token":
        return None
    if not options.tokenizer:
        raise C2EvalConfigError(
            "prefill_mode 'token' needs a tokenizer: set metadata 'tokenizer' "
            "(hf/vllm/sglang reuse model_args pretrained= or tokenizer=)"
        )
    try:
        return _tokenizer(options.tokenizer)
    except Exception as err:
        raise C2EvalConfigError(
            f"prefill_mode 'token': cannot load tokenizer {options.tokenizer!r} "
            f"({type(err).__name__}: {message(err, limit=160)})"
        ) from None


def build_docs(options: RunOptions, k: int) -> list[dict[str, Any]]:
    """The C²-EVAL docs of prefill length ``k`` (fields: see README "Docs")."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise C2EvalConfigError(f"prefill_length must be a positive integer, got {k!r}")
    rows, label = eval_rows(options)
    tokenizer = prefill_tokenizer(options)
    docs = []
    for row_id, row in rows:
        prompt = row["prompt"]
        harmful = _harmful(row)
        opener, prefill = build_prefill(
            prompt, harmful, k, mode=options.prefill_mode, seed=options.seed, tokenizer=tokenizer
        )
        docs.append(
            {
                "row_id": row_id,
                "source": label,
                "prompt": prompt,
                "harmful_response": harmful,
                "k": k,
                "opener": opener,
                "prefill": prefill,
                "prefill_mode": options.prefill_mode,
            }
        )
    return docs


def docs_dataset(options: RunOptions, k: int) -> Any:
    """The docs of one k as lm-eval reads a dataset: a ``DatasetDict`` with a ``test`` split."""
    import datasets

    return datasets.DatasetDict({"test": datasets.Dataset.from_list(build_docs(options, k))})


def _harmful(row: Mapping[str, Any]) -> str:
    text = harmful_response(row)
    if text is None:  # validated rows always have one; keep the invariant explicit
        raise DataError("row without an unsafe response reached the prefill step")
    return text


# --------------------------------------------------------------------------- provenance


def data_identity(options: RunOptions) -> dict[str, Any]:
    """Where the rows came from, exactly: the file and its sha256, or the Hub id and revision."""
    rows, _ = eval_rows(options)
    source = options.source
    if source is None:
        data: dict[str, Any] = {"hub_id": HUB_ID, "revision": HUB_REVISION, "split": "test"}
    else:
        data = {"path": str(Path(source).resolve()), "sha256": file_sha256(source)}
    spec = source is None or options.select
    data["selection"] = (
        f"method section 2: prompt has how/what, an unsafe response, first {EVAL_ROWS}"
        if spec
        else "as given"
    )
    data["rows"] = len(rows)
    return data


def run_provenance(options: RunOptions, judge: Judge) -> dict[str, Any]:
    """The provenance block of a run (the task adds generation settings and the rows it ran)."""
    return {
        "project": {"name": PROJECT, "version": project_version()},
        "data": data_identity(options),
        "seed": options.seed,
        "prefill_mode": options.prefill_mode,
        "tokenizer": options.tokenizer if options.prefill_mode == "token" else None,
        "paths": options.paths,
        "strict": options.strict,
        "judge_card": judge_card(judge),
    }
