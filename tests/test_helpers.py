"""Small shared homes: seeding, the cache folder, the atomic write (one of each)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from cc_tasks import embedded, files, paths, prefill, seeding


def test_seeding_has_one_home_and_old_imports_still_work() -> None:
    assert prefill.stable_seed is seeding.stable_seed
    assert prefill.stable_rng is seeding.stable_rng
    # the values are pinned: data made before the move must stay reproducible
    assert seeding.stable_seed("x", 1) == seeding.stable_seed("x", 1)
    assert seeding.stable_seed("x", 1) != seeding.stable_seed("x", 2)
    assert seeding.stable_rng("a").random() == seeding.stable_rng("a").random()


def test_stable_seed_value_is_unchanged_by_the_move() -> None:
    import hashlib
    import json

    blob = json.dumps(["x", 1], sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    expected = int.from_bytes(hashlib.sha256(blob.encode()).digest()[:8], "big")
    assert seeding.stable_seed("x", 1) == expected


def test_cache_dir_has_one_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cc_tasks.judges.cache import default_cache_path

    assert embedded.cache_dir is paths.cache_dir and embedded.CACHE_ENV == paths.CACHE_ENV
    monkeypatch.setenv(paths.CACHE_ENV, str(tmp_path / "cc"))
    assert paths.cache_dir() == tmp_path / "cc"
    assert default_cache_path().parent == tmp_path / "cc"
    assert embedded.model_dir().parent == tmp_path / "cc" / "models"
    monkeypatch.delenv(paths.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert paths.cache_dir() == tmp_path / "xdg" / "course-correction"


def test_the_atomic_file_write_exists_once() -> None:
    """Every file writer goes through cc_tasks.files (folders swap by rename on their own)."""
    import synth.generate

    assert synth.generate.atomic_write_text is files.atomic_write_text  # older imports
    root = Path(files.__file__).resolve().parents[1]
    sources = [
        *root.glob("cc_tasks/**/*.py"),
        *root.glob("synth/**/*.py"),
        *root.glob("recipes/**/*.py"),
    ]
    writers = [
        str(p.relative_to(root))
        for p in sources
        if p.name != "files.py"
        and ("mkstemp(" in p.read_text() or "NamedTemporaryFile(" in p.read_text())
    ]
    assert writers == [], "use cc_tasks.files.atomic_write_text / atomic_path"


def test_atomic_write_replaces_whole_and_leaves_nothing_behind(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.json"
    files.atomic_write_text(target, "first\n")
    files.atomic_write_text(target, "second\n")
    assert target.read_text() == "second\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.json"]
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask  # not mkstemp's private 0600


def test_atomic_write_failure_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "out.parquet"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="writer died"), files.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("writer died")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.parquet"]
