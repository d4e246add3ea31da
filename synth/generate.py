"""Stage 1 of C²-SYN: PKU rows -> six ranked responses per request, in resumable shards.

What it writes, and the checks that make a rerun safe, are :mod:`synth.responses`. Here: which
requests, and generating them.

* A chunk is written to a temporary file and renamed into place (``os.replace``), so it either
  exists complete or not at all; a rerun skips existing chunks. Killing the process at any
  moment loses at most the chunk in progress, and rerunning regenerates it exactly (all
  choices are seeded from the rows, decoding is deterministic).
* Two runs on one folder share the work: each claims a chunk before generating
  it (:mod:`synth.claims`), skips chunks another live process holds, and waits
  for those at the end; each chunk is generated once.
* Chunk ``c`` belongs to shard ``c % num_shards``. The files do not depend on
  the number of shards, so a run may resume with a different process count.
  ``--num-shards/--shard-index`` default to ``WORLD_SIZE/RANK`` (else
  ``LOCAL_WORLD_SIZE/LOCAL_RANK``), which ``torchrun`` and ``accelerate launch``
  set for every process.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tqdm.auto import tqdm

from cc_tasks.files import atomic_write_text  # re-exported: older imports use it from here
from cc_tasks.pku import KEYWORDS, select_syn
from cc_tasks.seeding import stable_seed

from .backends.base import Backend, Turn
from .claims import claim, holder
from .responses import (
    FORMAT,
    RunError,
    chunk_path,
    ensure_manifest,
    missing_chunks,
    num_chunks,
    responses_dir,
)
from .truncate import Plan, TooFewPunctuation, plan_request


@dataclass
class Request:
    """One selected (request, harmful response) and its fixed random plan."""

    position: int  # 0-based place in the selection: fixes its chunk
    source_row: int  # 1-based row of the source
    request_id: str
    prompt: str
    harmful: str
    plan: Plan | None
    skipped: str | None = None


def request_id(source_row: int, prompt: str, harmful: str) -> str:
    """Readable and content-checked: the source row and 8 hex digits of the content hash."""
    digest = f"{stable_seed('c2-syn-request', prompt, harmful):016x}"
    return f"{source_row:06d}-{digest[:8]}"


def select_requests(
    rows: Iterable[Mapping[str, Any]],
    *,
    max_requests: int,
    min_words: int,
    seed: int | None = None,
    openers: str = "random",
) -> list[Request]:
    """method section 3 selection (:func:`cc_tasks.pku.select_syn`) plus each request's truncation plan."""
    out = []
    for position, (index, row, harmful) in enumerate(select_syn(rows, max_requests, min_words)):
        prompt = row["prompt"]
        try:
            plan, skipped = plan_request(prompt, harmful, seed, openers), None
        except TooFewPunctuation as err:
            plan, skipped = None, f"too few punctuation marks: {err}"
        out.append(
            Request(
                position=position,
                source_row=index + 1,
                request_id=request_id(index + 1, prompt, harmful),
                prompt=prompt,
                harmful=harmful,
                plan=plan,
                skipped=skipped,
            )
        )
    return out


def fingerprint(requests: Sequence[Request]) -> str:
    """SHA-256 of the selected (row, request, harmful response) triples."""
    h = hashlib.sha256()
    for r in requests:
        h.update(json.dumps([r.source_row, r.prompt, r.harmful], ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()


def shard_from_env(environ: Mapping[str, str] | None = None) -> tuple[int, int]:
    """``(num_shards, shard_index)`` from WORLD_SIZE/RANK, else LOCAL_WORLD_SIZE/LOCAL_RANK, else (1, 0)."""
    env = os.environ if environ is None else environ
    for size_key, rank_key in (("WORLD_SIZE", "RANK"), ("LOCAL_WORLD_SIZE", "LOCAL_RANK")):
        if env.get(size_key):
            return int(env[size_key]), int(env.get(rank_key, "0") or 0)
    return 1, 0


def build_manifest(
    *,
    source: str,
    requests: Sequence[Request],
    max_requests: int,
    min_words: int,
    seed: int | None,
    chunk_size: int,
    synthesizer: Mapping[str, Any],
    gate: Mapping[str, Any] | None,
    openers: str = "random",
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "source": source,
        "source_fingerprint": fingerprint(requests),
        "num_requests": len(requests),
        "selection": {"max_requests": max_requests, "min_words": min_words, "keywords": KEYWORDS},
        "seed": seed,
        "openers": openers,
        "chunk_size": chunk_size,
        "num_chunks": num_chunks(len(requests), chunk_size),
        "synthesizer": dict(synthesizer),
        "gate": dict(gate) if gate else None,
    }


# ---------------------------------------------------------------- generation


def make_record(request: Request, texts: Sequence[str], tokens: Sequence[int]) -> dict[str, Any]:
    """One request's output line: r0 (plain reply), r1..r4 (prefix + trigger + continuation), r5 (y)."""
    record = {
        "position": request.position,
        "request_id": request.request_id,
        "source_row": request.source_row,
        "prompt": request.prompt,
        "harmful_response": request.harmful,
        "skipped": request.skipped,
    }
    if request.plan is None:
        return record
    plan = request.plan
    prefixes = plan.assistant_texts()
    responses = [texts[0].strip()]
    responses += [(p + c).rstrip() for p, c in zip(prefixes, texts[1:], strict=True)]
    responses.append(plan.ranked_last(request.harmful))
    return {
        **record,
        "skipped": None,
        "punctuation_count": plan.punctuation_count,
        "drawn_step": plan.drawn_step,
        "step": plan.step,
        "prefix_lengths": plan.prefix_lengths,
        "openers": list(plan.openers),
        "triggers": list(plan.triggers),
        "assistant_prefixes": prefixes,
        "continuations": list(texts),
        "responses": responses,
        "generated_tokens": list(tokens),
        "gate": None,
    }


def turns_for(request: Request) -> list[Turn]:
    """r0: the plain request; r1..r4: the open assistant turns to continue."""
    assert request.plan is not None
    return [Turn(request.prompt, "")] + [
        Turn(request.prompt, prefix) for prefix in request.plan.assistant_texts()
    ]


def generate_records(
    backend: Backend,
    requests: Sequence[Request],
    judge: Any = None,
    on_progress: Callable[[int], None] | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """Records of ``requests`` and the tokens generated.

    The backend gets ``backend.requests_per_call`` requests at a time (all at
    once where it says None), and ``on_progress(n)`` is told after each call, so
    a progress bar moves per request rather than per chunk.
    """
    active = [r for r in requests if r.plan is not None]
    if on_progress is not None and len(active) < len(requests):
        on_progress(len(requests) - len(active))  # skipped requests need no generation
    step = backend.requests_per_call or len(active) or 1
    by_pos: dict[int, dict[str, Any]] = {}
    tokens = 0
    for start in range(0, len(active), step):
        group = active[start : start + step]
        turns = [t for r in group for t in turns_for(r)]
        gens = backend.generate(turns)
        if len(gens) != len(turns):
            raise RunError(f"backend returned {len(gens)} generations for {len(turns)} prompts")
        for i, r in enumerate(group):
            part = gens[i * 5 : (i + 1) * 5]
            by_pos[r.position] = make_record(r, [g.text for g in part], [g.tokens for g in part])
        tokens += sum(g.tokens for g in gens)
        if on_progress is not None:
            on_progress(len(group))
    records = [by_pos.get(r.position) or make_record(r, [], []) for r in requests]
    if judge is not None:
        from .gate import judge_records

        judge_records(judge, records)
    return records, tokens


@dataclass
class GenerateReport:
    """What one ``generate`` call did, for the summary."""

    num_requests: int
    num_chunks: int
    shard_index: int
    num_shards: int
    chunks_done_before: int = 0
    chunks_written: int = 0
    chunks_by_others: int = 0  # this shard's chunks another run on the folder generated meanwhile
    requests_generated: int = 0
    requests_skipped: int = 0
    generated_tokens: int = 0
    generation_seconds: float = 0.0
    load_seconds: float = 0.0
    complete: bool = False
    missing_chunks: list[int] = field(default_factory=list)

    @property
    def tokens_per_second(self) -> float:
        return self.generated_tokens / self.generation_seconds if self.generation_seconds else 0.0


def run_generate(
    out: str | os.PathLike,
    requests: Sequence[Request],
    manifest: Mapping[str, Any],
    make_backend: Callable[[], Backend],
    *,
    num_shards: int = 1,
    shard_index: int = 0,
    judge: Any = None,
    progress: bool = True,
    poll_seconds: float = 2.0,
    echo: Callable[[str], None] = print,
) -> GenerateReport:
    """Generate this shard's missing chunks; the backend is built only if there is work.

    Each chunk is claimed first (:mod:`synth.claims`): chunks another process on
    the same folder holds are skipped, then waited for (and taken over if that
    process dies), so concurrent runs split the work instead of repeating it.
    """
    if not 0 <= shard_index < num_shards:
        raise RunError(f"--shard-index {shard_index} is not in [0, {num_shards})")
    folder = responses_dir(out)
    folder.mkdir(parents=True, exist_ok=True)
    ensure_manifest(folder, manifest)
    size = int(manifest["chunk_size"])
    total = num_chunks(len(requests), size)
    mine = [c for c in range(total) if c % num_shards == shard_index]
    pending = [c for c in mine if not chunk_path(folder, c).is_file()]
    report = GenerateReport(len(requests), total, shard_index, num_shards)
    report.chunks_done_before = len(mine) - len(pending)

    def requests_of(c: int) -> Sequence[Request]:
        return requests[c * size : (c + 1) * size]

    backend = None
    bar = tqdm(
        total=sum(len(requests_of(c)) for c in mine),
        initial=sum(len(requests_of(c)) for c in mine if c not in pending),
        unit="req",
        desc=f"generate shard {shard_index + 1}/{num_shards}",
        disable=not progress,
        mininterval=0,  # one update per request (or per backend call): seconds apart
    )
    announced: set[int] = set()
    try:
        while pending:
            for c in list(pending):
                if chunk_path(folder, c).is_file():  # another run finished it
                    pending.remove(c)
                    report.chunks_by_others += 1
                    bar.update(len(requests_of(c)))
                    continue
                held = claim(chunk_path(folder, c))
                if held is None:
                    continue
                with held:
                    for tmp in folder.glob(f".{chunk_path(folder, c).name}.*.tmp"):
                        tmp.unlink(missing_ok=True)  # a killed writer's leftover: never trusted
                    if backend is None:
                        t0 = time.perf_counter()
                        backend = make_backend()
                        report.load_seconds = time.perf_counter() - t0
                    chunk = requests_of(c)
                    t0 = time.perf_counter()
                    records, tokens = generate_records(backend, chunk, judge, bar.update)
                    report.generation_seconds += time.perf_counter() - t0
                    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
                    atomic_write_text(chunk_path(folder, c), text)
                pending.remove(c)
                report.chunks_written += 1
                report.generated_tokens += tokens
                report.requests_generated += sum(r.plan is not None for r in chunk)
                report.requests_skipped += sum(r.plan is None for r in chunk)
            waiting = [c for c in pending if not chunk_path(folder, c).is_file()]
            if waiting:
                if not announced.issuperset(waiting):
                    announced.update(waiting)
                    bar.clear()
                    echo(
                        f"waiting for {len(waiting)} chunk(s) that another run on {folder} is "
                        f"generating (chunk {waiting[0]}: {holder(chunk_path(folder, waiting[0]))})"
                    )
                time.sleep(poll_seconds)
    finally:
        bar.close()
        if backend is not None:
            backend.close()
    report.missing_chunks = missing_chunks(folder, total)
    report.complete = not report.missing_chunks
    return report
