"""Synthesis backends: ``hf`` (transformers), ``vllm`` (optional) and ``openai`` (any compatible
server), behind one interface (:mod:`.base`) and a registry of kinds.

Adding a backend = one module with a :class:`~.base.Backend` subclass (its generation, its
``c2-syn`` flags, its default decoding) + one line in :data:`BACKEND_KINDS`; ``c2-syn`` reads
everything else from the class (synth/README.md, "Extending: a synthesis backend").
"""

from __future__ import annotations

import importlib
from typing import Any

from cc_tasks.errors import UsageError

from .base import DECODING_MODES, Backend, BackendError, Decoding, Generation, Turn

# kind -> "module:Class", in the order `c2-syn --help` lists them. A backend module is imported
# when `c2-syn` builds its parser, so it keeps torch, vLLM and openai imports inside methods.
BACKEND_KINDS: dict[str, str] = {
    "hf": "synth.backends.hf:HFBackend",
    "vllm": "synth.backends.vllm:VLLMBackend",
    "openai": "synth.backends.openai:OpenAIBackend",
}


def backend_class(kind: str) -> type[Backend]:
    """The class registered for ``kind`` (imports its module, never its heavy libraries)."""
    if kind not in BACKEND_KINDS:
        raise UsageError(f"unknown backend {kind!r}; choose one of {', '.join(BACKEND_KINDS)}")
    module_name, class_name = BACKEND_KINDS[kind].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def backend_classes() -> dict[str, type[Backend]]:
    """Every registered kind and its class, in registry order."""
    return {kind: backend_class(kind) for kind in BACKEND_KINDS}


def make_backend(kind: str, model: str, decoding: Decoding, **options: Any) -> Backend:
    """Build a backend of ``kind`` (heavy imports happen only here)."""
    return backend_class(kind)(model, decoding, **options)


__all__ = [
    "BACKEND_KINDS",
    "DECODING_MODES",
    "Backend",
    "BackendError",
    "Decoding",
    "Generation",
    "Turn",
    "backend_class",
    "backend_classes",
    "make_backend",
]
