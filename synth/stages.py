"""The ``c2-syn`` stages, run from parsed options: generate, pairs, card, push, and all of them.

Kept apart from :mod:`synth.cli` (which declares the options and dispatches) so the work each
subcommand does, and the lines it prints, can be read and called (benchmarks, tests) without
the option declarations. Every cheap check (options, judge, rows) runs before any model loads.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from cc_tasks.embedded import HUB_ID as EMBEDDED_HUB_ID
from cc_tasks.errors import RunFailure, UsageError
from cc_tasks.judges.settings import invalid_policy, judge_from_args
from cc_tasks.pku import DataError, load_rows

from .backends import Backend, Decoding, backend_class, make_backend
from .gate import Gate
from .generate import (
    GenerateReport,
    build_manifest,
    run_generate,
    select_requests,
    shard_from_env,
)
from .hub import PushError, push, write_hub_folder
from .pairs import build_pairs, read_pairs, write_pairs
from .responses import RunError, read_manifest, read_records, responses_dir, wait_for_chunks

SOURCE_ENV = "C2_SYN_SOURCE"
EMBEDDED_NAME = EMBEDDED_HUB_ID  # shown as "<hub id> (embedded)" in the card and columns


def _decoding(args: argparse.Namespace) -> Decoding:
    mode = args.decoding or backend_class(args.backend).default_decoding
    try:
        return Decoding(
            mode=mode,
            max_new_tokens=args.max_new_tokens,
            num_beams=args.num_beams,
            num_beam_groups=args.num_beam_groups,
            diversity_penalty=args.diversity_penalty,
            temperature=args.temperature,
            top_p=args.top_p,
            seed=args.seed or 0,
        )
    except ValueError as err:
        raise UsageError(str(err)) from None


def _synthesizer(args: argparse.Namespace, decoding: Decoding) -> tuple[str, dict[str, Any]]:
    """The model to load, and how it is named in the manifest (identity) and the card."""
    if args.model:
        model = args.model
        shown = Path(model).name if Path(model).exists() else model
    else:
        from cc_tasks.embedded import embedded_model_path

        model, shown = embedded_model_path(), f"{EMBEDDED_NAME} (embedded)"
    info = {
        "name": args.synthesizer_name or shown,
        "backend": args.backend,
        "model": shown,
        "decoding": decoding.label(),
        "system_prompt": args.system_prompt or None,
    }
    return model, info


def _judge(args: argparse.Namespace) -> Gate | None:
    """The quality gate: off unless ``--judge`` names a judge (never from the environment)."""
    if not args.judge:
        return None
    conveniences = {"progress": False} if args.no_progress else None
    return Gate(
        judge_from_args(args, defaults=conveniences),
        invalid_policy(args),
        allow_errors=bool(args.allow_judge_errors),
    )


def _shards(args: argparse.Namespace) -> tuple[int, int]:
    env_n, env_i = shard_from_env()
    n = args.num_shards if args.num_shards is not None else env_n
    i = args.shard_index if args.shard_index is not None else env_i
    if n < 1 or not 0 <= i < n:
        raise UsageError(f"--shard-index {i} must be in [0, --num-shards {n})")
    return n, i


def stage_generate(args: argparse.Namespace) -> tuple[GenerateReport, int]:
    """Validate everything cheap first (options, judge, rows), then generate this shard."""
    if args.max_requests < 1 or args.chunk_size < 1:
        raise UsageError("--max-requests and --chunk-size must be >= 1")
    decoding = _decoding(args)
    num_shards, shard_index = _shards(args)
    judge = _judge(args)
    rows, label = load_rows(
        args.source, split="train", need_unsafe=False, env_var=SOURCE_ENV, flag="--source"
    )
    requests = select_requests(
        rows,
        max_requests=args.max_requests,
        min_words=args.min_words,
        seed=args.seed,
        openers=args.openers,
    )
    if not requests:
        raise DataError(
            f"{label}: no row qualifies (a prompt with how/what and an unsafe response of more "
            f"than {args.min_words} words)"
        )
    model, info = _synthesizer(args, decoding)
    manifest = build_manifest(
        source=label,
        requests=requests,
        max_requests=args.max_requests,
        min_words=args.min_words,
        seed=args.seed,
        chunk_size=args.chunk_size,
        synthesizer=info,
        gate=judge.describe() if judge is not None else None,
        openers=args.openers,
    )
    backend = backend_class(args.backend)
    manifest["software"] = backend.software()  # informative, not part of the identity
    options = backend.from_args(args)

    def factory() -> Backend:
        return make_backend(args.backend, model, decoding, **options)

    report = run_generate(
        args.out,
        requests,
        manifest,
        factory,
        num_shards=num_shards,
        shard_index=shard_index,
        judge=judge,
        progress=not args.no_progress,
    )
    done = report.num_chunks - len(report.missing_chunks)
    print(
        f"generate: shard {shard_index + 1}/{num_shards}: {report.chunks_written} chunk(s) written, "
        f"{report.chunks_done_before} already there"
        + (f", {report.chunks_by_others} by another run" if report.chunks_by_others else "")
        + f"; all shards: {done}/{report.num_chunks} chunks in {responses_dir(args.out)}",
        flush=True,
    )
    return report, len(requests)


def stage_pairs(args: argparse.Namespace) -> dict[str, Any]:
    manifest, records = read_records(args.out)
    splits, stats = build_pairs(
        manifest, records, test_size=args.test_size, gate_action=args.gate_action
    )
    folder = write_pairs(args.out, splits, stats)
    by = stats["pairs_by_split"]
    print(
        f"pairs: {stats['requests_kept']} requests -> {sum(by.values())} pairs "
        f"(train {by['train']}, test {by['test']}) in {folder}",
        flush=True,
    )
    return stats


def stage_card(args: argparse.Namespace) -> dict[str, list[str]]:
    tables, stats = read_pairs(args.out)
    if not sum(t.num_rows for t in tables.values()):
        raise RunError("no pairs to publish (every request was skipped or dropped)")
    manifest = read_manifest(responses_dir(args.out))
    files = write_hub_folder(
        args.out,
        tables,
        manifest,
        stats,
        rows_per_file=args.rows_per_file,
        repo_id=getattr(args, "repo_id", None) or getattr(args, "push_to", None),
    )
    shown = ", ".join(f for fs in files.values() for f in fs)
    print(f"card: {args.out}/README.md and {shown}", flush=True)
    return files


def no_pairs_message(stats: dict[str, Any], out: str) -> str:
    """Why a run kept no request, and what to do, in one line (the run's exit-1 message)."""
    parts = []
    if skipped := stats["requests_skipped_few_punctuation"]:
        parts.append(f"{skipped} skipped (fewer than 4 punctuation marks in the harmful response)")
    if invalid := sum(stats["requests_dropped_invalid"].values()):
        why = ", ".join(stats["requests_dropped_invalid"])
        parts.append(f"{invalid} dropped as invalid ({why})")
    if gated := stats["requests_dropped_by_gate"]:
        parts.append(f"{gated} failed the quality gate")
    if gated:
        todo = (
            f"keep them, marked gate = failed, with `c2-syn pairs --out {out} --gate-action flag` "
            f"and `c2-syn card --out {out}`, or generate into another --out with a synthesiser "
            "that refuses (--model)"
        )
    elif invalid:
        todo = "generate into another --out with more --max-new-tokens or --decoding sample"
    else:
        todo = "generate into another --out with more --max-requests or another --source"
    return (
        f"no pairs to publish: of {stats['requests_selected']} requests, {'; '.join(parts)}; "
        f"the responses stay in {responses_dir(out)}: {todo}"
    )


def stage_push(args: argparse.Namespace, repo_id: str, dry_run: bool = False) -> None:
    push(
        args.out,
        repo_id,
        private=args.private,
        dry_run=dry_run,
        commit_message=getattr(args, "commit_message", None),
    )


def print_summary(
    report: GenerateReport, stats: dict[str, Any] | None, seconds: float, out: str
) -> None:
    lines = ["", "C²-SYN summary"]
    lines.append(
        f"  requests:  {report.num_requests} selected; generated now {report.requests_generated}, "
        f"skipped (few punctuation) {report.requests_skipped} "
        f"({report.chunks_done_before} chunk(s) resumed from disk)"
    )
    if stats:
        dropped = (
            sum(stats["requests_dropped_invalid"].values()) + stats["requests_dropped_by_gate"]
        )
        by = stats["pairs_by_split"]
        lines.append(f"  kept:      {stats['requests_kept']} requests ({dropped} dropped)")
        lines.append(f"  responses: {stats['responses']} (6 per kept request)")
        lines.append(f"  pairs:     {sum(by.values())} (train {by['train']}, test {by['test']})")
        if stats.get("gate"):
            g = stats["gate"]
            lines.append(
                f"  gate:      r0 refusal {100 * g['r0_refusal_rate']:.1f}%, "
                f"pass {100 * g['pass_rate']:.1f}% ({stats['gate_action']})"
            )
    lines.append(
        f"  time:      {seconds:.1f} s (model load {report.load_seconds:.1f} s, "
        f"generation {report.generation_seconds:.1f} s)"
    )
    lines.append(
        f"  tokens:    {report.generated_tokens} generated, {report.tokens_per_second:.1f} tokens/s"
    )
    lines.append(f"  output:    {out}")
    print("\n".join(lines), flush=True)


def cmd_run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    if args.push_to:  # fail fast on the repo id and the token, before hours of generation
        from huggingface_hub import get_token
        from huggingface_hub.utils import HFValidationError, validate_repo_id

        try:
            validate_repo_id(args.push_to)
        except HFValidationError as err:
            raise UsageError(f"--push-to {args.push_to!r}: {err}") from None
        if not get_token():
            raise PushError(
                "--push-to needs a Hugging Face token: set HF_TOKEN or run `hf auth login`"
            )
    report, _ = stage_generate(args)
    num_shards, shard_index = _shards(args)
    if num_shards > 1:
        if shard_index != 0:
            print(
                f"run: shard {shard_index + 1}/{num_shards} done; rank 0 makes pairs and the card"
            )
            return 0
        wait_for_chunks(args.out, report.num_chunks, timeout=args.wait_timeout)
    stats = stage_pairs(args)
    if not sum(stats["pairs_by_split"].values()):  # generation ran: exit 1, never the card's 2
        raise RunFailure(no_pairs_message(stats, args.out))
    stage_card(args)
    if args.push_to:
        stage_push(args, args.push_to)
    print_summary(report, stats, time.perf_counter() - start, args.out)
    return 0
