"""``c2-syn``: build C²-SYN (method section 3) stage by stage, or all at once.

    c2-syn generate --out DIR [--source FILE] ...   rows -> 6 ranked responses (resumable, sharded)
    c2-syn pairs    --out DIR [--test-size 0.01]    -> 15 preference pairs per request
    c2-syn card     --out DIR [--repo-id ORG/NAME]  -> data/*.parquet + README.md (Hub layout)
    c2-syn push     --out DIR --repo-id ORG/NAME [--private] [--dry-run]
    c2-syn run      --out DIR ...                   generate + pairs + card (+ push with --push-to)

Bad input fails with one line that names the file, row and field before any
model is loaded.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cc_tasks.embedded import HUB_ID as EMBEDDED_HUB_ID
from cc_tasks.errors import CCError, RunFailure, UsageError, cli_exit
from cc_tasks.judges.settings import add_judge_flags, invalid_policy, judge_from_args
from cc_tasks.pku import SYN_MAX_REQUESTS, SYN_MIN_WORDS, DataError, load_rows

from .backends import (
    DECODING_MODES,
    Backend,
    Decoding,
    backend_class,
    backend_classes,
    make_backend,
)
from .gate import Gate
from .generate import (
    GenerateReport,
    RunError,
    build_manifest,
    read_manifest,
    read_records,
    responses_dir,
    run_generate,
    select_requests,
    shard_from_env,
    wait_for_chunks,
)
from .hub import ROWS_PER_FILE, PushError, push, write_hub_folder
from .pairs import GATE_ACTIONS, build_pairs, read_pairs, write_pairs
from .truncate import OPENER_MODES

SOURCE_ENV = "C2_SYN_SOURCE"
EMBEDDED_NAME = EMBEDDED_HUB_ID  # shown as "<hub id> (embedded)" in the card and columns


# ------------------------------------------------------------------ options


def _add_generate_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("source and selection")
    g.add_argument(
        "--source",
        help="local PKU-SafeRLHF v0 file (jsonl/json/parquet); default $C2_SYN_SOURCE, else the "
        "Hub dataset PKU-Alignment/PKU-SafeRLHF@v0, train split",
    )
    g.add_argument(
        "--max-requests",
        type=int,
        default=SYN_MAX_REQUESTS,
        help="take the first N qualifying rows of the source (default: %(default)s, the paper's)",
    )
    g.add_argument(
        "--min-words",
        type=int,
        default=SYN_MIN_WORDS,
        help="a row qualifies when its unsafe response has more words than this "
        "(default: %(default)s)",
    )
    g.add_argument(
        "--seed",
        type=int,
        default=None,
        help="mixed into every random choice: prefix steps, openers, triggers, split "
        "(default: none, the reference's choices)",
    )
    g.add_argument(
        "--openers",
        choices=OPENER_MODES,
        default="random",
        help="random: r1..r4 each start with a random affirmative opener and r5 = y has none "
        "(method section 3.3, the reference); shared: one random opener per request for r1..r4 and r5, so "
        "the ranked responses share each prefix and differ where the correction starts; none: "
        "no opener (synth/README.md) (default: %(default)s)",
    )
    backends = backend_classes()
    s = p.add_argument_group("synthesiser")
    s.add_argument(
        "--backend",
        choices=tuple(backends),
        default="hf",
        help=f"what generates r0..r4: {_or_list([c.summary or k for k, c in backends.items()])} "
        "(default: %(default)s)",
    )
    s.add_argument(
        "--model", help="HF folder or Hub id (default: the embedded SmolLM2-135M-Instruct)"
    )
    s.add_argument(
        "--synthesizer-name",
        help="name in the card and the `synthesizer` column (default: the model's name)",
    )
    s.add_argument(
        "--system-prompt",
        default=None,
        help="system message for the synthesiser (default: none, as in the reference)",
    )
    s.add_argument(
        "--decoding", choices=DECODING_MODES, help=f"default: {_default_decodings(backends)}"
    )
    s.add_argument(
        "--max-new-tokens",
        type=int,
        default=128,
        help="new tokens per continuation (default: %(default)s, the paper's)",
    )
    s.add_argument(
        "--num-beams",
        type=int,
        default=2,
        help="beams for diverse-beam/beam decoding (default: %(default)s)",
    )
    s.add_argument(
        "--num-beam-groups",
        type=int,
        default=2,
        help="beam groups for diverse-beam decoding (default: %(default)s)",
    )
    s.add_argument(
        "--diversity-penalty",
        type=float,
        default=0.5,
        help="diverse-beam penalty between groups (default: %(default)s)",
    )
    s.add_argument(
        "--temperature",
        type=float,
        default=0.8,
        help="sample decoding only (default: %(default)s)",
    )
    s.add_argument(
        "--top-p", type=float, default=0.95, help="sample decoding only (default: %(default)s)"
    )
    s.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="allow model code from the Hub repo (default: off)",
    )
    for kind, cls in backends.items():  # each backend declares its own flags
        cls.add_arguments(p.add_argument_group(cls.options_title or f"{kind} backend"))
    r = p.add_argument_group("sharding and resuming")
    r.add_argument(
        "--chunk-size",
        type=int,
        default=64,
        help="requests per output file, the unit of resuming and of sharing work between runs "
        "(default: %(default)s)",
    )
    r.add_argument("--num-shards", type=int, default=None, help="default $WORLD_SIZE, else 1")
    r.add_argument("--shard-index", type=int, default=None, help="default $RANK, else 0")
    r.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar (default: a bar per request with an ETA, on stderr)",
    )
    # the judge flags every tool shares (cc_tasks.judges.settings); --judge turns the gate on
    add_judge_flags(
        p.add_argument_group("quality gate (optional; on with --judge)"),
        aliases={"--gate-judge": "--judge", "--gate-judge-options": "--judge-options"},
        help_text={
            "--judge": "judge kind of the quality gate, e.g. rule, openai, hf (default: no gate)"
        },
    )


def _or_list(items: Sequence[str]) -> str:
    """``a``, ``a or b``, ``a, b, or c``."""
    if len(items) < 3:
        return " or ".join(items)
    return ", ".join(items[:-1]) + ", or " + items[-1]


def _default_decodings(backends: dict[str, type[Backend]]) -> str:
    """Each backend's default decoding, e.g. "diverse-beam for hf (the reference's), greedy for
    vllm/openai"."""
    kinds: dict[str, list[str]] = {}
    for kind, cls in backends.items():
        kinds.setdefault(cls.default_decoding, []).append(kind)
    return ", ".join(
        f"{mode} for {'/'.join(names)}" + (" (the reference's)" if mode == Decoding.mode else "")
        for mode, names in kinds.items()
    )


def _add_pairs_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--test-size",
        type=float,
        default=0.0,
        help="share of requests held out as a test split, by a stable hash of the request text "
        "(default: %(default)s, none)",
    )
    p.add_argument(
        "--gate-action",
        choices=GATE_ACTIONS,
        default="drop",
        help="what to do with requests that failed the quality gate: drop them, or keep them "
        'with gate = "failed" (default: %(default)s)',
    )


def _add_card_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--rows-per-file",
        type=int,
        default=ROWS_PER_FILE,
        help="pairs per parquet file in data/ (default: %(default)s)",
    )
    p.add_argument(
        "--repo-id",
        help="Hub repo shown in the card's loading snippet (default: the local-folder snippet)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="c2-syn",
        description="Build C²-SYN: synthetic course-correction preference pairs (arXiv 2407.16637).",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.add_argument("--out", required=True, help="output folder (the Hub folder)")
        return p

    _add_generate_options(add("generate", "ranked responses r0..r5, resumable and sharded"))
    _add_pairs_options(add("pairs", "all 15 preference pairs per request (merges all shards)"))
    _add_card_options(add("card", "data/*.parquet and the README.md dataset card"))
    push_p = add("push", "upload README.md and data/ to a Hub dataset repo")
    push_p.add_argument("--repo-id", required=True, help="the dataset repo, ORG/NAME (required)")
    push_p.add_argument(
        "--private", action="store_true", help="create the repo private (default: public)"
    )
    push_p.add_argument("--dry-run", action="store_true", help="list the files, upload nothing")
    push_p.add_argument(
        "--commit-message", help="default: 'C²-SYN: <n> data files and the dataset card'"
    )
    run_p = add("run", "generate + pairs + card (+ push with --push-to)")
    _add_generate_options(run_p)
    _add_pairs_options(run_p)
    _add_card_options(run_p)
    run_p.add_argument("--push-to", metavar="ORG/NAME", help="push to this Hub repo at the end")
    run_p.add_argument(
        "--private", action="store_true", help="with --push-to: a private repo (default: public)"
    )
    run_p.add_argument(
        "--wait-timeout",
        type=float,
        default=None,
        help="multi-process run: seconds rank 0 waits for the other shards (default: no limit)",
    )
    return parser


# ------------------------------------------------------------------ stages


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


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "generate":
            start = time.perf_counter()
            report, _ = stage_generate(args)
            print_summary(report, None, time.perf_counter() - start, args.out)
            if not report.complete:
                print(
                    f"note: {len(report.missing_chunks)} chunk(s) belong to other shards and are "
                    "not done yet; run `c2-syn pairs` when all shards have finished",
                    flush=True,
                )
        elif args.command == "pairs":
            stage_pairs(args)
        elif args.command == "card":
            stage_card(args)
        elif args.command == "push":
            stage_push(args, args.repo_id, dry_run=args.dry_run)
        else:
            return cmd_run(args)
    except (CCError, OSError) as err:  # one line; exit 2 bad input, 1 failed run (cc_tasks.errors)
        return cli_exit("c2-syn", err)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
