"""The flow every model-backed judge shares: judge prompt -> cache lookup -> ask the model -> stats.

Subclasses (``openai``, ``hf``) only say how to answer the prompts the cache did
not have (:meth:`PromptJudge._answer`) and what identifies their answers
(:attr:`~PromptJudge.cache_model`, :meth:`~PromptJudge.params`,
:meth:`~PromptJudge.served_by`). Building the prompts, keying and de-duplicating
them, reading AND writing the cache (valid verdicts only, as they arrive) and the
run statistics live here once.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .base import ERROR, INVALID, Judge, JudgeItem, Verdict
from .cache import JudgeCache, cache_key, lookup
from .prompt import prompt_text
from .rubrics import COURSE_CORRECTION, Rubric, get_rubric

log = logging.getLogger(__name__)

Conversation = list[dict[str, str]]
Deliver = Callable[[Mapping[str, Verdict]], None]


class PromptJudge(Judge):
    """A judge that asks a model our judge prompt (see :mod:`.prompt`), with the verdict cache."""

    cache_path: str | Path | None = None
    use_cache: bool = True
    _cache: JudgeCache | None = None
    last_stats: dict[str, Any]
    rubric_name: str = COURSE_CORRECTION

    @property
    def rubric(self) -> Rubric:
        """What the model is asked (:mod:`.rubrics`): course-correction or over-refusal."""
        return get_rubric(self.rubric_name)

    def rubric_fields(self) -> dict[str, Any]:
        """The ``describe()`` fields of the rubric: ``prompt_version``, and ``rubric`` unless it
        is the default (so the cards of course-correction judges keep their keys)."""
        extra = {} if self.rubric_name == COURSE_CORRECTION else {"rubric": self.rubric_name}
        return {"prompt_version": self.rubric.version, **extra}

    @property
    def cache_model(self) -> str:
        """The model name that keys the cache (with the kind and the decoding parameters)."""
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        """Decoding parameters that change the verdict (part of the cache key)."""
        return {}

    def served_by(self) -> dict[str, Any]:
        """What else decides the answers: an API judge's endpoint, a local judge's engine.

        Part of the cache key (so another server never lends its verdicts); never a secret.
        """
        return {}

    def _prepare(self) -> None:
        """Validate before any work (default: :meth:`check`)."""
        self.check()

    @abc.abstractmethod
    def _answer(
        self,
        todo: list[str],
        first: dict[str, Conversation],
        keys: list[str],
        deliver: Deliver,
    ) -> None:
        """Answer the prompts of the cache keys in ``todo`` (``first[key]`` is the conversation).

        Call ``deliver({key: verdict, ...})`` as verdicts arrive (each key once; the
        template caches them at once, so an interrupted run keeps what it got). ``keys``
        are all keys of the batch (with repeats), for progress accounting. A key never
        delivered becomes an ``error`` verdict.
        """

    def _get_cache(self) -> JudgeCache | None:
        if not self.use_cache:
            return None
        if self._cache is None:
            self._cache = JudgeCache(self.cache_path)
        return self._cache

    def judge(self, items: Sequence[JudgeItem]) -> list[Verdict]:
        """One verdict per item, in order; cached and repeated prompts are not sent again."""
        self._prepare()
        items = list(items)
        rubric = self.rubric
        messages = [rubric.build_messages(item) for item in items]
        model, params, served_by = self.cache_model, self.params(), self.served_by()
        keys = [
            cache_key(self.kind, model, prompt_text(m), params, served_by=served_by)
            for m in messages
        ]
        cache = self._get_cache()
        found, todo = lookup(cache, keys)
        found = {key: rubric.from_cache(verdict) for key, verdict in found.items()}
        first: dict[str, Conversation] = {}
        for key, msgs in zip(keys, messages, strict=True):
            first.setdefault(key, msgs)
        computed: dict[str, Verdict] = {}

        def deliver(answers: Mapping[str, Verdict]) -> None:
            computed.update(answers)
            if cache is not None:  # the store refuses invalid and error verdicts
                cache.put_many(answers.items(), kind=self.kind, model=model)

        if todo:
            self._answer(todo, first, keys, deliver)
        lost = Verdict(ERROR, raw=f"judge {self.name} gave no verdict for this item")
        verdicts = [found.get(key) or computed.get(key, lost) for key in keys]
        self.last_stats = {
            "items": len(items),
            "cached": sum(key in found for key in keys),
            "sent": len(todo),
            "errors": sum(v.label == ERROR for v in verdicts),
            "invalid": sum(v.label == INVALID for v in verdicts),
        }
        (log.warning if self.last_stats["errors"] else log.info)(
            "judge %s: %s", self.name, self.last_stats
        )
        return verdicts
