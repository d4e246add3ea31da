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

from cc_tasks.errors import CCError, cli_exit
from cc_tasks.judges.settings import add_judge_flags
from cc_tasks.pku import SYN_MAX_REQUESTS, SYN_MIN_WORDS

from .backends import DECODING_MODES, Backend, Decoding, backend_classes
from .hub import ROWS_PER_FILE
from .pairs import GATE_ACTIONS
from .stages import (
    cmd_run,
    print_summary,
    stage_card,
    stage_generate,
    stage_pairs,
    stage_push,
)
from .truncate import OPENER_MODES

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
