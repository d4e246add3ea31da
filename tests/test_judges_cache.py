"""The SQLite verdict cache: keys, error handling, concurrency, what it stores."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from cc_tasks.judges import ERROR, INVALID, NO, YES, Verdict
from cc_tasks.judges.cache import JudgeCache, cache_key, default_cache_path, lookup


def test_key_depends_on_everything_that_changes_a_verdict():
    base = cache_key("openai", "gpt-4o", "prompt", {"temperature": 0, "seed": 42})
    assert base == cache_key("openai", "gpt-4o", "prompt", {"seed": 42, "temperature": 0})
    others = {
        cache_key("hf", "gpt-4o", "prompt", {"temperature": 0, "seed": 42}),
        cache_key("openai", "gpt-4o-mini", "prompt", {"temperature": 0, "seed": 42}),
        cache_key("openai", "gpt-4o", "prompt ", {"temperature": 0, "seed": 42}),
        cache_key("openai", "gpt-4o", "prompt", {"temperature": 0, "seed": 43}),
    }
    assert base not in others and len(others) == 4


def test_round_trip_and_errors_never_stored(tmp_path: Path):
    cache = JudgeCache(tmp_path / "sub" / "c.sqlite")
    assert cache.put("k1", Verdict(YES, "Yes.", 5), kind="openai", model="m")
    assert cache.put("k2", Verdict(INVALID, "maybe"), kind="openai", model="m")
    assert not cache.put("k3", Verdict(ERROR, "HTTP 500"), kind="openai", model="m")
    assert cache.get("k1") == Verdict(YES, "Yes.", 5)
    assert cache.get("k2") == Verdict(INVALID, "maybe")
    assert cache.get("k3") is None
    assert len(cache) == 2
    found, todo = lookup(cache, ["k1", "k3", "k4", "k3"])
    assert set(found) == {"k1"} and todo == ["k3", "k4"]
    assert lookup(None, ["a", "a", "b"]) == ({}, ["a", "b"])
    mode = sqlite3.connect(cache.path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_default_location_follows_the_project_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("COURSE_CORRECTION_CACHE", str(tmp_path))
    assert default_cache_path() == tmp_path / "judge-cache.sqlite"
    assert JudgeCache().path == tmp_path / "judge-cache.sqlite"


def test_concurrent_writers_threads_and_instances(tmp_path: Path):
    path = tmp_path / "c.sqlite"
    caches = [JudgeCache(path), JudgeCache(path)]  # two instances = two processes' view
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            cache = caches[t % 2]
            for i in range(40):
                cache.put(f"{t}-{i}", Verdict(YES if i % 2 else NO, str(i)), kind="k", model="m")
                assert cache.get(f"{t}-{i}") is not None
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(JudgeCache(path)) == 8 * 40


def test_the_prompt_text_is_not_stored(tmp_path: Path):
    cache = JudgeCache(tmp_path / "c.sqlite")
    prompt = "HARMFUL-REQUEST-TEXT-7731"
    cache.put(cache_key("openai", "m", prompt), Verdict(NO, "no"), kind="openai", model="m")
    cache.close()
    blob = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert prompt.encode() not in blob
