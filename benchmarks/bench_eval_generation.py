"""C²-EVAL generation speed: our lm-eval task vs a reference-style ``generate`` loop, same prompts.

Both sides generate the same prefilled continuations (first ``--rows`` rows of the data file
x k = 10..80; default 25 x 8 = 200) with the embedded SmolLM2 and the paper's sampling
(temperature 0.8, top-p 0.7, at most 32 new tokens), in this one process:

* ``ours``: lm-eval's own machinery, in process, as ``c2-eval`` runs it
  (``HFLM`` + ``lm_eval.simple_evaluate``, tasks ``c2_eval`` from ``cc_tasks.TASK_DIR``,
  ``apply_chat_template``, ``limit=rows``, rule judge), at each ``--batch-size``. lm-eval sends
  all 200 requests to the model at once, sorted by prompt length.
* ``reference-style``: ``model.generate`` on batches of ``--ref-batch-size`` (10) prompts, in
  request order, one k at a time, as the reference script does, with the prompts built by our
  own code (``build_prefill`` + ``render_open_assistant``, so the open assistant turn ends with
  the prefill; the reference's generation-prompt bug is not reproduced: only speed is compared).

The script checks that both sides rendered exactly the same prompt texts. Each side's wall time
includes loading the model (about a second; reported for the reference side). Sampling lets each
continuation stop early at the end-of-turn token, so the sides do not generate the same number
of tokens: compare tokens/s (continuation tokens, counted by re-tokenising each side's decoded
text the same way) as well as generations/s.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import _common as c

KS = (10, 20, 30, 40, 50, 60, 70, 80)
TEMPERATURE, TOP_P = 0.8, 0.7
SEED = 1234  # lm-eval's default torch seed; the reference side uses the same


def token_count(tokenizer: Any, texts: Sequence[str]) -> int:
    return sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)


def run_ours(
    model_path: str, data: str, rows: int, batch_size: int, max_new: int, device: str
) -> tuple[list[str], list[str], str]:
    """lm-eval run of the c2_eval group; returns (prompts, continuations, model dtype)."""
    results, lm = c.run_c2_eval(
        model_path,
        data,
        rows,
        batch_size=batch_size,
        device=device,
        gen_kwargs={"max_gen_toks": max_new} if max_new != 32 else None,
        torch_random_seed=SEED,
    )
    prompts, continuations = [], []
    for k in KS:
        for sample in results["samples"][f"c2_eval_k{k}"]:
            for (context, _gen_kwargs), resps in zip(
                sample["arguments"], sample["resps"], strict=True
            ):
                prompts.append(context)
                continuations.extend(resps)
    return prompts, continuations, str(lm.model.dtype)


def run_reference(
    model_path: str, data: str, rows: int, batch_size: int, max_new: int, device: str
) -> dict[str, Any]:
    """The reference's loop: k by k, rows in order, batches of ``batch_size``, HF generate."""
    import torch
    from tqdm.auto import tqdm
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from cc_tasks.pku import harmful_response, load_rows
    from cc_tasks.prefill import build_prefill, render_open_assistant

    with c.Stopwatch() as load:
        tokenizer = AutoTokenizer.from_pretrained(model_path)
        tokenizer.padding_side = "left"
        model = AutoModelForCausalLM.from_pretrained(model_path).to(device).eval()
    data_rows, _ = load_rows(data, split="test", need_unsafe=True)
    data_rows = data_rows[:rows]
    torch.manual_seed(SEED)
    eos = model.generation_config.eos_token_id
    eos_ids = set(eos if isinstance(eos, list) else [eos])
    prompts, continuations, exact_tokens, steps = [], [], 0, 0
    bar = tqdm(total=len(KS) * len(data_rows), desc="reference-style generate")
    for k in KS:
        texts = []
        for row in data_rows:
            _, prefill = build_prefill(row["prompt"], harmful_response(row) or "", k)
            texts.append(render_open_assistant(tokenizer, row["prompt"], prefill))
        prompts.extend(texts)
        for start in range(0, len(texts), batch_size):
            batch = texts[start : start + batch_size]
            enc = tokenizer(batch, return_tensors="pt", padding=True, add_special_tokens=False)
            enc = enc.to(device)
            with torch.inference_mode():
                out = model.generate(
                    **enc,
                    do_sample=True,
                    temperature=TEMPERATURE,
                    top_p=TOP_P,
                    max_new_tokens=max_new,
                    pad_token_id=tokenizer.pad_token_id,
                )
            new = out[:, enc["input_ids"].shape[1] :].tolist()
            steps += len(new[0])
            for ids in new:
                n = next((i for i, t in enumerate(ids) if t in eos_ids), len(ids))
                exact_tokens += n
                continuations.append(tokenizer.decode(ids[:n], skip_special_tokens=True))
            bar.update(len(batch))
    bar.close()
    return {
        "prompts": prompts,
        "continuations": continuations,
        "load_seconds": load.seconds,
        "generated_tokens_exact": exact_tokens,
        "decode_steps": steps,
        "dtype": str(model.dtype),
    }


def main() -> int:
    parser = c.base_parser(__doc__.splitlines()[0])
    c.add_data_arg(parser)
    parser.add_argument("--rows", type=int, default=25, help="rows per k (default 25: 200 gens)")
    parser.add_argument(
        "--batch-size",
        default="16,10",
        help="our lm-eval batch size(s), comma-separated (default 16 = the README command, "
        "and 10 = the reference's)",
    )
    parser.add_argument("--ref-batch-size", type=int, default=10, help="reference batch (10)")
    parser.add_argument("--max-new-tokens", type=int, default=32, help="paper: 32")
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.max_new_tokens, args.batch_size = min(args.rows, 2), 8, "4"
        args.ref_batch_size = min(args.ref_batch_size, 2)
    data = c.require_data(args.data)
    sizes = [int(x) for x in str(args.batch_size).split(",") if x.strip()]
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch
    from transformers import AutoTokenizer

    from cc_tasks.embedded import embedded_model_path

    c.set_threads(args.threads)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model_path = embedded_model_path()
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    c.warm_up(
        model_path, "lm_eval.evaluator", "lm_eval.models.huggingface", "cc_tasks.c2_eval.utils"
    )
    n = args.rows * len(KS)
    info = c.machine()
    c.header(
        f"eval generation: {args.rows} rows x {len(KS)} k = {n} generations, "
        f"<= {args.max_new_tokens} new tokens, SmolLM2-135M on {device}",
        info,
    )

    sides: list[dict[str, Any]] = []

    def record(name: str, batch: int, seconds: float, conts: list[str], load: float) -> None:
        tokens = token_count(tokenizer, conts)
        sides.append(
            {
                "side": name,
                "batch_size": batch,
                "seconds": round(seconds, 2),
                "generations": len(conts),
                "generations_per_s": c.per_second(len(conts), seconds),
                "continuation_tokens": tokens,
                "tokens_per_s": c.per_second(tokens, seconds),
                "loadavg_1min_before": load,
            }
        )
        print(f"  {name}: {seconds:.1f} s, {len(conts)} generations, {tokens} tokens", flush=True)

    ours_prompts = None
    for size in sizes:
        load = round(os.getloadavg()[0], 2)
        with c.Stopwatch() as sw:
            prompts, conts, ours_dtype = run_ours(
                model_path, data, args.rows, size, args.max_new_tokens, device
            )
        ours_prompts = prompts
        record(f"ours (lm-eval, batch {size})", size, sw.seconds, conts, load)

    load = round(os.getloadavg()[0], 2)
    with c.Stopwatch() as sw:
        ref = run_reference(
            model_path, data, args.rows, args.ref_batch_size, args.max_new_tokens, device
        )
    record(
        f"reference-style (generate, batch {args.ref_batch_size})",
        args.ref_batch_size,
        sw.seconds,
        ref["continuations"],
        load,
    )
    sides[-1].update(
        load_seconds=round(ref["load_seconds"], 2),
        generated_tokens_exact=ref["generated_tokens_exact"],
        decode_steps=ref["decode_steps"],
    )

    same_prompts = sorted(ours_prompts or []) == sorted(ref["prompts"])
    assert same_prompts, "the two sides rendered different prompts"
    assert ours_dtype == ref["dtype"], (ours_dtype, ref["dtype"])
    assert all(s["generations"] == n for s in sides), sides

    c.add_speedups(sides)
    print()
    print(
        c.table(
            ["side", "wall s", "gens/s", "tokens", "tokens/s", "wall ratio", "tokens/s ratio"],
            [
                [
                    s["side"],
                    s["seconds"],
                    s["generations_per_s"],
                    s["continuation_tokens"],
                    s["tokens_per_s"],
                    f"{s['speedup_wall']}x",
                    f"{s['speedup_tokens_per_s']}x",
                ]
                for s in sides
            ],
        )
    )
    print(
        f"\nsame {n} prompt texts on both sides: {same_prompts}; dtype {ours_dtype}; ratios are "
        "reference / ours for time and ours / reference for tokens/s (> 1 = ours faster)."
    )
    return c.finish(
        args,
        info,
        {
            "benchmark": "eval_generation",
            "generations": n,
            "rows": args.rows,
            "ks": list(KS),
            "max_new_tokens": args.max_new_tokens,
            "temperature": TEMPERATURE,
            "top_p": TOP_P,
            "device": device,
            "dtype": ours_dtype,
            "sides": sides,
            "ratio_wall": sides[0]["speedup_wall"],
            "ratio_tokens_per_s": sides[0]["speedup_tokens_per_s"],
        },
    )


if __name__ == "__main__":
    raise SystemExit(main())
