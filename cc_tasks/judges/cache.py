"""On-disk SQLite cache of judge verdicts, so a rerun over the same items costs nothing.

Keyed by a SHA-256 of (judge kind, model, exact prompt, decoding parameters,
what serves the model): change any of them and the old verdicts no longer
match. What serves the model is an API judge's endpoint (its base URL,
normalised, never the key or URL credentials: another server behind the same
model name is another judge) or a local judge's engine and dtype. Only the
key, the verdict and a few descriptive columns are stored; neither the prompt
(harmful text) nor any credential ever is.

Only valid verdicts (``yes``/``no``, or a refusal judge's answer class) are stored and read back. ``error``
verdicts are never stored, so a rerun retries exactly the items that failed;
nor are ``invalid`` ones (a reply that is not a clear yes or no is a symptom
of a misconfigured judge or server, see :mod:`.record`), so a rerun with a
fixed judge asks again; rows of either kind left by older versions are ignored.

Safe under concurrency: WAL journal, a busy timeout for other processes, and
one connection per thread (sqlite3 connections must not cross threads).

Disposable: a file that is not a sound SQLite database (truncated, overwritten) is
found when the cache opens, before any judging (``PRAGMA quick_check``), moved aside
to ``<file>.corrupt-<n>`` (never over an earlier one) with a one-line warning naming
it, and replaced by a fresh cache; the run goes on and simply asks again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from cc_tasks.errors import message

from .base import NO, REFUSAL_CLASSES, YES, Verdict

log = logging.getLogger(__name__)

CACHE_FILE = "judge-cache.sqlite"
CACHED_LABELS = (YES, NO, *REFUSAL_CLASSES)  # what a rerun may reuse; invalid, error asked again
_SCHEMA = """
CREATE TABLE IF NOT EXISTS verdicts (
    key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    model TEXT NOT NULL,
    label TEXT NOT NULL,
    raw TEXT NOT NULL,
    position INTEGER,
    created REAL NOT NULL
)
"""


def default_cache_path() -> Path:
    """``<cc_tasks.paths.cache_dir()>/judge-cache.sqlite`` (honours $COURSE_CORRECTION_CACHE)."""
    from cc_tasks.paths import cache_dir

    return cache_dir() / CACHE_FILE


def cache_key(
    kind: str,
    model: str,
    prompt: str,
    params: Mapping[str, Any] | None = None,
    *,
    served_by: Mapping[str, Any] | None = None,
) -> str:
    """Hex SHA-256 of the canonical JSON of everything that determines a verdict.

    ``served_by``: what else decides the answer, e.g. an API judge's normalised
    base URL or a local judge's engine (never a credential).
    """
    ident = {"kind": kind, "model": model, "prompt": prompt, "params": dict(params or {})}
    if served_by:  # absent when empty, so keys of judges without one stay as they were
        ident["served_by"] = dict(served_by)
    blob = json.dumps(ident, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class CorruptCache(sqlite3.DatabaseError):
    """SQLite opened the file but its integrity check failed."""


# SQLite's primary result codes for a damaged file (SQLITE_CORRUPT, SQLITE_NOTADB)
_CORRUPT_CODES = (11, 26)


def is_corruption(err: sqlite3.DatabaseError) -> bool:
    """Whether ``err`` says the file itself is damaged (not: locked, read-only, disk full)."""
    if isinstance(err, CorruptCache):
        return True
    code = getattr(err, "sqlite_errorcode", None)  # Python >= 3.11
    if code is not None:
        return code & 0xFF in _CORRUPT_CODES
    return not isinstance(err, sqlite3.OperationalError)


def set_aside(path: Path) -> Path | None:
    """Move ``path`` (and its ``-wal``/``-shm`` files) to ``<path>.corrupt-<n>``, the first
    free ``n``; never replaces a file. None when the file is already gone (another process)."""
    n = 1
    while True:
        target = path.with_name(f"{path.name}.corrupt-{n}")
        try:
            os.link(path, target)  # fails when target exists: nothing is ever overwritten
        except FileExistsError:
            n += 1
            continue
        except FileNotFoundError:
            return None
        except OSError:  # no hard links on this file system
            if os.path.lexists(target):
                n += 1
                continue
            try:
                os.rename(path, target)
            except FileNotFoundError:
                return None
        else:
            os.unlink(path)
        break
    for suffix in ("-wal", "-shm"):  # a stale WAL must never be replayed into the new file
        companion = path.with_name(path.name + suffix)
        if companion.exists() and not os.path.lexists(target.with_name(target.name + suffix)):
            os.rename(companion, target.with_name(target.name + suffix))
        elif companion.exists():
            companion.unlink()
    return target


class JudgeCache:
    """A verdict store in one SQLite file; every method is thread-safe."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path).expanduser() if path else default_cache_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._lock = threading.Lock()  # serialises writers inside this process
        with self._lock:
            try:
                self._open()
            except sqlite3.DatabaseError as err:
                if not is_corruption(err):
                    raise
                self.close()
                aside = set_aside(self.path)
                log.warning(
                    "judge cache %s is not a sound SQLite database (%s); %s, starting a fresh one",
                    self.path,
                    message(err),
                    f"moved it to {aside}" if aside else "another process moved it",
                )
                self._open()

    def _open(self) -> None:
        """Open (or create) the store and check it; raises :class:`sqlite3.DatabaseError`."""
        conn = self._conn()
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(_SCHEMA)
        conn.commit()
        problems = conn.execute("PRAGMA quick_check(1)").fetchone()
        if not problems or problems[0] != "ok":
            raise CorruptCache(f"quick_check: {problems[0] if problems else 'no answer'}")

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=60.0)
            conn.execute("PRAGMA busy_timeout=60000")
            # WAL + NORMAL: no fsync per verdict (a crash may lose the last few, which are
            # simply judged again); full sync made a cold 4,000-item run CPU-bound here.
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def get(self, key: str) -> Verdict | None:
        return self.get_many([key]).get(key)

    def get_many(self, keys: Iterable[str]) -> dict[str, Verdict]:
        """The cached verdicts among ``keys`` (missing keys are absent from the result)."""
        wanted = list(dict.fromkeys(keys))
        found: dict[str, Verdict] = {}
        conn = self._conn()
        for start in range(0, len(wanted), 500):  # stay under SQLite's bound-parameter limit
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = conn.execute(
                f"SELECT key, label, raw, position FROM verdicts WHERE key IN ({marks}) "
                f"AND label IN ({','.join('?' * len(CACHED_LABELS))})",
                [*chunk, *CACHED_LABELS],
            ).fetchall()
            for key, label, raw, position in rows:
                found[key] = Verdict(label=label, raw=raw, position=position)
        return found

    def put(self, key: str, verdict: Verdict, *, kind: str, model: str) -> bool:
        """Store one verdict; ``invalid`` and ``error`` ones are refused (returns False)."""
        return self.put_many([(key, verdict)], kind=kind, model=model) == 1

    def put_many(self, entries: Iterable[tuple[str, Verdict]], *, kind: str, model: str) -> int:
        """Store the valid verdicts (invalid and errors skipped); returns how many were written."""
        rows = [
            (key, kind, model, v.label, v.raw, v.position, time.time())
            for key, v in entries
            if v.label in CACHED_LABELS
        ]
        if not rows:
            return 0
        with self._lock:
            conn = self._conn()
            conn.executemany("INSERT OR REPLACE INTO verdicts VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            conn.commit()
        return len(rows)

    def __len__(self) -> int:
        return self._conn().execute("SELECT COUNT(*) FROM verdicts").fetchone()[0]

    def close(self) -> None:
        """Close this thread's connection (others close when their thread ends)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def lookup(cache: JudgeCache | None, keys: Iterable[str]) -> tuple[dict[str, Verdict], list[str]]:
    """Split ``keys`` into cached verdicts and the distinct keys still to judge (first-seen order).

    Identical prompts inside one batch are judged once, even without a cache.
    """
    keys = list(keys)
    found = cache.get_many(keys) if cache is not None else {}
    todo = [key for key in dict.fromkeys(keys) if key not in found]
    return found, todo
