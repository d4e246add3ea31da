"""How the demo runs its steps: the project's own commands as subprocesses, one at a time or
side by side, each with its log and wall time, skipped under ``--resume`` where their complete
output is already there; and the one step done in process, the split of the rows into an eval
half and a synthesis half.

Apart from demo/run_demo.py (which says what the steps are) so the pilots in experiments/ and
the tests can run steps the same way.
"""

from __future__ import annotations

import glob
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


EVAL_HALF, SYN_HALF = "eval_half.jsonl", "syn_half.jsonl"


def split_halves(data: Path, seed: int) -> tuple[list[str], list[str]]:
    """Two disjoint halves by request (stable hash of the prompt): the eval and synthesis lines."""
    from cc_tasks.seeding import stable_seed

    halves: dict[int, list[str]] = {0: [], 1: []}
    seen: dict[str, int] = {}
    for line in data.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        prompt = json.loads(line)["prompt"]
        side = seen.setdefault(prompt, stable_seed("demo-split", seed, prompt) % 2)
        halves[side].append(line)
    return halves[0], halves[1]


def split_differs(data: Path, out: Path, seed: int) -> str | None:
    """Which half already in ``out`` differs from the split of ``data`` (None: both match or
    neither is there). Why: ``--resume`` reuses the earlier steps' outputs, which are only
    valid for the same rows and split seed."""
    for name, lines in zip((EVAL_HALF, SYN_HALF), split_halves(data, seed), strict=True):
        path = out / name
        if path.exists() and path.read_text(encoding="utf-8") != "\n".join(lines) + "\n":
            return str(path)
    return None


def split_rows(data: Path, out: Path, seed: int) -> tuple[Path, Path, int, int]:
    """Two disjoint halves by request (:func:`split_halves`), written as JSONL."""
    eval_lines, syn_lines = split_halves(data, seed)
    eval_path, syn_path = out / EVAL_HALF, out / SYN_HALF
    eval_path.write_text("\n".join(eval_lines) + "\n", encoding="utf-8")
    syn_path.write_text("\n".join(syn_lines) + "\n", encoding="utf-8")
    return eval_path, syn_path, len(eval_lines), len(syn_lines)


def run(
    step: str, cmd: list[str], log: Path, timings: dict[str, float], *, threads: int | None = None
) -> None:
    """Run one step, its output teed to a log file; stop the demo on failure.

    ``threads``: OMP_NUM_THREADS for the step unless the user set it. Small-batch generation
    on a busy 2-core CPU runs several times faster on one thread (measured); training does not.
    """
    print(f"\n=== {step}\n$ {shlex.join(cmd)}", flush=True)
    env = dict(os.environ)
    if threads and "OMP_NUM_THREADS" not in os.environ:
        env["OMP_NUM_THREADS"] = str(threads)
    start = time.perf_counter()
    with log.open("w", encoding="utf-8") as fh:
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=env
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            fh.write(line)
            if not line.startswith(("Generating", "Running generate_until", "Requesting")):
                sys.stdout.write(line)
        rc = proc.wait()
    timings[step] = round(time.perf_counter() - start, 1)
    print(f"=== {step}: {timings[step]} s (log: {log})", flush=True)
    if rc != 0:
        raise SystemExit(f"demo: step '{step}' failed with exit code {rc}; see {log}")


@dataclass(frozen=True)
class Step:
    """One command of the demo: its name (the timings key), command line, log and threads;
    ``done``: a glob of the file that exists only once the step's whole output is written
    (:func:`output_of`), which ``--resume`` takes as "already run" (None: always run)."""

    name: str
    cmd: list[str]
    log: Path
    threads: int | None = None
    done: str | None = None


def output_of(folder: Path, pattern: str) -> str:
    """A :attr:`Step.done` glob: ``pattern`` (``**`` allowed) under ``folder``, taken literally."""
    return os.path.join(glob.escape(str(folder)), pattern)


def skipped(step: Step, resume: bool) -> bool:
    """With ``resume``, whether the step's complete output exists (and say so: it is skipped)."""
    if not resume or step.done is None:
        return False
    found = sorted(glob.glob(step.done, recursive=True))
    if found:
        print(f"\n=== {step.name}: skipped (output exists: {found[0]})", flush=True)
    return bool(found)


def run_step(step: Step, timings: dict[str, float], *, resume: bool = False) -> bool:
    """:func:`run` one :class:`Step` unless ``resume`` finds its output; whether it ran."""
    if skipped(step, resume):
        return False
    run(step.name, step.cmd, step.log, timings, threads=step.threads)
    return True


def run_parallel(
    steps: Sequence[Step], timings: dict[str, float], *, resume: bool = False
) -> list[str]:
    """Run independent steps at the same time, each with its own log; stop on any failure.

    Why: each generation step runs on one thread (faster on a busy CPU, see :func:`run`), so
    on 2 cores two independent steps (evaluating the base model, synthesising C²-SYN) finish
    in about the time of the longer one instead of the sum. Each step's own wall time is
    recorded; the output goes to its log only, and the last lines are printed at the end.
    With ``resume``, steps whose output exists are skipped. Returns the names of those run.
    """
    steps = [step for step in steps if not skipped(step, resume)]
    if not steps:
        return []
    start = time.perf_counter()
    procs = []
    for step in steps:
        print(f"\n=== {step.name} (in parallel)\n$ {shlex.join(step.cmd)}", flush=True)
        env = dict(os.environ)
        if step.threads and "OMP_NUM_THREADS" not in os.environ:
            env["OMP_NUM_THREADS"] = str(step.threads)
        fh = step.log.open("w", encoding="utf-8")
        proc = subprocess.Popen(
            step.cmd, stdout=fh, stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=env
        )
        procs.append((step, proc, fh))
    failed = []
    pending = list(procs)
    while pending:
        time.sleep(1)
        for item in list(pending):
            step, proc, fh = item
            if proc.poll() is None:
                continue
            pending.remove(item)
            fh.close()
            timings[step.name] = round(time.perf_counter() - start, 1)
            tail = step.log.read_text(encoding="utf-8", errors="replace").splitlines()[-12:]
            print("\n".join(tail))
            print(f"=== {step.name}: {timings[step.name]} s (log: {step.log})", flush=True)
            if proc.returncode != 0:
                failed.append(f"'{step.name}' (exit {proc.returncode}; see {step.log})")
                for _, other, _ in pending:  # the demo stops: do not wait for the others
                    other.terminate()
    if len(steps) > 1:
        timings[" + ".join(s.name for s in steps)] = round(time.perf_counter() - start, 1)
    if failed:
        raise SystemExit("demo: step " + ", ".join(failed) + " failed")
    return [step.name for step in steps]


def bin_of(name: str) -> str:
    """A console script of this environment (beside the running python)."""
    candidate = Path(sys.executable).with_name(name)
    return str(candidate) if candidate.exists() else name
