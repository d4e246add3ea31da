"""The project's cache folder: one place decides where cached state lives.

The converted embedded model (:mod:`cc_tasks.embedded`) and the verdict cache
(:mod:`cc_tasks.judges.cache`) live under it; tests point it at a temporary
folder through ``$COURSE_CORRECTION_CACHE`` so they never share state.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "COURSE_CORRECTION_CACHE"


def cache_dir() -> Path:
    """``$COURSE_CORRECTION_CACHE``, else ``$XDG_CACHE_HOME/course-correction``, else ``~/.cache/...``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "course-correction"


__all__ = ["CACHE_ENV", "cache_dir"]
