"""The run options of one C²-EVAL evaluation: :class:`RunOptions`, read once from task metadata.

One object per run carries everything the run decides: the data and its
selection, the seed, the prefill mode, the paths per doc, the resolved judge
settings, the judge built from them (once, checked before any generation) and
the run's judge accounting (what the judge filter counted, which ``c2-eval``
reads after lm-eval returns to choose its exit status).

Who holds it: ``c2-eval`` builds it from its flags and registers it
(:func:`registered`); each of the eight subtasks that lm-eval builds looks it
up from its metadata (:func:`task_options`) and hands it to its judge filter.
The registry is the one place where lm-eval forces shared state: see
"The lm-eval seam" below.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from cc_tasks.errors import UsageError
from cc_tasks.judges import OVERREFUSAL, Judge
from cc_tasks.judges.record import InvalidReport
from cc_tasks.judges.settings import ENV_KIND, ENV_OPTIONS, JudgeSettings
from cc_tasks.judges.settings import resolve as resolve_settings
from cc_tasks.prefill import PREFILL_MODES

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
    "overrefusal_data",
)


class C2EvalConfigError(UsageError):
    """A C²-EVAL metadata value is unusable (wrong type or value)."""


# --------------------------------------------------------------------------- accounting


@dataclass
class JudgeAccounting:
    """What the judge filter counted in one run: one entry per judged subtask.

    Each entry: ``task, judge, paths, yes, no, invalid, errors``. ``c2-eval``
    fails the run on judge errors or too many invalid verdicts from these sums.
    """

    entries: list[dict[str, Any]] = field(default_factory=list)

    def add(self, entry: Mapping[str, Any]) -> None:
        self.entries.append(dict(entry))

    @property
    def paths(self) -> int:
        return sum(int(e.get("paths", 0)) for e in self.entries)

    @property
    def errors(self) -> int:
        return sum(int(e.get("errors", 0)) for e in self.entries)

    @property
    def invalid(self) -> InvalidReport:
        """All invalid verdicts of the run, as the shared invalid-verdict policy reads them."""
        judges = ", ".join(sorted({str(e.get("judge")) for e in self.entries}))
        return InvalidReport(
            judges, sum(int(e.get("invalid", 0)) for e in self.entries), self.paths
        )


# --------------------------------------------------------------------------- options


@dataclass(frozen=True)
class RunOptions:
    """The C²-EVAL settings of one run (metadata keys: see README "Options").

    ``judge``/``judge_options`` are the resolved judge settings; :attr:`built_judge`
    is the judge built from them (once per run); :attr:`accounting` collects what
    the judge filter counted.
    """

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
    overrefusal_data: str | None = None
    """The prompts of the over-refusal tasks (``cc_tasks/c2_overrefusal``): project, xstest, a file."""
    accounting: JudgeAccounting = field(default_factory=JudgeAccounting, compare=False, repr=False)

    @property
    def source(self) -> str | None:
        """The local data file: metadata ``data``, else ``$C2_EVAL_DATA``, else None (the Hub)."""
        return self.data or os.environ.get(ENV_DATA) or None

    @property
    def judge_settings(self) -> JudgeSettings:
        return JudgeSettings(self.judge, dict(self.judge_options))

    @functools.cached_property
    def built_judge(self) -> Judge:
        """The run's judge: built and checked on first use, then shared by all subtasks."""
        return self.judge_settings.build()

    @functools.cached_property
    def built_refusal_judge(self) -> Judge:
        """The run's over-refusal judge (method section 2.9): the same kind and options, asking
        the over-refusal question; built and checked once, shared by the over-refusal subtasks."""
        return self.judge_settings.build(OVERREFUSAL)

    def key(self) -> str:
        """Canonical text of the settings (equal settings, equal key)."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.compare}
        return json.dumps(values, sort_keys=True, default=str)


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
    overrefusal_data = meta.get("overrefusal_data")
    if overrefusal_data is not None and not isinstance(overrefusal_data, (str, os.PathLike)):
        raise C2EvalConfigError(
            f"metadata 'overrefusal_data': expected project, xstest or a file, got {overrefusal_data!r}"
        )
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
        overrefusal_data=str(overrefusal_data) if overrefusal_data else None,
    )


# --------------------------------------------------------------------------- the lm-eval seam
#
# Why shared state at all: lm-eval builds each of the eight subtasks itself, from the YAML
# config plus a metadata dict, and returns only results. Two things cannot travel that way:
# one RunOptions object shared by the eight subtasks (one judge, built and checked once), and
# the accounting that c2-eval reads after lm-eval returns. So c2-eval registers its RunOptions
# here under a run id and passes the id in the metadata; each subtask takes it out again (so
# the results file records the same metadata as before) and looks the object up. A run that
# lm-eval starts without c2-eval (plain `lm_eval --tasks c2_eval`) has no id: its subtasks
# share one RunOptions per distinct settings in the process instead (one judge, as before; its
# accounting then sums such runs, and nothing reads it). This registry is the only such place.

RUN_KEY = "c2_eval_run"
"""The metadata key of a registered run id (removed from the task metadata lm-eval writes)."""

_RUNS: dict[str, RunOptions] = {}
_RUN_IDS = itertools.count(1)


@contextlib.contextmanager
def registered(options: RunOptions) -> Iterator[dict[str, str]]:
    """Register ``options`` for the lm-eval run inside the block; yields the metadata to add."""
    run_id = f"run-{os.getpid()}-{next(_RUN_IDS)}"
    _RUNS[run_id] = options
    try:
        yield {RUN_KEY: run_id}
    finally:
        _RUNS.pop(run_id, None)


def task_options(metadata: dict[str, Any]) -> RunOptions:
    """The RunOptions of the run a subtask belongs to; takes the run id out of ``metadata``."""
    run_id = metadata.pop(RUN_KEY, None)
    if run_id is not None:
        try:
            return _RUNS[run_id]
        except (KeyError, TypeError):
            raise C2EvalConfigError(
                f"metadata '{RUN_KEY}': no such run {run_id!r} in this process "
                "(the key is set by c2-eval; do not pass it yourself)"
            ) from None
    options = run_options(metadata)
    return _RUNS.setdefault(f"settings:{options.key()}", options)


__all__ = [
    "ENV_DATA",
    "ENV_JUDGE",
    "ENV_JUDGE_OPTIONS",
    "METADATA_KEYS",
    "RUN_KEY",
    "C2EvalConfigError",
    "JudgeAccounting",
    "RunOptions",
    "registered",
    "resolve_judge",
    "run_options",
    "task_options",
]
