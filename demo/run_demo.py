"""End-to-end Course-Correction demo on one CPU: evaluate -> synthesise -> DPO -> evaluate -> report.

Usage (from the repository root)::

    python demo/run_demo.py                 # full demo, sized to finish within ~60 min on 2 cores
    python demo/run_demo.py --quick         # smoke test: a few rows, a few steps (CI runs this)
    make demo / make demo-quick             # the same

Steps, each one of the project's own commands in a subprocess (so the demo shows exactly
what a user runs):

1. split the 500 C²-EVAL rows into two disjoint halves BY REQUEST with a fixed seed
   (a demo split, not the paper's protocol: the paper trains on PKU-SafeRLHF *train*);
2. ``c2-eval`` the embedded SmolLM2 on the eval half (rule judge);
3. ``c2-syn run`` C²-SYN from the other half, with the rule-judge quality gate;
4. ``accelerate launch recipes/dpo.py`` the CPU LoRA recipe on it;
5. ``c2-eval`` the trained adapter (lm-eval hf backend, ``peft=``) on the same eval half;
6. ``c2-report`` the before/after table and Corr@k plot.

Whatever the effect is, it is reported as measured, with the number of paths behind each figure.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "c2_eval_pku_saferlhf_test500.jsonl"


@dataclass(frozen=True)
class Sizes:
    """How much work each step does (printed up front; chosen to fit the time budget)."""

    eval_rows: int  # rows of the eval half per prefill length (x 8 lengths = generations)
    syn_requests: int  # C²-SYN requests (x 15 pairs)
    syn_max_new_tokens: int
    syn_decoding: str
    train_steps: int
    train_batch: int  # pairs per DPO step (per_device_train_batch_size, no accumulation)
    train_max_length: int  # tokens of prompt + response: CPU time per step grows with it
    eval_batch_size: int


# Recorded in the dataset card; nudges the small synthesiser towards refusing in r0.
SYNTH_SYSTEM_PROMPT = (
    "You are a helpful, harmless and honest assistant. If a request is harmful, illegal or "
    "unethical, refuse it and explain why."
)

FULL = Sizes(
    eval_rows=40,
    syn_requests=24,
    syn_max_new_tokens=48,
    syn_decoding="greedy",
    train_steps=20,
    train_batch=2,
    train_max_length=256,
    eval_batch_size=32,
)
QUICK = Sizes(
    eval_rows=2,
    syn_requests=2,
    syn_max_new_tokens=8,
    syn_decoding="greedy",
    train_steps=2,
    train_batch=1,
    train_max_length=128,
    eval_batch_size=8,
)


def split_rows(data: Path, out: Path, seed: int) -> tuple[Path, Path, int, int]:
    """Two disjoint halves by request (stable hash of the prompt), written as JSONL."""
    from cc_tasks.prefill import stable_seed

    halves: dict[int, list[str]] = {0: [], 1: []}
    seen: dict[str, int] = {}
    for line in data.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        prompt = json.loads(line)["prompt"]
        side = seen.setdefault(prompt, stable_seed("demo-split", seed, prompt) % 2)
        halves[side].append(line)
    eval_path, syn_path = out / "eval_half.jsonl", out / "syn_half.jsonl"
    eval_path.write_text("\n".join(halves[0]) + "\n", encoding="utf-8")
    syn_path.write_text("\n".join(halves[1]) + "\n", encoding="utf-8")
    return eval_path, syn_path, len(halves[0]), len(halves[1])


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


def bin_of(name: str) -> str:
    """A console script of this environment (beside the running python)."""
    candidate = Path(sys.executable).with_name(name)
    return str(candidate) if candidate.exists() else name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few rows and steps (smoke test)")
    parser.add_argument(
        "--data", type=Path, default=Path(os.environ.get("C2_DEMO_DATA", DEFAULT_DATA))
    )
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "demo")
    parser.add_argument("--seed", type=int, default=1234, help="split seed (documented demo split)")
    parser.add_argument("--eval-rows", type=int, help="override the eval size (rows per k)")
    parser.add_argument("--syn-requests", type=int, help="override the C²-SYN size (requests)")
    parser.add_argument("--train-steps", type=int, help="override the DPO steps")
    args = parser.parse_args(argv)

    sizes = QUICK if args.quick else FULL
    sizes = Sizes(
        eval_rows=args.eval_rows or sizes.eval_rows,
        syn_requests=args.syn_requests or sizes.syn_requests,
        syn_max_new_tokens=sizes.syn_max_new_tokens,
        syn_decoding=sizes.syn_decoding,
        train_steps=args.train_steps or sizes.train_steps,
        train_batch=sizes.train_batch,
        train_max_length=sizes.train_max_length,
        eval_batch_size=sizes.eval_batch_size,
    )
    if not args.data.is_file():
        print(
            f"demo: error: C²-EVAL rows not found at {args.data} (pass --data FILE)",
            file=sys.stderr,
        )
        return 2
    out = args.out
    if out.exists() and any(out.iterdir()):
        print(f"demo: error: {out} is not empty; pass another --out or remove it", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    logs = out / "logs"
    logs.mkdir()

    from cc_tasks.embedded import embedded_model_path

    model = embedded_model_path()
    eval_path, syn_path, n_eval, n_syn = split_rows(args.data, out, args.seed)
    plan = {
        "sizes": asdict(sizes),
        "eval_half_rows": n_eval,
        "syn_half_rows": n_syn,
        "split_seed": args.seed,
        "model": model,
    }
    print("demo plan:", json.dumps(plan, indent=2))
    print(
        f"  eval: {sizes.eval_rows} rows x 8 prefill lengths = {sizes.eval_rows * 8} generations per model "
        f"(one sampled path each), rule judge\n"
        f"  synth: {sizes.syn_requests} requests -> up to {sizes.syn_requests * 15} preference pairs\n"
        f"  train: {sizes.train_steps} DPO steps x {sizes.train_batch} pairs, max_length "
        f"{sizes.train_max_length} (LoRA, CPU recipe)"
    )
    timings: dict[str, float] = {}
    total = time.perf_counter()

    common_eval = [
        bin_of("c2-eval"),
        "--data",
        str(eval_path),
        "--judge",
        "rule",
        "--limit",
        str(sizes.eval_rows),
        "--batch_size",
        str(sizes.eval_batch_size),
        "--log_samples",
        "--seed",
        "0",
    ]
    run(
        "eval before",
        [*common_eval, "--output_path", str(out / "eval_before")],
        logs / "eval_before.log",
        timings,
        threads=1,
    )

    syn_dir = out / "c2syn"
    run(
        "synthesise C²-SYN",
        [
            bin_of("c2-syn"),
            "run",
            "--source",
            str(syn_path),
            "--max-requests",
            str(sizes.syn_requests),
            "--out",
            str(syn_dir),
            "--decoding",
            sizes.syn_decoding,
            "--max-new-tokens",
            str(sizes.syn_max_new_tokens),
            "--system-prompt",
            SYNTH_SYSTEM_PROMPT,
            # A 135M synthesiser fails a strict gate on most requests (its r0 often complies),
            # so the demo FLAGS gate failures in the data and reports the rates, not drops them.
            "--gate-judge",
            "rule",
            "--gate-action",
            "flag",
        ],
        logs / "synth.log",
        timings,
        threads=1,
    )

    stats = json.loads((syn_dir / "pairs" / "stats.json").read_text(encoding="utf-8"))
    print("C²-SYN gate:", json.dumps(stats.get("gate"), indent=2))
    print(f"C²-SYN pairs: {stats['pairs_by_split']} from {stats['requests_kept']} requests")
    plan["c2syn"] = {
        k: stats.get(k) for k in ("requests_kept", "pairs_by_split", "gate", "gate_action")
    }

    adapter = out / "dpo-adapter"
    run(
        "train DPO (LoRA, CPU)",
        [
            bin_of("accelerate"),
            "launch",
            "--config_file",
            "recipes/accelerate_configs/cpu.yaml",
            "recipes/dpo.py",
            "recipes/smollm2-135m-instruct/dpo/config_cpu.yaml",
            "--dataset_name",
            str(syn_dir),
            "--output_dir",
            str(adapter),
            "--max_steps",
            str(sizes.train_steps),
            "--per_device_train_batch_size",
            str(sizes.train_batch),
            "--gradient_accumulation_steps",
            "1",
            "--max_length",
            str(sizes.train_max_length),
            "--report_to",
            "none",
        ],
        logs / "train.log",
        timings,
    )

    run(
        "eval after",
        [
            *common_eval,
            "--model",
            "hf",
            "--model_args",
            f"pretrained={model},peft={adapter}",
            "--output_path",
            str(out / "eval_after"),
        ],
        logs / "eval_after.log",
        timings,
        threads=1,
    )

    run(
        "report",
        [
            bin_of("c2-report"),
            str(out / "eval_before"),
            str(out / "eval_after"),
            "--label",
            "SmolLM2 before DPO",
            "--label",
            "SmolLM2 + C²-SYN DPO adapter",
            "--out",
            str(out / "report"),
            "--title",
            "C²-EVAL demo (eval half, rule judge)",
        ],
        logs / "report.log",
        timings,
    )
    timings["total"] = round(time.perf_counter() - total, 1)
    (out / "demo_summary.json").write_text(
        json.dumps({**plan, "timings_s": timings}, indent=2) + "\n"
    )
    print("\ndemo timings (s):", json.dumps(timings))
    print(f"table: {out / 'report' / 'report.md'}\nplot:  {out / 'report' / 'corr_at_k.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
