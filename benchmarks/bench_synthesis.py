"""C²-SYN synthesis speed: ``c2-syn generate`` vs a reference-style loop, same requests, same decoding.

Both sides synthesise r0..r4 (5 generations per request) for the same ``--requests`` requests
(method section 3 selection of ``--source`` by ``cc_tasks.pku.select_syn``; the same prefixes, openers and
triggers from ``synth.generate.select_requests``) with the embedded SmolLM2 and the reference's
decoding: diverse beam search, 2 beams in 2 groups, diversity penalty 0.5, no sampling, up to
``--max-new-tokens`` (128) new tokens. transformers 5 dropped built-in group beam search, so
both sides decode with ``synth.backends.diverse_beam.diverse_beam_search`` through
``model.generate(custom_generate=...)``; the decoding configuration is the hf backend's own.

* ``ours``: ``c2-syn generate`` through its Python entry (``synth.cli`` parser +
  ``synth.stages.stage_generate``), into a temporary ``--out``: selection, manifest, the
  backend called with ``--batch-size`` (8) requests at a time (5 batches of ``--batch-size``
  prompts, sorted by length within the call, so progress moves per call), chunk files written
  atomically.
* ``reference-style``: the same prompts in request order (r0, r1..r4 of request 1, then of
  request 2, ...), batches of 8, one after the other, no sorting.

Wall time of each side includes loading the model. Diverse beam search is deterministic, so
the sides should produce the same text except where a different batch composition (padding)
changes floating-point sums; the script reports how many of the continuations are identical.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import _common as c


def run_ours(
    source: str, requests: int, max_new: int, batch_size: int, device: str, out: str
) -> dict[str, Any]:
    """``c2-syn generate`` in process; returns its report and the continuations (request order)."""
    import json
    from pathlib import Path

    from synth import cli, stages

    args = cli.build_parser().parse_args(
        [
            "generate",
            "--out",
            out,
            "--source",
            source,
            "--max-requests",
            str(requests),
            "--max-new-tokens",
            str(max_new),
            "--batch-size",
            str(batch_size),
            "--device",
            device,
            "--no-progress",
        ]
    )
    report, _ = stages.stage_generate(args)
    conts: list[str] = []
    for chunk in sorted((Path(out) / "responses").glob("chunk-*.jsonl")):
        for line in chunk.read_text(encoding="utf-8").splitlines():
            conts.extend(json.loads(line).get("continuations") or [])
    return {
        "continuations": conts,
        "generated_tokens": report.generated_tokens,
        "generation_seconds": report.generation_seconds,
        "load_seconds": report.load_seconds,
        "requests_generated": report.requests_generated,
        "requests_skipped": report.requests_skipped,
    }


def run_reference(
    source: str, requests: int, max_new: int, batch_size: int, device: str
) -> dict[str, Any]:
    """Same prompts, request order, batches of ``batch_size``, sequential, no length sorting."""
    import torch
    from tqdm.auto import tqdm

    from cc_tasks.embedded import embedded_model_path
    from cc_tasks.pku import SYN_MIN_WORDS, load_rows
    from synth.backends.base import Decoding, adds_bos, render
    from synth.backends.diverse_beam import diverse_beam_search
    from synth.backends.hf import HFBackend
    from synth.generate import select_requests, turns_for

    with c.Stopwatch() as load:
        # the hf backend only to load the model and build the identical GenerationConfig
        backend = HFBackend(embedded_model_path(), Decoding(max_new_tokens=max_new), device=device)
    model, tokenizer, config = backend.model, backend.tokenizer, backend.generation_config()
    rows, _ = load_rows(source, split="train", need_unsafe=False)
    selected = select_requests(rows, max_requests=requests, min_words=SYN_MIN_WORDS)
    turns = [t for r in selected if r.plan is not None for t in turns_for(r)]
    texts = [render(tokenizer, t, None) for t in turns]
    conts, tokens = [], 0
    gen_seconds = 0.0
    bar = tqdm(total=len(texts), desc="reference-style diverse beam")
    for start in range(0, len(texts), batch_size):
        batch = texts[start : start + batch_size]
        enc = tokenizer(
            batch,
            return_tensors="pt",
            padding=True,
            add_special_tokens=adds_bos(tokenizer, batch[0]),
        ).to(device)
        with c.Stopwatch() as sw, torch.inference_mode():
            out = model.generate(
                **enc, generation_config=config, custom_generate=diverse_beam_search
            )
        gen_seconds += sw.seconds
        width = enc["input_ids"].shape[1]
        for prompt_ids, ids in zip(enc["input_ids"].tolist(), out[:, width:].tolist(), strict=True):
            n = next((i for i, t in enumerate(ids) if t in backend._eos), len(ids))
            tokens += n
            conts.append(backend._decode_after(prompt_ids, ids[:n]))
        bar.update(len(batch))
    bar.close()
    return {
        "continuations": conts,
        "generated_tokens": tokens,
        "generation_seconds": gen_seconds,
        "load_seconds": load.seconds,
    }


def main() -> int:
    parser = c.base_parser(__doc__.splitlines()[0])
    c.add_data_arg(parser, "--source")
    parser.add_argument("--requests", type=int, default=20, help="requests per side (20)")
    parser.add_argument("--max-new-tokens", type=int, default=128, help="paper: 128")
    parser.add_argument("--batch-size", type=int, default=8, help="both sides (reference: 8)")
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    args = parser.parse_args()
    if args.quick:
        args.requests, args.max_new_tokens = min(args.requests, 2), min(args.max_new_tokens, 8)
    source = c.require_data(args.source, "--source")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch

    from cc_tasks.embedded import embedded_model_path

    c.set_threads(args.threads)
    device = args.device or ("cuda:0" if torch.cuda.is_available() else "cpu")
    c.warm_up(
        embedded_model_path(), "synth.cli", "synth.backends.hf", "synth.backends.diverse_beam"
    )
    info = c.machine()
    c.header(
        f"synthesis: {args.requests} requests x 5 generations, diverse beam (2 beams, 2 groups), "
        f"<= {args.max_new_tokens} new tokens, batch {args.batch_size}, SmolLM2-135M on {device}",
        info,
    )
    sides: list[dict[str, Any]] = []

    def record(name: str, seconds: float, result: dict[str, Any], load: float) -> None:
        n = len(result["continuations"])
        sides.append(
            {
                "side": name,
                "seconds": round(seconds, 2),
                "load_seconds": round(result["load_seconds"], 2),
                "generation_seconds": round(result["generation_seconds"], 2),
                "generations": n,
                "generated_tokens": result["generated_tokens"],
                "tokens_per_s": c.per_second(result["generated_tokens"], seconds),
                "requests_per_s": c.per_second(n / 5, seconds),
                "loadavg_1min_before": load,
            }
        )
        print(f"  {name}: {seconds:.1f} s, {n} generations", flush=True)

    with tempfile.TemporaryDirectory(prefix="bench-syn-") as tmp:
        load = round(os.getloadavg()[0], 2)
        with c.Stopwatch() as sw:
            ours = run_ours(
                source, args.requests, args.max_new_tokens, args.batch_size, device, tmp
            )
        record(f"ours (c2-syn generate, batch {args.batch_size})", sw.seconds, ours, load)
    load = round(os.getloadavg()[0], 2)
    with c.Stopwatch() as sw:
        ref = run_reference(source, args.requests, args.max_new_tokens, args.batch_size, device)
    record(f"reference-style (request order, batch {args.batch_size})", sw.seconds, ref, load)

    assert len(ours["continuations"]) == len(ref["continuations"]) > 0, sides
    identical = sum(
        a == b for a, b in zip(ours["continuations"], ref["continuations"], strict=True)
    )
    c.add_speedups(sides)
    print()
    print(
        c.table(
            ["side", "wall s", "load s", "requests/s", "tokens", "tokens/s", "wall ratio"],
            [
                [
                    s["side"],
                    s["seconds"],
                    s["load_seconds"],
                    s["requests_per_s"],
                    s["generated_tokens"],
                    s["tokens_per_s"],
                    f"{s['speedup_wall']}x",
                ]
                for s in sides
            ],
        )
    )
    n = len(ref["continuations"])
    print(f"\nidentical continuations on both sides: {identical}/{n}")
    return c.finish(
        args,
        info,
        {
            "benchmark": "synthesis",
            "requests": args.requests,
            "generations": n,
            "max_new_tokens": args.max_new_tokens,
            "batch_size": args.batch_size,
            "decoding": "diverse-beam(num_beams=2,num_beam_groups=2,diversity_penalty=0.5)",
            "device": device,
            "sides": sides,
            "ratio_wall": sides[0]["speedup_wall"],
            "ratio_tokens_per_s": sides[0]["speedup_tokens_per_s"],
            "identical_continuations": identical,
        },
    )


if __name__ == "__main__":
    raise SystemExit(main())
