"""What made a number: the project version and the data file's identity.

Every result (lm-eval results through the task config's ``metadata.c2_eval``
block, c2-judge's ``corr.json``) carries these, with the judge card
(:mod:`cc_tasks.judges.card`), so a number in a paper can be traced to the
code, the exact data file and the judge that produced it.
"""

from __future__ import annotations

import functools
import hashlib
import os
from importlib import metadata
from pathlib import Path

PROJECT = "course-correction"
PROVENANCE_KEY = "c2_eval"
"""The key of our provenance block in a task config's ``metadata`` (lm-eval copies it into
``results_<date>.json`` as ``configs[task].metadata.c2_eval``): the one place that names it, for
the task that writes it and the result readers that read it."""


def project_version() -> str:
    """The installed distribution's version (the package's ``__version__`` when not installed)."""
    try:
        return metadata.version(PROJECT)
    except metadata.PackageNotFoundError:
        from cc_tasks import __version__

        return __version__


@functools.lru_cache(maxsize=16)
def _sha256(path: str, mtime_ns: int, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file, streamed; cached per (path, mtime, size) so eight subtasks hash once."""
    resolved = Path(path).resolve()
    stat = resolved.stat()
    return _sha256(str(resolved), stat.st_mtime_ns, stat.st_size)
