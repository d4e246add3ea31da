"""The flow every model-backed judge shares: judge prompt -> cache lookup -> ask the model -> stats.

Subclasses (``openai``, ``hf``) only say how to answer the prompts the cache did
not have (:meth:`PromptJudge._answer`); building the prompts, keying and
de-duplicating them, the cache and the run statistics live here once.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .base import ERROR, INVALID, Judge, JudgeItem, Verdict
from .cache import JudgeCache, cache_key, lookup
from .prompt import build_messages, prompt_text

log = logging.getLogger(__name__)

Conversation = list[dict[str, str]]


class PromptJudge(Judge):
    """A judge that asks a model our judge prompt (see :mod:`.prompt`), with the verdict cache."""

    cache_path: str | Path | None = None
    use_cache: bool = True
    _cache: JudgeCache | None = None
    last_stats: dict[str, Any]

    @property
    def cache_model(self) -> str:
        """The model name that keys the cache (with the kind and the decoding parameters)."""
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        """Decoding parameters that change the verdict (part of the cache key)."""
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
        cache: JudgeCache | None,
    ) -> dict[str, Verdict]:
        """Verdicts for the cache keys in ``todo`` (``first[key]`` is the conversation to send).

        ``keys`` are all keys of the batch (with repeats), for progress accounting; an
        implementation that stores verdicts as they arrive may use ``cache`` itself.
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
        messages = [build_messages(item) for item in items]
        keys = [
            cache_key(self.kind, self.cache_model, prompt_text(m), self.params()) for m in messages
        ]
        cache = self._get_cache()
        found, todo = lookup(cache, keys)
        first: dict[str, Conversation] = {}
        for key, msgs in zip(keys, messages, strict=True):
            first.setdefault(key, msgs)
        computed = self._answer(todo, first, keys, cache) if todo else {}
        verdicts = [found.get(key) or computed[key] for key in keys]
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
