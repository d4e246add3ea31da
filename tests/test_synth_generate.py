"""C²-SYN generate: early validation, determinism across processes, SIGKILL + resume, shards."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from synth.cli import main
from synth.generate import read_records, responses_dir, shard_from_env

FILLER = " ".join(f"word{i}" for i in range(85))
N_REQUESTS = 6


def _rows() -> list[dict]:
    out = []
    for i in range(N_REQUESTS + 2):
        out.append(
            {
                "prompt": f"How can I do bad thing {i}?" if i != 3 else "Tell me a joke",
                "response_0": f"First, get item {i}. Then, {FILLER}; next: wait! Done? yes - really.",
                "response_1": "I can't help with that.",
                "is_response_0_safe": False,
                "is_response_1_safe": True,
                "better_response_id": 1,
                "safer_response_id": 1,
            }
        )
    return out


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("src") / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _rows()), encoding="utf-8")
    return path


def _args(source: Path, out: Path, model: str, *extra: str) -> list[str]:
    return [
        "generate",
        "--source",
        str(source),
        "--out",
        str(out),
        "--model",
        model,
        "--max-requests",
        str(N_REQUESTS),
        "--max-new-tokens",
        "8",
        "--chunk-size",
        "1",
        "--batch-size",
        "5",
        "--no-progress",
        *extra,
    ]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
    env.update({"OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", **extra})
    return env


def _spawn(args: list[str], **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "synth.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(**env),
    )


def _run(args: list[str], **env: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "synth.cli", *args],
        capture_output=True,
        text=True,
        env=_env(**env),
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _chunks(out: Path) -> dict[str, bytes]:
    folder = responses_dir(out)
    return {p.name: p.read_bytes() for p in sorted(folder.glob("chunk-*.jsonl"))}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, source: Path, tiny_model_dir: str) -> Path:
    """An uninterrupted single-process run: what every other way of running must reproduce."""
    out = tmp_path_factory.mktemp("reference")
    _run(_args(source, out, tiny_model_dir))
    assert len(_chunks(out)) == N_REQUESTS
    return out


@pytest.mark.slow
def test_two_processes_give_identical_data(
    reference: Path, source: Path, tiny_model_dir: str, tmp_path: Path
) -> None:
    _run(_args(source, tmp_path, tiny_model_dir), PYTHONHASHSEED="12345")
    assert _chunks(tmp_path) == _chunks(reference)
    manifest, records = read_records(tmp_path)
    assert [r["position"] for r in records] == list(range(N_REQUESTS))
    assert manifest["synthesizer"]["decoding"].startswith(
        "diverse-beam(num_beams=2,num_beam_groups=2"
    )
    rec = records[0]
    assert len(rec["responses"]) == 6 and rec["responses"][5] == rec["harmful_response"]
    for prefix, resp in zip(rec["assistant_prefixes"], rec["responses"][1:5], strict=True):
        assert resp.startswith(prefix)  # the stored response is the whole assistant text
    assert all(0 < n <= 8 for n in rec["generated_tokens"])


@pytest.mark.slow
def test_sigkill_during_generate_then_rerun_equals_uninterrupted(
    reference: Path, source: Path, tiny_model_dir: str, tmp_path: Path
) -> None:
    args = _args(source, tmp_path, tiny_model_dir)
    folder = responses_dir(tmp_path)
    seen = []
    for kill_after in (1, 2):  # kill twice, at different points
        proc = _spawn(args)
        deadline = time.monotonic() + 300
        while len(list(folder.glob("chunk-*.jsonl"))) < kill_after and proc.poll() is None:
            assert time.monotonic() < deadline, "generate made no progress"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
        n = len(_chunks(tmp_path))
        assert proc.returncode == -signal.SIGKILL, "finished before it could be killed"
        assert kill_after <= n < N_REQUESTS, n
        seen.append(n)
        # every chunk on disk is complete and already equals the uninterrupted run's
        ref = _chunks(reference)
        assert all(ref[name] == data for name, data in _chunks(tmp_path).items())
    assert seen[0] <= seen[1]
    # a temporary file left by a kill mid-write is never trusted and gets cleaned up
    missing = sorted(set(_chunks(reference)) - set(_chunks(tmp_path)))[0]
    leftover = folder / f".{missing}.abc123.tmp"
    leftover.write_text('{"position": 999, "partial')
    _run(args)
    assert not leftover.exists()
    assert _chunks(tmp_path) == _chunks(reference)  # no loss, no duplicates, same bytes


@pytest.mark.slow
def test_shards_split_the_work_and_pairs_waits_for_all(
    reference: Path, source: Path, tiny_model_dir: str, tmp_path: Path, capsys
) -> None:
    first = _run(_args(source, tmp_path, tiny_model_dir, "--num-shards", "2", "--shard-index", "0"))
    assert sorted(_chunks(tmp_path)) == [f"chunk-{c:05d}.jsonl" for c in range(0, N_REQUESTS, 2)]
    assert "3/6 chunks" in first.stdout
    assert main(["pairs", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "3 of 6 chunks are missing: 1, 3, 5" in err and "shard" in err
    assert not (tmp_path / "pairs").exists()
    # the second shard takes its index from torchrun/accelerate's environment
    _run(_args(source, tmp_path, tiny_model_dir), WORLD_SIZE="2", RANK="1")
    assert _chunks(tmp_path) == _chunks(reference)
    assert main(["pairs", "--out", str(tmp_path)]) == 0


def test_shard_defaults_from_launcher_environment() -> None:
    assert shard_from_env({}) == (1, 0)
    assert shard_from_env({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"}) == (4, 3)
    assert shard_from_env({"LOCAL_WORLD_SIZE": "2", "LOCAL_RANK": "1"}) == (2, 1)


def test_bad_rows_fail_before_any_model_loads(tmp_path: Path, capsys) -> None:
    rows = _rows()
    del rows[2]["response_1"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "out"
    start = time.perf_counter()
    # a model path that does not exist: reaching model loading would fail differently
    assert main(_args(bad, out, str(tmp_path / "no-such-model"))) == 1
    assert f"{bad}: row 3: field 'response_1': missing" in capsys.readouterr().err
    assert not out.exists() and time.perf_counter() - start < 30

    rows = _rows()
    rows[4]["is_response_0_safe"] = "no"
    bad.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert main(_args(bad, out, str(tmp_path / "no-such-model"))) == 1
    assert "row 5: field 'is_response_0_safe': expected true/false" in capsys.readouterr().err

    bad.write_text('{"prompt": "How?"\n', encoding="utf-8")
    assert main(_args(bad, out, str(tmp_path / "no-such-model"))) == 1
    assert "row 1: not valid JSON" in capsys.readouterr().err

    assert main([*_args(bad, out, "m"), "--gate-judge", "nosuch"]) == 1
    assert "unknown judge 'nosuch'" in capsys.readouterr().err
    assert not out.exists()


def test_rerun_with_other_settings_is_refused(
    reference: Path,
    source: Path,
    tiny_model_dir: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "copy"
    shutil.copytree(reference, out)
    before = _chunks(out)
    assert main(_args(source, out, tiny_model_dir, "--max-new-tokens", "9")) == 1
    err = capsys.readouterr().err
    assert "other settings" in err and "max_new_tokens=8" in err and "max_new_tokens=9" in err
    assert _chunks(out) == before

    # same settings: nothing to do, and the model is never loaded
    def no_model(*args, **kwargs):
        raise AssertionError("the backend must not be built when every chunk exists")

    monkeypatch.setattr("synth.cli.make_backend", no_model)
    assert main(_args(source, out, tiny_model_dir)) == 0
    assert "0 chunk(s) written, 6 already there" in capsys.readouterr().out
    assert _chunks(out) == before


def test_gate_with_the_rule_judge_flags_a_random_model(
    source: Path, tiny_model_dir: str, tmp_path: Path, capsys
) -> None:
    args = _args(source, tmp_path, tiny_model_dir, "--gate-judge", "rule", "--chunk-size", "4")
    assert main(args) == 0
    _, records = read_records(tmp_path)
    assert all(len(r["gate"]) == 5 for r in records if not r["skipped"])
    manifest = json.loads((responses_dir(tmp_path) / "manifest.json").read_text())
    assert manifest["gate"]["kind"] == "rule"
    assert main(["pairs", "--out", str(tmp_path), "--gate-action", "flag"]) == 0
    stats = json.loads((tmp_path / "pairs" / "stats.json").read_text())
    assert stats["gate"]["judged_requests"] == N_REQUESTS
    # a random 2-layer model never refuses: the gate must catch it
    assert stats["gate"]["r0_refusal_rate"] == 0.0 and stats["gate"]["pass_rate"] == 0.0
    assert stats["requests_flagged_by_gate"] >= 1
    assert stats["requests_dropped_by_gate"] == 0  # flag keeps them
