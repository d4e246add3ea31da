"""The SQLite verdict cache: keys, error handling, concurrency, what it stores."""

from __future__ import annotations

import json
import logging
import random
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from test_c2_judge import rejudge_args, samples_dir, server  # noqa: F401 - fixtures

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
    """Another server behind the same model name is another judge."""
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
    """A rerun with a fixed judge must ask again what was invalid."""
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


# --------------------------------------------------------------------------- a corrupt cache
def filled_cache(path: Path, rows: int = 2000) -> Path:
    """A sound cache file of ``rows`` verdicts, closed (checkpointed: no -wal left)."""
    cache = JudgeCache(path)
    verdicts = [(f"key-{i:05d}", Verdict(YES if i % 3 else NO, "x" * 80, i)) for i in range(rows)]
    cache.put_many(verdicts, kind="openai", model="m")
    cache.close()
    assert not path.with_name(path.name + "-wal").exists()
    return path


def random_bytes(path: Path) -> Path:
    path.write_bytes(random.Random(7).randbytes(64 * 1024))
    return path


def truncated(path: Path) -> Path:
    filled_cache(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize("damage", [random_bytes, truncated], ids=["random-bytes", "truncated"])
def test_a_corrupt_cache_is_moved_aside_and_replaced(
    tmp_path: Path, damage, caplog: pytest.LogCaptureFixture
):
    path = damage(tmp_path / "c.sqlite")
    broken = path.read_bytes()
    with caplog.at_level(logging.WARNING):
        cache = JudgeCache(path)  # detected when the cache opens, before any work
    aside = tmp_path / "c.sqlite.corrupt-1"
    assert aside.read_bytes() == broken  # kept for a look, not deleted
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and str(path) in warnings[0] and str(aside) in warnings[0]
    assert "\n" not in warnings[0]
    # a fresh, working cache in its place
    assert len(cache) == 0 and cache.get("key-00001") is None
    assert cache.put("k", Verdict(YES, "yes"), kind="openai", model="m")
    assert cache.get("k") == Verdict(YES, "yes")
    cache.close()
    # damaged again: the next one goes beside the first, never over it
    damage(path)
    JudgeCache(path).close()
    assert aside.read_bytes() == broken and (tmp_path / "c.sqlite.corrupt-2").is_file()


def test_a_sound_cache_is_kept(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    path = filled_cache(tmp_path / "c.sqlite", rows=50)
    with caplog.at_level(logging.WARNING):
        assert len(JudgeCache(path)) == 50
    assert not caplog.records and not list(tmp_path.glob("*.corrupt-*"))


@pytest.mark.slow
@pytest.mark.parametrize("damage", [random_bytes, truncated], ids=["random-bytes", "truncated"])
def test_c2_judge_rejudge_goes_on_with_a_fresh_cache(
    server,  # noqa: F811 - the fixture imported above
    samples_dir: Path,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
    damage,
):
    """``c2-judge rejudge`` with a damaged verdict cache: one warning line, then a normal run."""
    out = tmp_path / "out"
    cache = damage(out.parent / "verdicts.sqlite")  # the --judge-cache of rejudge_args
    proc = subprocess.run(
        [sys.executable, "-m", "cc_tasks.cli.judge", *rejudge_args(server, samples_dir, out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "not a sound SQLite database" in line]
    assert len(lines) == 1 and str(cache) in lines[0]
    assert (tmp_path / "verdicts.sqlite.corrupt-1").is_file()
    assert json.loads((out / "corr.json").read_text())["totals"]["n"] == 8
    assert server.count == 8  # everything judged afresh, and now cached
