"""Run options and docs of the C²-EVAL tasks: task metadata -> :class:`RunOptions`; rows -> prefilled docs.

One job: turn what lm-eval passes as task metadata (``--metadata`` plus
``--model_args``) into validated run options, and the validated PKU rows into
the docs of one prefill length k (fields: README "Docs"). The task class
(:mod:`.task`), the hooks (:mod:`.utils`) and ``c2-eval``'s up-front checks
all read options and docs through here, so each check runs once, the same way.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cc_tasks.errors import UsageError
from cc_tasks.judges import Judge
from cc_tasks.judges.card import judge_card
from cc_tasks.judges.settings import ENV_KIND, ENV_OPTIONS, JudgeSettings
from cc_tasks.judges.settings import resolve as resolve_settings
from cc_tasks.pku import (
    EVAL_ROWS,
    HUB_ID,
    HUB_REVISION,
    DataError,
    harmful_response,
    load_rows,
    select_eval,
)
from cc_tasks.prefill import PREFILL_MODES, build_prefill
from cc_tasks.provenance import PROJECT, file_sha256, project_version

ENV_DATA = "C2_EVAL_DATA"
ENV_JUDGE = ENV_KIND  # judge settings: cc_tasks.judges.settings
ENV_JUDGE_OPTIONS = ENV_OPTIONS

METADATA_KEYS = (
    "data",
    "select",
    "seed",
    "prefill_mode",
    "tokenizer",
    "paths",
    "judge",
    "judge_options",
    "strict",
    "allow_judge_errors",
)


class C2EvalConfigError(UsageError):
    """A C²-EVAL metadata value is unusable (wrong type or value)."""


# --------------------------------------------------------------------------- options


@dataclass(frozen=True)
class RunOptions:
    """The C²-EVAL settings of one run, read from lm-eval task metadata (see README)."""

    data: str | None = None
    select: bool = False
    seed: int | None = None
    prefill_mode: str = "word"
    tokenizer: str | None = None
    paths: int = 1
    judge: str = "rule"
    judge_options: dict[str, Any] = field(default_factory=dict)
    strict: bool = False
    allow_judge_errors: bool = False

    @property
    def source(self) -> str | None:
        """The local data file: metadata ``data``, else ``$C2_EVAL_DATA``, else None (the Hub)."""
        return self.data or os.environ.get(ENV_DATA) or None


def _bool(meta: Mapping[str, Any], key: str) -> bool:
    value = meta.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise C2EvalConfigError(f"metadata '{key}': expected true/false, got {value!r}")
    return value


def _int(meta: Mapping[str, Any], key: str, *, minimum: int | None = None) -> int | None:
    value = meta.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise C2EvalConfigError(f"metadata '{key}': expected an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise C2EvalConfigError(f"metadata '{key}': must be >= {minimum}, got {value}")
    return value


def resolve_judge(meta: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """``(kind, options)`` from metadata ``judge``/``judge_options`` and the environment.

    The one resolver every tool uses (:func:`cc_tasks.judges.settings.resolve`):
    ``$C2_EVAL_JUDGE_OPTIONS`` applies only to the kind ``$C2_EVAL_JUDGE`` names,
    so options meant for an API judge never leak into ``judge=rule``.
    """
    settings = resolve_settings(
        meta.get("judge"),
        meta.get("judge_options"),
        kind_source="metadata 'judge'",
        options_source="metadata 'judge_options'",
    )
    return settings.kind, settings.options


def run_options(meta: Mapping[str, Any] | None) -> RunOptions:
    """Validated :class:`RunOptions` from task metadata (raises one clear line on bad values)."""
    meta = dict(meta or {})
    data = meta.get("data")
    if data is not None and not isinstance(data, (str, os.PathLike)):
        raise C2EvalConfigError(f"metadata 'data': expected a file path, got {data!r}")
    mode = meta.get("prefill_mode") or "word"
    if mode not in PREFILL_MODES:
        raise C2EvalConfigError(
            f"metadata 'prefill_mode': expected one of {', '.join(PREFILL_MODES)}, got {mode!r}"
        )
    tokenizer = meta.get("tokenizer") or meta.get("pretrained") or meta.get("model")
    kind, options = resolve_judge(meta)
    return RunOptions(
        data=str(data) if data else None,
        select=_bool(meta, "select"),
        seed=_int(meta, "seed"),
        prefill_mode=mode,
        tokenizer=tokenizer if isinstance(tokenizer, str) else None,
        paths=_int(meta, "paths", minimum=1) or 1,
        judge=kind,
        judge_options=options,
        strict=_bool(meta, "strict"),
        allow_judge_errors=_bool(meta, "allow_judge_errors"),
    )


# --------------------------------------------------------------------------- data


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
    if source is None:  # the Hub: every row validated, then the SPEC 2 selection
        rows, label = load_rows(
            None,
            split="test",
            need_unsafe=False,
            env_var=ENV_DATA,
            flag='c2-eval --data (lm-eval: --metadata \'{"data": "FILE"}\')',
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
            f"({type(err).__name__}: {str(err).splitlines()[0][:160] if str(err) else ''})"
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


def _harmful(row: Mapping[str, Any]) -> str:
    text = harmful_response(row)
    if text is None:  # validated rows always have one; keep the invariant explicit
        raise DataError("row without an unsafe response reached the prefill step")
    return text


def validate_run(metadata: Mapping[str, Any] | None, ks: Sequence[int] = (10,)) -> RunOptions:
    """Everything a run needs except the model: options, data, prefills, judge (for ``c2-eval``).

    Raises :class:`DataError`, :class:`C2EvalConfigError` or :class:`JudgeConfigError`.
    """
    options = run_options(metadata)
    for k in ks:
        build_docs(options, k)
    get_judge(options.judge, options.judge_options)
    return options


# --------------------------------------------------------------------------- judge


_JUDGES: dict[str, Judge] = {}


def get_judge(kind: str, options: Mapping[str, Any]) -> Judge:
    """One checked judge per resolved (kind, options) in this process, shared by all subtasks."""
    settings = JudgeSettings(kind, dict(options))
    judge = _JUDGES.get(settings.key())
    if judge is None:
        judge = _JUDGES[settings.key()] = settings.build()
    return judge


# --------------------------------------------------------------------------- provenance

PROVENANCE_KEY = "c2_eval"
"""The task metadata key of the provenance block (lm-eval writes it to results ``configs``)."""


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
        f"SPEC: prompt has how/what, an unsafe response, first {EVAL_ROWS}" if spec else "as given"
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
