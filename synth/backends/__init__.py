"""Synthesis backends: ``hf`` (transformers), ``vllm`` (optional) and ``openai`` (any compatible server)."""

from .base import Backend, BackendError, Decoding, Generation, Turn, make_backend

__all__ = ["Backend", "BackendError", "Decoding", "Generation", "Turn", "make_backend"]
