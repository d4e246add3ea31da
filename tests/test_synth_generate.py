"""C²-SYN generate: early validation, determinism across processes, SIGKILL + resume, shards."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_synth_cli import pku_row

from synth.cli import main
from synth.generate import shard_from_env
from synth.responses import read_records, responses_dir

N_REQUESTS = 6


def _rows() -> list[dict]:
    """Row 3 does not qualify (no how/what request): the selection skips it."""
    return [pku_row(i, "Tell me a joke" if i == 3 else None) for i in range(N_REQUESTS + 2)]


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
    assert main(["pairs", "--out", str(tmp_path)]) == 2  # bad input: exit 2
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
    assert main(_args(bad, out, str(tmp_path / "no-such-model"))) == 2  # bad input: exit 2
    assert f"{bad}: row 3: field 'response_1': missing" in capsys.readouterr().err
    assert not out.exists() and time.perf_counter() - start < 30

    rows = _rows()
    rows[4]["is_response_0_safe"] = "no"
    bad.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert main(_args(bad, out, str(tmp_path / "no-such-model"))) == 2  # bad input: exit 2
    assert "row 5: field 'is_response_0_safe': expected true/false" in capsys.readouterr().err

    bad.write_text('{"prompt": "How?"\n', encoding="utf-8")
    assert main(_args(bad, out, str(tmp_path / "no-such-model"))) == 2  # bad input: exit 2
    assert "row 1: not valid JSON" in capsys.readouterr().err

    assert main([*_args(bad, out, "m"), "--gate-judge", "nosuch"]) == 2  # bad input: exit 2
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
    assert main(_args(source, out, tiny_model_dir, "--max-new-tokens", "9")) == 2  # bad input
    err = capsys.readouterr().err
    assert "other settings" in err and "max_new_tokens=8" in err and "max_new_tokens=9" in err
    assert _chunks(out) == before

    # same settings: nothing to do, and the model is never loaded
    def no_model(*args, **kwargs):
        raise AssertionError("the backend must not be built when every chunk exists")

    monkeypatch.setattr("synth.stages.make_backend", no_model)
    assert main(_args(source, out, tiny_model_dir)) == 0
    assert "0 chunk(s) written, 6 already there" in capsys.readouterr().out
    assert _chunks(out) == before


def test_shared_openers_reach_r5_and_cannot_resume_a_random_folder(
    reference: Path, source: Path, tiny_model_dir: str, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "shared"
    assert main(_args(source, out, tiny_model_dir, "--openers", "shared")) == 0
    _, shared = read_records(out)
    _, paper = read_records(reference)
    for s, p in zip(shared, paper, strict=True):
        if s["skipped"]:
            continue
        opener = p["openers"][0]  # the request's draw for p1, now used for every rank
        assert s["openers"] == [opener] * 4
        assert s["responses"][5] == opener + " " + s["harmful_response"]  # r5 = opener + y
        assert p["responses"][5] == p["harmful_response"]  # the reference: r5 = y
        for i in range(1, 5):
            prefix, trigger = s["assistant_prefixes"][i - 1], s["triggers"][i - 1]
            harmful_part = prefix[: -len(trigger) - 1]  # opener + p_i
            assert s["responses"][i].startswith(prefix) and prefix.endswith(" " + trigger)
            assert s["responses"][5].startswith(harmful_part)  # shared with r5 up to p_i
    # the mode is part of the data's identity: a folder made in one mode never takes another
    copy = tmp_path / "copy"
    shutil.copytree(reference, copy)
    assert main(_args(source, copy, tiny_model_dir, "--openers", "shared")) == 2
    err = capsys.readouterr().err
    assert "other settings" in err and "openers: 'random' there, 'shared' now" in err
    # a manifest written before the option existed means "random": it still resumes
    manifest_path = responses_dir(copy) / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    del manifest["openers"]
    manifest_path.write_text(json.dumps(manifest))
    assert main(_args(source, copy, tiny_model_dir)) == 0
    assert "0 chunk(s) written" in capsys.readouterr().out
    assert main(["pairs", "--out", str(out)]) == 0
    assert main(["card", "--out", str(out)]) == 0
    card = (out / "README.md").read_text()
    assert "--openers shared" in card and "y itself after the request's opener" in card


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


# ------------------------------------------------------------------ two runs on one folder

FAKE_LAUNCHER = '''
"""`c2-syn` with a "fake" backend: deterministic text, a log of every generated turn, and a
barrier so that the runs under test are really concurrent."""
import json, os, sys, time
from pathlib import Path

import synth.backends
from cc_tasks.seeding import stable_seed
from synth.backends.base import Backend, Generation
from synth.cli import main


class FakeBackend(Backend):
    kind = "fake"
    requests_per_call = 1

    def __init__(self, model, decoding, **options):
        super().__init__(model, decoding, options.get("system_prompt"))
        barrier, parties = Path(os.environ["FAKE_BARRIER"]), int(os.environ["FAKE_PARTIES"])
        barrier.mkdir(exist_ok=True)
        (barrier / str(os.getpid())).touch()
        deadline = time.monotonic() + 120
        while len(list(barrier.iterdir())) < parties and time.monotonic() < deadline:
            time.sleep(0.05)

    def generate(self, turns):
        time.sleep(float(os.environ.get("FAKE_DELAY", "0")))
        with open(os.environ["FAKE_LOG"], "a") as log:
            for t in turns:
                log.write(json.dumps([os.getpid(), t.request, t.prefix]) + "\\n")
        return [
            Generation(f" stop: reply {stable_seed(t.request, t.prefix) % 997}.", 4) for t in turns
        ]


synth.backends.BACKEND_KINDS["fake"] = "__main__:FakeBackend"
raise SystemExit(main(sys.argv[1:]))
'''


def _fake_args(source: Path, out: Path) -> list[str]:
    return [
        "generate", "--source", str(source), "--out", str(out), "--backend", "fake",
        "--model", "fake", "--decoding", "greedy", "--max-requests", str(N_REQUESTS),
        "--chunk-size", "1", "--no-progress",
    ]  # fmt: skip


def _fake_spawn(launcher: Path, args: list[str], work: Path, parties: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(launcher), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(
            FAKE_BARRIER=str(work / "barrier"),
            FAKE_PARTIES=str(parties),
            FAKE_LOG=str(work / "turns.log"),
            FAKE_DELAY="0.3",
        ),
    )


@pytest.mark.slow
def test_two_runs_on_one_folder_generate_each_chunk_once(source: Path, tmp_path: Path) -> None:
    """Regression: two `c2-syn generate` runs on one output folder both
    redid every chunk. Now each claims chunks: every turn is generated exactly once across the
    two processes, both did part of the work, and the chunks equal a single run's."""
    launcher = tmp_path / "fake_c2syn.py"
    launcher.write_text(FAKE_LAUNCHER)
    single, shared = tmp_path / "single", tmp_path / "shared"
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    proc = _fake_spawn(launcher, _fake_args(source, single / "out"), tmp_path / "one", 1)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]

    procs = [
        _fake_spawn(launcher, _fake_args(source, shared / "out"), tmp_path / "two", 2)
        for _ in range(2)
    ]
    results = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err[-3000:]
    turns = [json.loads(line) for line in (tmp_path / "two" / "turns.log").read_text().splitlines()]
    keys = [(request, prefix) for _, request, prefix in turns]
    assert len(keys) == len(set(keys)), "a turn was generated twice"
    assert {pid for pid, _, _ in turns} == {p.pid for p in procs}  # both runs did some chunks
    written = [
        int(re.search(r"(\d+) chunk\(s\) written", out)[1]) for out, _ in results
    ]  # every chunk written by exactly one of the two
    assert sum(written) == len(_chunks(single / "out")) and min(written) >= 1
    assert _chunks(shared / "out") == _chunks(single / "out")
    assert not list(responses_dir(shared / "out").glob(".*.lock"))  # claims are released


def test_a_claim_excludes_others_until_released_or_its_process_dies(tmp_path: Path) -> None:
    from synth.claims import claim, holder, lock_path

    chunk = tmp_path / "chunk-00000.jsonl"
    first = claim(chunk)
    assert first is not None
    assert claim(chunk) is None  # another open file: excluded (flock is per open file)
    assert holder(chunk) == f"pid {os.getpid()} on {__import__('socket').gethostname()}"
    first.release()
    assert not lock_path(chunk).exists()
    # a lock file left by a killed process holds no lock: the chunk is claimable at once
    lock_path(chunk).write_text(json.dumps({"pid": 999999, "host": "elsewhere"}))
    again = claim(chunk)
    assert again is not None
    chunk.write_text("done\n")
    again.release()
    assert claim(chunk) is None  # a finished chunk is never claimed
    # a process killed while holding the claim releases it (the kernel drops the lock)
    chunk.unlink()
    holder_proc = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; from synth.claims import claim; "
         f"c = claim(Path({str(chunk)!r})); print(c is not None, flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True, env=_env(),
    )  # fmt: skip
    assert holder_proc.stdout.readline().strip() == "True"
    assert claim(chunk) is None
    os.kill(holder_proc.pid, signal.SIGKILL)
    holder_proc.wait()
    taken = claim(chunk)
    assert taken is not None
    taken.release()
