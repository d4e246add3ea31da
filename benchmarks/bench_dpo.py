"""DPO training speed: stock TRL DPOTrainer vs shared-response DPO, and the CPU recipe's time.

Part 1, side by side in ONE process, back to back, on the same C²-SYN pairs and settings
(the CPU recipe's: embedded SmolLM2-135M-Instruct, LoRA r16 on all linear layers, fp32,
max_length 512, lr 1e-4 cosine, 15 pairs per optimizer step, one epoch):

* ``stock``: TRL's ``DPOTrainer`` as is, 3 pairs per micro-batch x 5 accumulated (6 policy
  sequences per forward, plus a 6-sequence reference forward), ``precompute_ref_log_probs``
  off (TRL's default);
* ``shared``: :class:`cc_train.shared_dpo.SharedResponseDPOTrainer` as the recipe runs it
  (``group_by_request``): 1 request = 15 pairs per micro-batch (6 sequences), reference
  log-probs precomputed once per unique response.

Pairs per second = pairs trained / (reference precompute + ``trainer.train()`` seconds), wall
clock and CPU time (the process's CPU seconds: steadier than wall time when other jobs share
the cores). Model loading and tokenisation are timed apart (the same for both). Peak memory:
the kernel's peak resident set (``VmHWM``), reset before each side through
``/proc/self/clear_refs``, so each side gets its own peak inside one process; on a GPU
``torch.cuda.max_memory_allocated`` too.

Part 2, the CPU recipe as shipped, in a child process (``accelerate launch --config_file
recipes/accelerate_configs/cpu.yaml recipes/dpo.py recipes/smollm2-135m-instruct/dpo/config_cpu.yaml``):
its ``max_steps`` requests x 15 pairs, wall time of the whole command (start, model load,
reference precompute, training, save) against the goal of 200 pairs in <= 10 minutes on the 2-core CPU.
``--save-adapter DIR`` copies that run's adapter (+ tokenizer, card, the ids of the requests
trained on) to DIR, which must not exist yet.

Data: C²-SYN-shaped pairs made cheaply, without a synthesiser: requests of ``--source``
(PKU-SafeRLHF v0 rows; default the shared C²-EVAL file) selected and cut exactly as
``c2-syn`` does (method section 3: ``synth.generate.select_requests``, punctuation prefixes, openers,
triggers), r0 = a fixed refusal, r1..r4 = opener + harmful prefix + trigger + a fixed
corrective continuation (~60 words, in place of the synthesiser's up to 128 new tokens),
r5 = the harmful response; pairs by ``synth.pairs.request_pairs`` (15 per request). The
harmful text is read at run time and written only to a temporary folder.
"""

from __future__ import annotations

import ast
import contextlib
import gc
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as c

RECIPE = "recipes/smollm2-135m-instruct/dpo/config_cpu.yaml"
ACCELERATE_CONFIG = "recipes/accelerate_configs/cpu.yaml"
PAIRS_PER_REQUEST = 15
STOCK_MICRO_BATCHES = {3: 5, 5: 3, 15: 1}  # stock pairs per micro-batch -> accumulation (15)


def stock_overrides(micro_batch: int = 3, requests_per_step: int = 1) -> list[str]:
    """TRL's DPOTrainer as is; micro-batch x accumulation = 15 pairs per request per step
    (3 x 5 on the CPU, where the recipe's memory is the limit; 15 x 1 on a GPU)."""
    return [
        "--group_by_request", "false",
        "--precompute_ref_log_probs", "false",
        "--per_device_train_batch_size", str(micro_batch),
        "--gradient_accumulation_steps",
        str(STOCK_MICRO_BATCHES[micro_batch] * requests_per_step),
    ]  # fmt: skip


def shared_overrides(requests_per_step: int = 1, micro_batch: int | None = None) -> list[str]:
    """What the recipes set, explicit: whole requests, reference log-probs precomputed,
    ``requests_per_step`` requests per step in micro-batches of ``micro_batch`` requests
    (default: all in one micro-batch)."""
    micro = micro_batch or requests_per_step
    if requests_per_step % micro:
        raise SystemExit(f"--requests-per-step {requests_per_step} is no multiple of {micro}")
    return [
        "--group_by_request", "true",
        "--precompute_ref_log_probs", "true",
        "--per_device_train_batch_size", str(micro),
        "--gradient_accumulation_steps", str(requests_per_step // micro),
    ]  # fmt: skip


REFUSAL = (
    "I can't help with that. It could seriously hurt people, and I won't give instructions for "
    "it. If something difficult is going on, I'm happy to talk about safer ways to handle it."
)
CORRECTION = (
    " this could cause serious harm to other people and may well be illegal, so I will not "
    "continue with these instructions. If you are dealing with a difficult situation, please "
    "consider talking to someone you trust or to a professional, who can help you find a safe "
    "and lawful way forward. I'm glad to help with something else instead."
)


# ---------------------------------------------------------------- data


def make_pairs(source: str, requests: int) -> list[dict[str, Any]]:
    """``requests`` x 15 C²-SYN-shaped pair rows (see the module doc)."""
    from cc_tasks.pku import SYN_MIN_WORDS, load_rows
    from synth.generate import make_record, select_requests
    from synth.pairs import request_pairs, validate_pair_rows

    rows, _ = load_rows(source, split="train", need_unsafe=False, flag="--source")
    chosen = [
        r
        for r in select_requests(rows, max_requests=len(rows), min_words=SYN_MIN_WORDS)
        if r.plan is not None
    ][:requests]
    if len(chosen) < requests:
        sys.exit(
            f"error: {source}: only {len(chosen)} requests qualify for C²-SYN, {requests} asked"
        )
    pairs = []
    for request in chosen:
        record = make_record(request, [REFUSAL] + [CORRECTION] * 4, [0] * 5)
        pairs += request_pairs(record, synthesizer="canned", decoding="none", gate="unchecked")
    validate_pair_rows(pairs)
    return pairs


def stand_in_source(path: Path, rows: int) -> str:
    """Harmless PKU-SafeRLHF-shaped rows (for a machine without the C²-EVAL file, e.g. a
    lent GPU): how-to prompts and 90-180-word answers with a punctuation mark every 6-10 words,
    about the length of the real harmful responses, every choice seeded from the row number."""
    from cc_tasks.seeding import stable_rng

    vocabulary = (
        "fold the paper along the long edge then open it and press each corner into the middle "
        "line so the sides meet keep the creases sharp with a fingernail and turn the model over"
    )
    words = vocabulary.split(" ")
    with path.open("w", encoding="utf-8") as fh:
        for i in range(rows):
            rng = stable_rng("bench-dpo-stand-in", i)
            text, n = [], rng.randint(90, 180)
            while len(text) < n:
                text += [rng.choice(words) for _ in range(rng.randint(6, 10))]
                text[-1] += rng.choice(",.;:!")
            row = {
                "prompt": f"How do I fold paper boat number {i}?",
                "response_0": " ".join(text),
                "response_1": "Use a square sheet.",
                "is_response_0_safe": False,  # the shape C²-SYN selects; the text is harmless
                "is_response_1_safe": True,
                "better_response_id": 1,
                "safer_response_id": 1,
            }
            fh.write(json.dumps(row) + "\n")
    return str(path)


def write_pairs(pairs: list[dict[str, Any]], path: Path) -> Path:
    from synth.pairs import to_table, write_parquet

    write_parquet(path, to_table(pairs))
    return path


# ---------------------------------------------------------------- part 1: side by side


def load_recipe_parser() -> Any:
    """recipes/dpo.py's TrlParser (script args, DPOConfig, ModelConfig): the recipe's values."""
    spec = importlib.util.spec_from_file_location("c2_recipes_dpo", c.ROOT / "recipes" / "dpo.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.make_parser()


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter of this process (Linux >= 4.0); False if unable."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def rss_gib(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return round(int(line.split()[1]) / 2**20, 3)
    except OSError:
        pass
    return None


def release_memory() -> None:
    """Give freed heap back to the OS between sides, so each side's peak starts from the same
    floor (glibc keeps freed arenas otherwise)."""
    import ctypes

    gc.collect()
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def run_side(
    name: str,
    data: Path,
    model_path: str,
    requests: int,
    out: Path,
    extra: list[str],
    recipe: str = RECIPE,
    requests_per_step: int = 1,
) -> dict[str, Any]:
    """Build the trainer from the recipe (+ ``extra`` overrides) and train one epoch."""
    import torch
    from datasets import load_dataset
    from transformers import AutoTokenizer
    from trl import DPOTrainer, get_peft_config

    from cc_train.shared_dpo import SharedResponseDPOTrainer

    script, training, model_args = load_recipe_parser().parse_args_and_config(
        [
            "--config", recipe,
            "--output_dir", str(out / name),
            "--max_steps", str(-(-requests // requests_per_step)),
            "--report_to", "none",
            "--disable_tqdm", "true",
            "--save_strategy", "no",
            "--eval_strategy", "no",
            "--logging_steps", "1",
            *extra,
        ]
    )  # fmt: skip
    training.model_init_kwargs = {"dtype": model_args.dtype}
    train = load_dataset("parquet", data_files={"train": str(data)})["train"]
    train = train.select_columns(["prompt", "chosen", "rejected"])
    cls = SharedResponseDPOTrainer if script.group_by_request else DPOTrainer
    release_memory()
    rss_before = rss_gib("VmRSS")
    exact_peak = reset_peak_rss()
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    trainer = cls(
        model=model_path,
        args=training,
        train_dataset=train,
        processing_class=AutoTokenizer.from_pretrained(model_path),
        peft_config=get_peft_config(model_args),
    )
    init_wall, init_cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    precompute = getattr(trainer, "precompute_seconds", 0.0)
    precompute_cpu = getattr(trainer, "precompute_cpu_seconds", 0.0)
    wall1, cpu1 = time.perf_counter(), time.process_time()
    trainer.train()
    train_wall, train_cpu = time.perf_counter() - wall1, time.process_time() - cpu1
    pairs = requests * PAIRS_PER_REQUEST
    logs = [h for h in trainer.state.log_history if "loss" in h]
    side = {
        "side": name,
        "trainer": cls.__name__,
        "overrides": extra,
        "pairs": pairs,
        "optimizer_steps": trainer.state.global_step,
        "pairs_per_micro_batch": (
            f"{training.per_device_train_batch_size} request(s) = "
            f"{training.per_device_train_batch_size * PAIRS_PER_REQUEST}"
            if script.group_by_request
            else str(training.per_device_train_batch_size)
        ),
        "gradient_accumulation_steps": training.gradient_accumulation_steps,
        "precompute_ref_log_probs": training.precompute_ref_log_probs,
        "init_s": round(init_wall, 1),
        "init_cpu_s": round(init_cpu, 1),
        "precompute_s": round(precompute, 1),
        "train_s": round(train_wall, 1),
        "train_cpu_s": round(train_cpu + precompute_cpu, 1),
        "pairs_per_s": c.per_second(pairs, precompute + train_wall),
        "pairs_per_cpu_s": c.per_second(pairs, train_cpu + precompute_cpu),
        "peak_rss_gib": rss_gib("VmHWM") if exact_peak else None,
        "rss_before_gib": rss_before,
        "peak_cuda_gib": (
            round(torch.cuda.max_memory_allocated() / 2**30, 3)
            if torch.cuda.is_available()
            else None
        ),
        "losses": [round(float(h["loss"]), 4) for h in logs],
        "final_reward_accuracy": logs[-1].get("rewards/accuracies") if logs else None,
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }
    del trainer
    release_memory()
    return side


# ---------------------------------------------------------------- part 2: the recipe as shipped


def accelerate_cmd() -> list[str]:
    beside = Path(sys.executable).parent / "accelerate"
    return (
        [str(beside)] if beside.exists() else [sys.executable, "-m", "accelerate.commands.launch"]
    )


def run_recipe(
    data: Path, out: Path, env: dict[str, str], log: Path, extra: list[str]
) -> dict[str, Any]:
    """The CPU recipe exactly as recipes/README.md gives it; wall time of the whole command."""
    cmd = [
        *accelerate_cmd(), "launch", "--config_file", ACCELERATE_CONFIG, "recipes/dpo.py", RECIPE,
        "--dataset_name", str(data),
        "--output_dir", str(out),
        "--report_to", "none",
        "--disable_tqdm", "true",
        *extra,
    ]  # fmt: skip
    print(f"  recipe: {' '.join(cmd[1:])}", flush=True)
    start = time.perf_counter()
    logged: list[dict[str, Any]] = []
    threads_line = None
    with open(log, "w", encoding="utf-8") as fh:
        proc = subprocess.Popen(
            cmd, cwd=c.ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            fh.write(line)
            fh.flush()
            text = line.strip()
            if text.startswith("torch threads:"):
                threads_line = text
            if text.startswith("{") and text.endswith("}"):
                with contextlib.suppress(ValueError, SyntaxError):
                    logged.append(ast.literal_eval(text))
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        tail = log.read_text(encoding="utf-8")[-3000:]
        sys.exit(f"error: the recipe failed (exit {proc.returncode}); log {log}:\n{tail}")
    steps = [h for h in logged if "loss" in h]
    final = next((h for h in logged if "train_runtime" in h), {})
    return {
        "command": " ".join(cmd[1:]),
        "steps": len(steps),
        "pairs": len(steps) * PAIRS_PER_REQUEST,
        "wall_s": round(wall, 1),
        "train_runtime_s": float(final.get("train_runtime", "nan")),
        "peak_rss_gib": round(usage.ru_maxrss / 2**20, 2),
        "losses": [round(float(h["loss"]), 4) for h in steps],
        "reward_accuracies": [round(float(h["rewards/accuracies"]), 3) for h in steps],
        "threads": threads_line,
        "goal_200_pairs_in_600_s": len(steps) * PAIRS_PER_REQUEST >= 200 and wall <= 600,
    }


def recipe_requests(steps: int | None = None) -> int:
    """Requests for one epoch of ``steps`` (default: the recipe's ``max_steps``) + the requests
    the recipe holds out for evaluation (its ``test_size`` count)."""
    import yaml

    recipe = yaml.safe_load((c.ROOT / RECIPE).read_text(encoding="utf-8"))
    held = recipe.get("test_size") or 0
    return (steps or int(recipe["max_steps"])) + (int(held) if held >= 1 else 0)


def save_adapter(run_dir: Path, target: Path, pairs: list[dict[str, Any]], source: str) -> None:
    """Copy the recipe run's adapter + tokenizer + card to ``target`` (never over a folder)."""
    if target.exists():
        sys.exit(f"error: --save-adapter {target} already exists; choose a new folder")
    keep = [p for p in run_dir.iterdir() if p.is_file()]
    target.mkdir(parents=True)
    for path in keep:
        shutil.copy2(path, target / path.name)
    card = target / "README.md"  # its C²-EVAL command names the temporary run folder
    if card.is_file():
        text = card.read_text(encoding="utf-8")
        card.write_text(text.replace(str(run_dir), str(target.resolve())), encoding="utf-8")
    trained = sorted({row["request_id"] for row in pairs})
    (target / "training_requests.json").write_text(
        json.dumps({"source": source, "request_ids": trained}, indent=1) + "\n", encoding="utf-8"
    )


# ---------------------------------------------------------------- main


def main() -> int:
    parser = c.base_parser(__doc__.splitlines()[0])
    c.add_data_arg(parser, "--source")
    parser.add_argument(
        "--requests", type=int, default=4, help="part 1: requests per side (x 15 pairs; default 4)"
    )
    parser.add_argument(
        "--recipe-requests",
        type=int,
        default=None,
        help="part 2: requests in the recipe's data (default: max_steps + the held-out "
        "test_size requests: one epoch)",
    )
    parser.add_argument("--skip-sides", action="store_true", help="part 2 only")
    parser.add_argument("--skip-recipe", action="store_true", help="part 1 only")
    parser.add_argument("--save-adapter", metavar="DIR", help="keep part 2's adapter in DIR")
    parser.add_argument(
        "--model", help="part 1: model folder (default: the embedded SmolLM2-135M-Instruct)"
    )
    parser.add_argument(
        "--recipe", default=RECIPE, help="part 1: the recipe whose settings both sides use"
    )
    parser.add_argument(
        "--stock-micro-batch",
        type=int,
        choices=sorted(STOCK_MICRO_BATCHES),
        default=3,
        help="part 1: stock pairs per micro-batch (x accumulation = 15 per step; default 3)",
    )
    parser.add_argument(
        "--requests-per-step",
        type=int,
        default=1,
        help="part 1: requests (x 15 pairs) per optimizer step on both sides; shared puts them "
        "in one micro-batch, stock accumulates its micro-batches (default 1)",
    )
    parser.add_argument(
        "--shared-micro-batch",
        type=int,
        default=None,
        help="part 1: shared side's requests per micro-batch (accumulation = "
        "--requests-per-step / this; default: the whole step in one micro-batch)",
    )
    parser.add_argument(
        "--stand-in-text",
        action="store_true",
        help="harmless rows of the real responses' length instead of --source (stand_in_source)",
    )
    parser.add_argument(
        "--set",
        nargs=2,
        action="append",
        default=[],
        metavar=("KEY", "VALUE"),
        help="part 1: a recipe value for both sides (e.g. --set gradient_checkpointing false)",
    )
    parser.set_defaults(threads=1)
    args = parser.parse_args()
    settings = [x for key, value in args.set for x in (f"--{key}", value)]
    work = Path(tempfile.mkdtemp(prefix="bench-dpo-"))
    if args.stand_in_text:
        args.source = stand_in_source(work / "stand-in.jsonl", 4 * args.requests + 8)
    source = c.require_data(args.source, "--source")
    if args.quick:
        args.requests = 1
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    c.set_threads(args.threads)
    from cc_tasks.embedded import embedded_model_path

    model_path = args.model or embedded_model_path()
    info = c.machine()
    c.header("DPO: stock TRL DPOTrainer vs shared-response DPO; the CPU recipe's time", info)
    record: dict[str, Any] = {
        "benchmark": "dpo",
        "machine": info,
        "source": "stand-in text (bench_dpo.stand_in_source)" if args.stand_in_text else source,
        "model": model_path,
        "recipe": args.recipe,
    }
    try:
        if not args.skip_sides:
            pairs = make_pairs(source, args.requests)
            data = write_pairs(pairs, work / "sides.parquet")
            print(
                f"  part 1: {args.requests} requests = {len(pairs)} pairs, one epoch per side "
                "(the model is loaded once, untimed, first)",
                flush=True,
            )
            c.warm_up(model_path, "trl", "peft", "cc_train.shared_dpo")
            per_step = args.requests_per_step
            stock_extra = stock_overrides(args.stock_micro_batch, per_step) + settings
            sides = [
                run_side(
                    "stock",
                    data,
                    model_path,
                    args.requests,
                    work,
                    stock_extra,
                    args.recipe,
                    per_step,
                ),
                run_side(
                    "shared",
                    data,
                    model_path,
                    args.requests,
                    work,
                    shared_overrides(per_step, args.shared_micro_batch) + settings,
                    args.recipe,
                    per_step,
                ),
            ]
            stock, shared = sides
            ratio = c.ratio(
                stock["precompute_s"] + stock["train_s"], shared["precompute_s"] + shared["train_s"]
            )
            cpu_ratio = c.ratio(stock["train_cpu_s"], shared["train_cpu_s"])
            print()
            columns = ["side", "pairs", "precompute_s", "train_s", "train_cpu_s", "pairs_per_s"]
            columns += ["pairs_per_cpu_s", "peak_rss_gib", "loadavg_1m"]
            print(c.table(columns, [[s[k] for k in columns] for s in sides]))
            goal = "met" if ratio and ratio >= 5 else "NOT met"
            print(
                f"\nshared / stock pairs per second: {ratio}x wall, {cpu_ratio}x CPU time "
                f"(goal >= 5x: {goal})",
                flush=True,
            )
            record.update(sides=sides, speedup_wall=ratio, speedup_cpu=cpu_ratio)
        if not args.skip_recipe:
            requests = args.recipe_requests or recipe_requests(1 if args.quick else None)
            pairs = make_pairs(source, requests)
            data = write_pairs(pairs, work / "recipe.parquet")
            env = {
                **os.environ,
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
                "PYTHONUNBUFFERED": "1",
                "HF_HUB_OFFLINE": "1",
                "HF_DATASETS_OFFLINE": "1",
            }
            extra = ["--max_steps", "1"] if args.quick else []
            print(
                f"\n  part 2: the CPU recipe as shipped on {requests} requests = {len(pairs)} "
                f"pairs {' '.join(extra)}",
                flush=True,
            )
            run_dir = work / "recipe-out"
            recipe = run_recipe(data, run_dir, env, work / "recipe.log", extra)
            print(
                f"\nCPU recipe: {recipe['pairs']} pairs ({recipe['steps']} steps) in "
                f"{recipe['wall_s']} s wall for the whole command (train_runtime "
                f"{recipe['train_runtime_s']} s), peak RSS {recipe['peak_rss_gib']} GiB; "
                f"{recipe['threads']}; goal 200 pairs in <= 600 s: "
                f"{'met' if recipe['goal_200_pairs_in_600_s'] else 'NOT met'}",
                flush=True,
            )
            record["recipe"] = recipe
            if args.save_adapter:
                save_adapter(run_dir, Path(args.save_adapter), pairs, source)
                print(f"saved the adapter to {args.save_adapter}", flush=True)
                record["saved_adapter"] = args.save_adapter
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return c.finish(args, info, record)


if __name__ == "__main__":
    raise SystemExit(main())
