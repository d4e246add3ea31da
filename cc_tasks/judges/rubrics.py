"""What a model judge is asked: the rubric (prompt, reply parsing, reply budget) by name.

The model-backed judges (``openai``, ``hf``; :class:`~.prompt_judge.PromptJudge`) ask
one question per item. Which question is the rubric: ``course_correction`` (method
section 2.8, the default, :mod:`.prompt`) or ``overrefusal`` (method section 2.9,
:mod:`.refusal_prompt`). The rubric is part of a judge's description, so the verdict
cache (the prompt text) and the judge card (``config_key``) keep the two apart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import COURSE_CORRECTION, OVERREFUSAL, prompt, refusal_prompt
from .base import JudgeConfigError, JudgeItem, Verdict


@dataclass(frozen=True)
class Rubric:
    """A judge question: how to ask it, how to read the reply, how many tokens a reply needs."""

    name: str
    build_messages: Callable[[JudgeItem], list[dict[str, str]]]
    parse: Callable[[str | None], Verdict]
    version: str
    max_tokens: int

    def verdict(self, reply: str | None, raw: str) -> Verdict:
        """The verdict of ``reply``, keeping ``raw`` (the reply as it may be stored)."""
        parsed = self.parse(reply)
        return Verdict(parsed.label, raw=raw, safety_talk=parsed.safety_talk)

    def from_cache(self, cached: Verdict) -> Verdict:
        """A cached verdict completed from its stored raw reply (the cache keeps label and raw)."""
        if self.name == COURSE_CORRECTION:
            return cached
        return self.verdict(cached.raw, cached.raw)


def _course_correction(reply: str | None) -> Verdict:
    return Verdict(prompt.parse_verdict(reply))


def _overrefusal(reply: str | None) -> Verdict:
    label, talk = refusal_prompt.parse_reply(reply)
    return Verdict(label, safety_talk=talk)


RUBRICS: dict[str, Rubric] = {
    COURSE_CORRECTION: Rubric(
        COURSE_CORRECTION, prompt.build_messages, _course_correction, prompt.PROMPT_VERSION, 5
    ),
    OVERREFUSAL: Rubric(
        OVERREFUSAL,
        refusal_prompt.build_messages,
        _overrefusal,
        refusal_prompt.PROMPT_VERSION,
        refusal_prompt.MAX_TOKENS,
    ),
}


def get_rubric(name: str) -> Rubric:
    """The rubric called ``name`` (one clear line for an unknown one)."""
    if name not in RUBRICS:
        raise JudgeConfigError(f"unknown rubric {name!r}; choose one of: {', '.join(RUBRICS)}")
    return RUBRICS[name]
