"""DPO training cost of the CPU recipe: seconds per optimizer step and peak memory (RSS).

Runs the CPU recipe exactly as recipes/README.md gives it, in a child process::

    accelerate launch --config_file recipes/accelerate_configs/cpu.yaml recipes/dpo.py \\
        recipes/smollm2-135m-instruct/dpo/config_cpu.yaml --dataset_name <C²-SYN folder> \\
        --max_steps N --output_dir <tmp>

twice on the same data: as shipped, and with ONE setting changed (``--baseline``):

* ``gradient-checkpointing`` (default): ``--gradient_checkpointing true``, the setting of the 7B
  recipes, which the CPU recipe turns off (it trades CPU time for memory);
* ``full``: ``--use_peft false``, full fine-tuning instead of LoRA (DPOTrainer then keeps a
  second, frozen copy of the model as the reference policy).

Seconds per step come from the trainer's own per-step log lines (``logging_steps: 1``):
the median gap between consecutive steps (so the first step's warm-up is left out), and
``train_runtime / steps``. Peak RSS is the kernel's ``ru_maxrss`` of the launched process tree
(``os.wait4``: the largest resident set of accelerate and the training process it waits for).

The C²-SYN folder comes from ``--dataset`` or is made first by ``c2-syn run`` on the embedded
SmolLM2 (greedy, few tokens: only the pairs' shape matters here; its time is not counted).
"""

from __future__ import annotations

import ast
import itertools
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as c

RECIPE = "recipes/smollm2-135m-instruct/dpo/config_cpu.yaml"
ACCELERATE_CONFIG = "recipes/accelerate_configs/cpu.yaml"
BASELINES = {
    "gradient-checkpointing": ["--gradient_checkpointing", "true"],
    "full": ["--use_peft", "false"],
}


def accelerate_cmd() -> list[str]:
    """``accelerate`` of this interpreter's environment (not whatever is first on PATH)."""
    beside = Path(sys.executable).parent / "accelerate"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("accelerate")
    return [found] if found else [sys.executable, "-m", "accelerate.commands.launch"]


def child_env(threads: int | None) -> dict[str, str]:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONUNBUFFERED": "1",  # per-step log lines arrive when they are printed
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
    }
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def make_dataset(source: str, out: Path, requests: int, max_new: int, env: dict[str, str]) -> None:
    cmd = [
        sys.executable,
        "-m",
        "synth.cli",
        "run",
        "--source",
        source,
        "--max-requests",
        str(requests),
        "--max-new-tokens",
        str(max_new),
        "--decoding",
        "greedy",
        "--out",
        str(out),
        "--no-progress",
    ]
    print(f"  making a C²-SYN folder: {' '.join(cmd[2:])}", flush=True)
    done = subprocess.run(cmd, cwd=c.ROOT, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"error: c2-syn run failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")


def _logged(line: str) -> dict[str, Any] | None:
    """The dict of a trainer log line (``{'loss': '0.69', ...}``), else None."""
    line = line.strip()
    if not (line.startswith("{") and line.endswith("}")):
        return None
    try:
        value = ast.literal_eval(line)
    except (ValueError, SyntaxError):
        return None
    return value if isinstance(value, dict) else None


def run_recipe(name: str, extra: list[str], env: dict[str, str], log: Path) -> dict[str, Any]:
    """One training run; returns wall time, per-step times, trainer metrics and peak RSS."""
    cmd = [
        *accelerate_cmd(),
        "launch",
        "--config_file",
        ACCELERATE_CONFIG,
        "recipes/dpo.py",
        RECIPE,
        "--disable_tqdm",
        "true",  # one plain log line per step (the step clock below reads them)
        "--report_to",
        "none",
        *extra,
    ]
    print(f"  {name}: {' '.join(cmd[1:])}", flush=True)
    step_times: list[float] = []
    final: dict[str, Any] = {}
    losses: list[float] = []
    start = time.perf_counter()
    with open(log, "w", encoding="utf-8") as fh:
        proc = subprocess.Popen(
            cmd,
            cwd=c.ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            fh.write(line)
            fh.flush()  # the log can be followed while a long run is in progress
            logged = _logged(line)
            if logged is None:
                continue
            if "loss" in logged:
                step_times.append(time.perf_counter())
                losses.append(float(logged["loss"]))
            if "train_runtime" in logged:
                final = logged
        _, status, usage = os.wait4(proc.pid, 0)  # rusage of the child and what it waited for
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        tail = log.read_text(encoding="utf-8")[-3000:]
        sys.exit(f"error: {name} failed (exit {proc.returncode}); log {log}:\n{tail}")
    steps = len(step_times)
    gaps = [b - a for a, b in itertools.pairwise(step_times)]
    runtime = float(final.get("train_runtime", "nan"))
    return {
        "side": name,
        "args": extra,
        "steps": steps,
        "seconds_per_step_median": round(statistics.median(gaps), 2) if gaps else None,
        "seconds_per_step_runtime": round(runtime / steps, 2) if steps else None,
        "train_runtime_s": runtime,
        "process_wall_s": round(wall, 1),
        "peak_rss_gib": round(usage.ru_maxrss / 2**20, 2),  # Linux: kilobytes
        "losses": losses,
    }


def main() -> int:
    parser = c.base_parser(__doc__.splitlines()[0])
    c.add_data_arg(parser, "--source")
    parser.add_argument(
        "--dataset", help="an existing C²-SYN folder (default: make one with c2-syn run)"
    )
    parser.add_argument("--syn-requests", type=int, default=4, help="requests of the made folder")
    parser.add_argument("--syn-max-new-tokens", type=int, default=32)
    parser.add_argument("--max-steps", type=int, default=8, help="per side (the recipe's 8)")
    parser.add_argument("--baseline", choices=sorted(BASELINES), default="gradient-checkpointing")
    args = parser.parse_args()
    extra: list[str] = []
    if args.quick:  # one pair per step, two steps: checks the plumbing in about a minute per side
        args.max_steps, args.syn_requests, args.syn_max_new_tokens = 2, 2, 8
        extra = ["--per_device_train_batch_size", "1", "--gradient_accumulation_steps", "1"]
    env = child_env(args.threads)
    info = c.machine()
    info["torch_threads_child"] = env.get("OMP_NUM_THREADS") or "torch default"
    with tempfile.TemporaryDirectory(prefix="bench-dpo-") as tmp_name:
        tmp = Path(tmp_name)
        if args.dataset:
            dataset = args.dataset
        else:
            c.require_data(args.source, "--source")
            dataset = str(tmp / "c2-syn")
            make_dataset(
                args.source, Path(dataset), args.syn_requests, args.syn_max_new_tokens, env
            )
        from synth.dataset import load_c2syn

        pairs = load_c2syn(dataset)["train"].num_rows  # a folder's own rows, never a cached one
        pairs_per_step = 1 if args.quick else 4
        c.header(
            f"DPO CPU recipe: {args.max_steps} steps x {pairs_per_step} pairs per side, "
            f"{pairs} pairs in {dataset}; baseline: {args.baseline}",
            info,
        )
        sides = []
        for name, change in (
            ("recipe (LoRA, no gradient checkpointing)", []),
            (
                f"baseline: {args.baseline}",
                BASELINES[args.baseline],
            ),
        ):
            out = tmp / f"out-{len(sides)}"
            common = ["--dataset_name", dataset, "--max_steps", str(args.max_steps)]
            sides.append(
                run_recipe(
                    name,
                    [*common, "--output_dir", str(out), *extra, *change],
                    env,
                    tmp / f"log-{len(sides)}.txt",
                )
                | {"loadavg_1min_after": round(os.getloadavg()[0], 2)}
            )
    ours, base = sides
    key = (
        "seconds_per_step_median" if ours["seconds_per_step_median"] else "seconds_per_step_runtime"
    )
    time_ratio = c.ratio(base[key], ours[key])
    mem_ratio = round(base["peak_rss_gib"] / ours["peak_rss_gib"], 3)
    print()
    print(
        c.table(
            ["side", "s/step (median)", "s/step (runtime/steps)", "peak RSS GiB", "process s"],
            [
                [
                    s["side"],
                    s["seconds_per_step_median"],
                    s["seconds_per_step_runtime"],
                    s["peak_rss_gib"],
                    s["process_wall_s"],
                ]
                for s in sides
            ],
        )
    )
    print(
        f"\nrecipe vs baseline ({args.baseline}): {time_ratio}x the speed per step, "
        f"baseline uses {mem_ratio}x the recipe's peak memory"
    )
    c.emit(
        {
            "benchmark": "dpo",
            "recipe": RECIPE,
            "accelerate_config": ACCELERATE_CONFIG,
            "baseline": args.baseline,
            "max_steps": args.max_steps,
            "pairs_per_step": pairs_per_step,
            "dataset_pairs": pairs,
            "dataset": args.dataset
            or f"c2-syn run --max-requests {args.syn_requests} "
            f"--max-new-tokens {args.syn_max_new_tokens} --decoding greedy",
            "sides": sides,
            "ratio_speed_per_step": time_ratio,
            "ratio_peak_rss_baseline_over_recipe": mem_ratio,
            "machine": info,
            "quick": args.quick,
        },
        args.json,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
