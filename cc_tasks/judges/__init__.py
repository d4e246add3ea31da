"""Judges: one interface (:mod:`.base`), a registry of kinds, and :func:`make_judge`.

Adding a judge is one module (a :class:`Judge` subclass) plus one line in
:data:`JUDGE_KINDS`: the flags, the settings resolver, ``c2-eval``, ``c2-judge``,
the C²-SYN gate and the judge card all find it there (see README.md, "Extending").
"""

from __future__ import annotations

import importlib
import inspect
import json
from typing import Any

from .base import (
    ERROR,
    FULL_COMPLIANCE,
    FULL_REFUSAL,
    INVALID,
    LABELS,
    NO,
    PARTIAL_REFUSAL,
    REFUSAL_CLASSES,
    YES,
    Judge,
    JudgeConfigError,
    JudgeItem,
    Verdict,
)

# kind -> "module:Class" (imported lazily, so the rule judge never pulls in openai/torch),
# or the Judge class itself.
JUDGE_KINDS: dict[str, str | type[Judge]] = {
    "rule": "cc_tasks.judges.rule:RuleJudge",
    "openai": "cc_tasks.judges.openai:OpenAIJudge",
    "hf": "cc_tasks.judges.hf:HFJudge",
    "probe": "cc_tasks.judges.probe.judge:ProbeJudge",
    "tuned": "cc_tasks.judges.tuned.judge:TunedJudge",
}
COURSE_CORRECTION, OVERREFUSAL = "course_correction", "overrefusal"  # the rubrics (.rubrics)
# The over-refusal judges (method section 2.9), by the same kinds: the offline rule has a
# class of its own, the model judges ask the over-refusal rubric. A kind missing here (the
# probe, trained on course-correction only) cannot judge over-refusal.
REFUSAL_JUDGE_KINDS: dict[str, str | type[Judge]] = {
    "rule": "cc_tasks.judges.refusal_rule:RefusalRuleJudge",
    "openai": "cc_tasks.judges.openai:OpenAIJudge",
    "hf": "cc_tasks.judges.hf:HFJudge",
}


def judge_class(kind: str, rubric: str = COURSE_CORRECTION) -> type[Judge]:
    """The :class:`Judge` subclass registered for ``kind`` (its module imported on first use)."""
    kinds = REFUSAL_JUDGE_KINDS if rubric == OVERREFUSAL else JUDGE_KINDS
    if rubric not in (COURSE_CORRECTION, OVERREFUSAL):
        raise JudgeConfigError(
            f"unknown rubric {rubric!r}; choose {COURSE_CORRECTION} or {OVERREFUSAL}"
        )
    if not isinstance(kind, str) or kind not in kinds:
        what = "judge" if rubric == COURSE_CORRECTION else "over-refusal judge"
        raise JudgeConfigError(f"unknown {what} {kind!r}; choose one of: {', '.join(kinds)}")
    entry = kinds[kind]
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


def make_judge(
    kind: str | None = None, *, rubric: str = COURSE_CORRECTION, **options: Any
) -> Judge:
    """Build a judge of ``kind`` (default ``rule``) with kind-specific ``options``.

    ``rubric``: what it judges, course-correction (default) or ``overrefusal``
    (:data:`REFUSAL_JUDGE_KINDS`; model judges get the option ``rubric``). Raises
    :class:`JudgeConfigError` with one clear line for an unknown kind or option; call
    ``.check()`` on the result to validate credentials and URLs.
    """
    kind = (kind or "rule").strip().lower()
    cls = judge_class(kind, rubric)
    if rubric != COURSE_CORRECTION and "rubric" in inspect.signature(cls).parameters:
        options = {**options, "rubric": rubric}
    try:
        return cls(**options)
    except TypeError as err:
        raise JudgeConfigError(f"judge {kind!r}: {err}") from None


__all__ = [
    "COURSE_CORRECTION",
    "ERROR",
    "FULL_COMPLIANCE",
    "FULL_REFUSAL",
    "INVALID",
    "JUDGE_KINDS",
    "LABELS",
    "NO",
    "OVERREFUSAL",
    "PARTIAL_REFUSAL",
    "REFUSAL_CLASSES",
    "REFUSAL_JUDGE_KINDS",
    "YES",
    "Judge",
    "JudgeConfigError",
    "JudgeItem",
    "Verdict",
    "judge_class",
    "make_judge",
    "parse_options",
]
