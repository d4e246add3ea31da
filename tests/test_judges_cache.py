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


def test_key_depends_on_the_endpoint_never_on_a_credential():
    """Issue 10, failure 6: another server behind the same model name is another judge."""
    from cc_tasks.judges.openai import endpoint_id

    def key(url: str) -> str:
        return cache_key("openai", "m", "p", {"seed": 42}, served_by={"base_url": endpoint_id(url)})

    a = key("http://127.0.0.1:8000/v1")
    assert a != key("http://127.0.0.1:8001/v1") and a != key("http://10.0.0.2:8000/v1")
    assert a != cache_key("openai", "m", "p", {"seed": 42})
    # the same endpoint written differently is one endpoint; credentials are not part of it
    for same in ("HTTP://127.0.0.1:8000/v1/", "http://user:secret@127.0.0.1:8000/v1?k=1"):
        assert key(same) == a
    assert endpoint_id("https://api.openai.com:443/v1/") == "https://api.openai.com/v1"
    assert "secret" not in endpoint_id("http://user:secret@h:1/v1")


def test_round_trip_and_errors_never_stored(tmp_path: Path):
    cache = JudgeCache(tmp_path / "sub" / "c.sqlite")
    assert cache.put("k1", Verdict(YES, "Yes.", 5), kind="openai", model="m")
    assert cache.put("k0", Verdict(NO, "no"), kind="openai", model="m")
    assert not cache.put("k3", Verdict(ERROR, "HTTP 500"), kind="openai", model="m")
    assert cache.get("k1") == Verdict(YES, "Yes.", 5)
    assert cache.get("k3") is None
    assert len(cache) == 2
    found, todo = lookup(cache, ["k1", "k3", "k4", "k3"])
    assert set(found) == {"k1"} and todo == ["k3", "k4"]
    assert lookup(None, ["a", "a", "b"]) == ({}, ["a", "b"])
    mode = sqlite3.connect(cache.path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_invalid_verdicts_are_neither_stored_nor_reused(tmp_path: Path):
    """Issue 10, failure 7: a rerun with a fixed judge must ask again what was invalid."""
    cache = JudgeCache(tmp_path / "c.sqlite")
    assert not cache.put("k2", Verdict(INVALID, "maybe"), kind="openai", model="m")
    assert cache.get("k2") is None and len(cache) == 0
    # a row an older version stored is ignored, not served
    conn = sqlite3.connect(cache.path)
    conn.execute("INSERT INTO verdicts VALUES ('old', 'openai', 'm', 'invalid', 'Maybe', NULL, 0)")
    conn.commit()
    conn.close()
    assert cache.get("old") is None
    assert lookup(cache, ["old"]) == ({}, ["old"])


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
