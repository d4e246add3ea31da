"""Synthesis backends: ``hf`` (transformers), ``vllm`` (optional) and ``openai`` (any compatible
server), behind one interface (:mod:`.base`) and a registry of lazily imported kinds."""

from __future__ import annotations

import importlib
from typing import Any

from cc_tasks.errors import UsageError

from .base import DECODING_MODES, Backend, BackendError, Decoding, Generation, Turn

# kind -> "module:Class", imported only when built: the hf backend pulls in torch, vllm needs a GPU.
BACKEND_KINDS: dict[str, str] = {
    "hf": "synth.backends.hf:HFBackend",
    "vllm": "synth.backends.vllm:VLLMBackend",
    "openai": "synth.backends.openai:OpenAIBackend",
}


def make_backend(kind: str, model: str, decoding: Decoding, **options: Any) -> Backend:
    """Build a backend of ``kind`` (heavy imports happen only here)."""
    if kind not in BACKEND_KINDS:
        raise UsageError(f"unknown backend {kind!r}; choose one of {', '.join(BACKEND_KINDS)}")
    module_name, class_name = BACKEND_KINDS[kind].split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(model, decoding, **options)


__all__ = [
    "BACKEND_KINDS",
    "DECODING_MODES",
    "Backend",
    "BackendError",
    "Decoding",
    "Generation",
    "Turn",
    "make_backend",
]
