"""Judges: one interface (:mod:`.base`), a registry of kinds, and :func:`make_judge`.

Adding a judge is one module (a :class:`Judge` subclass) plus one line in
:data:`JUDGE_KINDS`: the flags, the settings resolver, ``c2-eval``, ``c2-judge``,
the C²-SYN gate and the judge card all find it there (see README.md, "Extending").
"""

from __future__ import annotations

import importlib
import json
from typing import Any

from .base import ERROR, INVALID, LABELS, NO, YES, Judge, JudgeConfigError, JudgeItem, Verdict

# kind -> "module:Class" (imported lazily, so the rule judge never pulls in openai/torch),
# or the Judge class itself.
JUDGE_KINDS: dict[str, str | type[Judge]] = {
    "rule": "cc_tasks.judges.rule:RuleJudge",
    "openai": "cc_tasks.judges.openai:OpenAIJudge",
    "hf": "cc_tasks.judges.hf:HFJudge",
    "probe": "cc_tasks.judges.probe.judge:ProbeJudge",
    "tuned": "cc_tasks.judges.tuned.judge:TunedJudge",
}


def judge_class(kind: str) -> type[Judge]:
    """The :class:`Judge` subclass registered for ``kind`` (its module imported on first use)."""
    if not isinstance(kind, str) or kind not in JUDGE_KINDS:
        raise JudgeConfigError(f"unknown judge {kind!r}; choose one of: {', '.join(JUDGE_KINDS)}")
    entry = JUDGE_KINDS[kind]
    if isinstance(entry, str):
        module_name, cls_name = entry.split(":")
        return getattr(importlib.import_module(module_name), cls_name)
    return entry


def parse_options(text: str | None, source: str) -> dict[str, Any]:
    """Judge options from a JSON object (a flag or an environment variable named ``source``)."""
    if not text:
        return {}
    try:
        options = json.loads(text)
    except json.JSONDecodeError as err:
        raise JudgeConfigError(f"{source}: not valid JSON ({err.msg})") from None
    if not isinstance(options, dict):
        raise JudgeConfigError(f"{source}: expected a JSON object of judge options")
    return options


def make_judge(kind: str | None = None, **options: Any) -> Judge:
    """Build a judge of ``kind`` (default ``rule``) with kind-specific ``options``.

    Raises :class:`JudgeConfigError` with one clear line for an unknown kind or
    option; call ``.check()`` on the result to validate credentials and URLs.
    """
    kind = (kind or "rule").strip().lower()
    cls = judge_class(kind)
    try:
        return cls(**options)
    except TypeError as err:
        raise JudgeConfigError(f"judge {kind!r}: {err}") from None


__all__ = [
    "ERROR",
    "INVALID",
    "JUDGE_KINDS",
    "LABELS",
    "NO",
    "YES",
    "Judge",
    "JudgeConfigError",
    "JudgeItem",
    "Verdict",
    "judge_class",
    "make_judge",
    "parse_options",
]
