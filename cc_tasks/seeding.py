"""Stable seeds: every random choice in the project is drawn from the *content* it concerns.

A seed is the SHA-256 of a canonical JSON encoding of its parts, never Python's
``hash()`` (salted per process), so two processes or two machines make the same
prefills, truncation plans, splits and synthetic data.
"""

from __future__ import annotations

import hashlib
import json
import random
from typing import Any


def stable_seed(*parts: Any) -> int:
    """A 64-bit seed from JSON-serialisable parts; identical on every machine and run."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return int.from_bytes(hashlib.sha256(blob.encode("utf-8")).digest()[:8], "big")


def stable_rng(*parts: Any) -> random.Random:
    """A private ``random.Random`` seeded by :func:`stable_seed` (never the global RNG)."""
    return random.Random(stable_seed(*parts))


__all__ = ["stable_rng", "stable_seed"]
