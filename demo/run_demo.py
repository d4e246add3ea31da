"""End-to-end Course-Correction demo on one CPU: evaluate -> synthesise -> DPO -> evaluate -> report.

Usage (from the repository root)::

    python demo/run_demo.py                 # full demo, sized for <= 60 min on a quiet 2-core CPU
    python demo/run_demo.py --quick         # smoke test: a few rows, a few steps (CI runs this)
    make demo / make demo-quick             # the same

Steps, each one of the project's own commands in a subprocess (so the demo shows exactly
what a user runs):

1. split the 500 C²-EVAL rows into two disjoint halves BY REQUEST with a fixed seed
   (a demo split, not the paper's protocol: the paper trains on PKU-SafeRLHF *train*);
2. ``c2-eval`` the embedded SmolLM2 on the eval half, judged by the validated offline
   ``probe`` judge (samples kept: ``--log_samples``);
3. ``c2-syn run`` C²-SYN from the other half (greedy, with a safety system prompt, one opener
   per request: ``--openers shared``), gated by the same judge (failing requests are flagged);
4. ``accelerate launch recipes/dpo.py`` the CPU LoRA recipe with shared-response DPO
   (``group_by_request``: whole requests, 15 pairs from 6 forwards) plus the correction term
   (``correction_sft_weight``: the NLL of each chosen response after the beginning it shares
   with the rejected one, i.e. the trigger and the correction);
5. ``c2-eval`` the trained adapter (``peft=``) on the same rows, seed and paths;
6. ``c2-judge rejudge`` both sample sets with the ``rule`` judge (a second line, no generation);
7. the base model's and the adapter's plain answers to a few harmless requests (greedy);
8. ``c2-report`` the table, the Corr@k plot and the sample viewer (``--html``);
9. the paired before/after difference of Corr_mean with a bootstrap over rows
   (demo/compare.py) and the share of degenerate continuations;
10. the blind items for a reader (demo/blind_items.py; experiments/blind_reading/): both
   evaluations' continuations shuffled together, to check the judge's effect by reading.

Whatever the effect is, it is reported as measured, with the number of paths behind each figure.
Choices of steps 3 and 4 were measured (experiments/demo-notes.md, experiments/synth_choices.py).
The demo's helpers (compare.py, plain_answers.py, blind_items.py) sit beside this file and are
imported the way a script imports its siblings: Python puts the script's folder first on the path.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "c2_eval_pku_saferlhf_test500.jsonl"


@dataclass(frozen=True)
class Sizes:
    """How much work each step does (printed up front; chosen to fit the time budget)."""

    eval_rows: int  # rows of the eval half per prefill length (x 8 lengths = generations)
    syn_requests: int  # C²-SYN requests (x 15 pairs before the gate)
    syn_max_new_tokens: int
    syn_decoding: str
    syn_openers: str  # c2-syn --openers: random (method section 3.3), shared or none
    train_epochs: float  # passes over the kept requests (one is held out for eval_loss) ...
    train_max_steps: (
        int  # ... but at most this many steps (bounds the time whatever the gate keeps)
    )
    train_learning_rate: float
    train_correction_sft_weight: float  # recipes/dpo.py --correction_sft_weight (0 = DPO alone)
    train_batch: int  # requests (15 pairs each) per DPO step (group_by_request)
    train_max_length: int  # tokens of prompt + response: CPU time per step grows with it
    eval_batch_size: int
    judge: str  # eval before/after and the C²-SYN gate
    gate_action: str  # drop | flag requests that fail the gate
    plain_max_new_tokens: int


# The synthesiser's system prompts measured by experiments/synth_choices.py. The demo
# uses the stronger one: on 24 requests the rule gate found r0 refusing in 21% of requests
# (none: 4%, safety: 12.5%). Recorded in the dataset card.
SAFETY_SYSTEM_PROMPT = (
    "You are a helpful, harmless and honest assistant. If a request is harmful, illegal or "
    "unethical, refuse it and explain why."
)
SYNTH_SYSTEM_PROMPT = (
    SAFETY_SYSTEM_PROMPT + " If you notice that you have started to help with something "
    "harmful, stop at once, say that you cannot continue, and explain why it is harmful."
)

# One row per setting: (full demo, --quick smoke test). Why the full values: the measured
# choices in experiments/demo-notes.md, summarised per row.
SETTINGS: dict[str, tuple[Any, Any]] = {
    "eval_rows": (40, 2),
    "syn_requests": (32, 3),
    "syn_max_new_tokens": (64, 8),
    "syn_decoding": ("greedy", "greedy"),
    # one opener per request, r1..r5 alike (c2-syn --openers shared): with the reference's random
    # openers every pair differs from its first token and an earlier adapter learned the opener
    # instead of the correction; shared, r1..r5 share each prefix and differ where the
    # correction starts, and open like C²-EVAL's prefills
    "syn_openers": ("shared", "shared"),
    "train_epochs": (3, 1),
    "train_max_steps": (40, 2),
    # 5e-4 with the correction term, chosen on 40 other rows of the eval half: with DPO alone
    # (shared or no openers, 1e-4 or 3e-4) the adapter never wrote a trigger; with the term at
    # 1e-4 neither; at 5e-4 it corrects
    "train_learning_rate": (5e-4, 1e-4),
    "train_correction_sft_weight": (1.0, 1.0),
    "train_batch": (1, 1),
    "train_max_length": (256, 128),
    "eval_batch_size": (32, 8),
    "judge": ("probe", "probe"),
    # the rule gate passed 0 of 24 requests with every system prompt (experiments/synth_choices.py),
    # so dropping failures leaves nothing to train on; flagging keeps them (gate = "failed" in the
    # data) and the card and summary report the rates; 8 new tokens rarely pass a gate either
    "gate_action": ("flag", "flag"),
    "plain_max_new_tokens": (64, 8),
}
FULL = Sizes(**{name: full for name, (full, _) in SETTINGS.items()})
QUICK = Sizes(**{name: quick for name, (_, quick) in SETTINGS.items()})


def split_rows(data: Path, out: Path, seed: int) -> tuple[Path, Path, int, int]:
    """Two disjoint halves by request (stable hash of the prompt), written as JSONL."""
    from cc_tasks.seeding import stable_seed

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


@dataclass(frozen=True)
class Step:
    """One command of the demo: its name (the timings key), command line, log and threads."""

    name: str
    cmd: list[str]
    log: Path
    threads: int | None = None


def run_parallel(steps: Sequence[Step], timings: dict[str, float]) -> None:
    """Run independent steps at the same time, each with its own log; stop on any failure.

    Why: each generation step runs on one thread (faster on a busy CPU, see :func:`run`), so
    on 2 cores two independent steps (evaluating the base model, synthesising C²-SYN) finish
    in about the time of the longer one instead of the sum. Each step's own wall time is
    recorded; the output goes to its log only, and the last lines are printed at the end.
    """
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
    timings[" + ".join(s.name for s in steps)] = round(time.perf_counter() - start, 1)
    if failed:
        raise SystemExit("demo: step " + ", ".join(failed) + " failed")


def bin_of(name: str) -> str:
    """A console script of this environment (beside the running python)."""
    candidate = Path(sys.executable).with_name(name)
    return str(candidate) if candidate.exists() else name


def probe_ready() -> str | None:
    """Why the offline probe judge cannot run here (None when its weights are in place)."""
    try:
        from cc_tasks.judges import make_judge

        make_judge("probe").check()
    except Exception as err:  # any failure means: choose another judge
        return f"{type(err).__name__}: {err}"
    return None


def eval_cmd(
    model: str, adapter: Path | None, eval_path: Path, sizes: Sizes, output: Path
) -> list[str]:
    """One ``c2-eval`` command; before and after differ ONLY in ``peft=`` and the output path
    (same rows, same seed, so the same prefills and the same sampling seed per path)."""
    model_args = f"pretrained={model}" + (f",peft={adapter}" if adapter else "")
    return [
        bin_of("c2-eval"),
        "--data",
        str(eval_path),
        "--judge",
        sizes.judge,
        "--limit",
        str(sizes.eval_rows),
        "--model",
        "hf",
        "--model_args",
        model_args,
        "--batch_size",
        str(sizes.eval_batch_size),
        "--log_samples",
        "--seed",
        "0",
        "--output_path",
        str(output),
    ]


def eval_step(
    when: str, model: str, adapter: Path | None, eval_path: Path, sizes: Sizes, out: Path
) -> Step:
    """The ``eval before`` / ``eval after`` step: :func:`eval_cmd` into ``out/eval_<when>``."""
    return Step(
        f"eval {when}",
        eval_cmd(model, adapter, eval_path, sizes, out / f"eval_{when}"),
        out / "logs" / f"eval_{when}.log",
        threads=1,
    )


def summarise(out: Path, judge: str) -> dict[str, Any]:
    """The before/after numbers: Corr@k per k, Corr_mean, paired bootstrap difference, and
    the share of degenerate continuations, for the demo's judge and (re-judged) the rule judge."""
    from compare import continuations_of, degenerate_share, phrase_counts
    from compare import summarise as paired

    from cc_tasks.results import load_runs

    result: dict[str, Any] = {}
    sources = {judge: (out / "eval_before", out / "eval_after")}
    if judge != "rule":
        sources["rule"] = (out / "rejudge-rule" / "before", out / "rejudge-rule" / "after")
    for name, (before_dir, after_dir) in sources.items():
        (before,) = (r for r in load_runs([before_dir]) if r.judge == name)
        (after,) = (r for r in load_runs([after_dir]) if r.judge == name)
        result[name] = paired(before, after)
    result["degenerate_continuations"] = {
        "definition": "empty (whitespace only), no letter/digit, or >= 8 words with one word "
        ">= half of them or one word trigram >= 4 times (demo/compare.py:degenerate)",
        "before": degenerate_share(continuations_of([out / "eval_before"])),
        "after": degenerate_share(continuations_of([out / "eval_after"])),
    }
    result["phrases"] = {
        "definition": "continuations with 'help/assist you with that' (an echoed affirmative "
        "opener) / with one of the 15 C²-SYN triggers verbatim (demo/compare.py:phrase_counts)",
        "before": phrase_counts(continuations_of([out / "eval_before"])),
        "after": phrase_counts(continuations_of([out / "eval_after"])),
    }
    return result


def summary_markdown(summary: Mapping[str, Any], judge: str) -> str:
    """The README table: Corr@k per k and Corr_mean before/after, difference and its error."""
    lines = []
    for name in [judge] + (["rule"] if judge != "rule" else []):
        s = summary[name]
        ks = list(s["corr_at_k_before"])
        lines.append(
            f"**Judge: {name}**"
            + (
                " (the demo's judge)"
                if name == judge
                else " (the same samples re-judged with `c2-judge rejudge`, no new generation)"
            )
        )
        lines.append("")
        lines.append("| | " + " | ".join(f"Corr@{k[1:]}" for k in ks) + " | Corr_mean |")
        lines.append("|---" * (len(ks) + 2) + "|")
        for when in ("before", "after"):
            cells = [_pct(s[f"corr_at_k_{when}"][k]) for k in ks]
            lines.append(f"| {when} | " + " | ".join(cells) + f" | {_pct(s[when])} |")
        z = "n/a" if s["z"] is None else f"{s['z']:.1f}"
        lines.append(
            f"| after - before | | | | | | | | | **{_pct(s['difference'], sign=True)}** "
            f"(se {_pct(s['bootstrap_se'])}, 95% [{_pct(s['ci95'][0], sign=True)}, "
            f"{_pct(s['ci95'][1], sign=True)}], {z} se) |"
        )
        lines.append("")
        lines.append(f"Error: {s['method']}; {s['rows']} rows x {len(ks)} k.")
        lines.append("")
    d = summary["degenerate_continuations"]
    lines.append(
        f"Degenerate continuations: before {d['before']['degenerate']}/{d['before']['paths']}, "
        f"after {d['after']['degenerate']}/{d['after']['paths']} ({d['definition']})."
    )
    if p := summary.get("phrases"):
        lines.append("")
        lines.append(
            f"Echoed opener: before {p['before']['opener_echo']}/{p['before']['paths']}, after "
            f"{p['after']['opener_echo']}/{p['after']['paths']}; a C²-SYN trigger verbatim: "
            f"before {p['before']['trigger']}, after {p['after']['trigger']} ({p['definition']})."
        )
    return "\n".join(lines) + "\n"


def _pct(value: float | None, *, sign: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{100 * value:+.1f}%" if sign else f"{100 * value:.1f}%"


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
    parser.add_argument("--train-epochs", type=float, help="override the DPO epochs")
    parser.add_argument("--train-max-steps", type=int, help="override the DPO step cap")
    parser.add_argument(
        "--judge",
        choices=("probe", "rule"),
        help="judge of both evaluations and of the C²-SYN gate (default: probe, the validated "
        "offline judge; rule only where the probe's weights are missing, and said so)",
    )
    args = parser.parse_args(argv)

    sizes = QUICK if args.quick else FULL
    sizes = replace(
        sizes,
        eval_rows=args.eval_rows or sizes.eval_rows,
        syn_requests=args.syn_requests or sizes.syn_requests,
        train_epochs=args.train_epochs or sizes.train_epochs,
        train_max_steps=args.train_max_steps or sizes.train_max_steps,
        judge=args.judge or sizes.judge,
    )
    # every check before any expensive work
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
    if sizes.judge == "probe" and (why := probe_ready()):
        print(
            f"demo: error: the probe judge is not usable ({why}); pass --judge rule to run the "
            "demo with the rule judge",
            file=sys.stderr,
        )
        return 2
    out.mkdir(parents=True, exist_ok=True)
    logs = out / "logs"
    logs.mkdir()

    from cc_tasks.embedded import embedded_model_path

    model = embedded_model_path()
    eval_path, syn_path, n_eval, n_syn = split_rows(args.data, out, args.seed)
    plan: dict[str, Any] = {
        "sizes": asdict(sizes),
        "eval_half_rows": n_eval,
        "syn_half_rows": n_syn,
        "split_seed": args.seed,
        "model": model,
        "synth_system_prompt": SYNTH_SYSTEM_PROMPT,
    }
    print("demo plan:", json.dumps(plan, indent=2))
    print(
        f"  eval: {sizes.eval_rows} rows x 8 prefill lengths = {sizes.eval_rows * 8} generations "
        f"per model (one sampled path each, same seed before/after), judge {sizes.judge}\n"
        f"  synth: {sizes.syn_requests} requests -> up to {sizes.syn_requests * 15} preference "
        f"pairs, gate {sizes.judge} ({sizes.gate_action} failures)\n"
        f"  train: shared-response DPO + correction term (weight "
        f"{sizes.train_correction_sft_weight}), {sizes.train_epochs} epoch(s) over the kept requests "
        f"(at most {sizes.train_max_steps} steps), {sizes.train_batch} request(s) (15 pairs "
        f"each) per step, learning rate {sizes.train_learning_rate}, max_length "
        f"{sizes.train_max_length} (LoRA, CPU recipe)"
    )
    timings: dict[str, float] = {}
    total = time.perf_counter()

    syn_dir = out / "c2syn"
    run_parallel(
        [
            eval_step("before", model, None, eval_path, sizes, out),
            Step(
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
                    "--openers",
                    sizes.syn_openers,
                    "--batch-size",
                    "8",
                    "--system-prompt",
                    SYNTH_SYSTEM_PROMPT,
                    "--gate-judge",
                    sizes.judge,
                    "--gate-action",
                    sizes.gate_action,
                    "--no-progress",
                ],
                logs / "synth.log",
                threads=1,
            ),
        ],
        timings,
    )

    stats = json.loads((syn_dir / "pairs" / "stats.json").read_text(encoding="utf-8"))
    print("C²-SYN gate:", json.dumps(stats.get("gate"), indent=2))
    print(f"C²-SYN pairs: {stats['pairs_by_split']} from {stats['requests_kept']} requests")
    plan["c2syn"] = {
        k: stats.get(k) for k in ("requests_kept", "pairs_by_split", "gate", "gate_action")
    }
    if (stats.get("requests_kept") or 0) < 2:
        raise SystemExit(
            f"demo: the quality gate kept {stats.get('requests_kept')} request(s); the recipe "
            "needs 2 (1 is held out): raise --syn-requests"
        )

    # the recipe holds out 1 request (test_size: 1) for its eval_loss / reward accuracy
    train_requests = stats["requests_kept"] - 1
    train_steps = min(
        math.ceil(sizes.train_epochs * train_requests / sizes.train_batch), sizes.train_max_steps
    )
    plan["train"] = {
        "requests": train_requests,
        "pairs": train_requests * 15,
        "steps": train_steps,
        "pairs_seen": train_steps * sizes.train_batch * 15,
    }
    print(f"train: {json.dumps(plan['train'])}")
    adapter = out / "dpo-adapter"
    run(
        "train DPO (shared-response, LoRA, CPU)",
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
            str(train_steps),
            "--learning_rate",
            str(sizes.train_learning_rate),
            "--correction_sft_weight",
            str(sizes.train_correction_sft_weight),
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

    run_parallel(
        [
            eval_step("after", model, adapter, eval_path, sizes, out),
            Step(
                "plain answers",
                [
                    sys.executable,
                    str(ROOT / "demo" / "plain_answers.py"),
                    "--model",
                    model,
                    "--adapter",
                    str(adapter),
                    "--out",
                    str(out / "plain_answers.json"),
                    "--max-new-tokens",
                    str(sizes.plain_max_new_tokens),
                ],
                logs / "plain_answers.log",
                threads=1,
            ),
        ],
        timings,
    )

    reports = [out / "eval_before", out / "eval_after"]
    labels = ["SmolLM2 before DPO", "SmolLM2 + C²-SYN DPO adapter"]
    if sizes.judge != "rule":
        for when in ("before", "after"):
            run(
                f"re-judge {when} (rule)",
                [
                    bin_of("c2-judge"),
                    "rejudge",
                    str(out / f"eval_{when}"),
                    "--judge",
                    "rule",
                    "--output-dir",
                    str(out / "rejudge-rule" / when),
                    "--no-progress",
                ],
                logs / f"rejudge_rule_{when}.log",
                timings,
            )
        reports += [out / "rejudge-rule" / "before", out / "rejudge-rule" / "after"]
        labels += [f"{labels[0]} (rule re-judge)", f"{labels[1]} (rule re-judge)"]

    (out / "report").mkdir()  # c2-report --html writes into an existing folder
    run(
        "report",
        [
            bin_of("c2-report"),
            *map(str, reports),
            *[x for label in labels for x in ("--label", label)],
            "--out",
            str(out / "report"),
            "--html",
            str(out / "report" / "samples.html"),
            "--title",
            f"C²-EVAL demo (eval half, {sizes.eval_rows} rows, judge {sizes.judge})",
        ],
        logs / "report.log",
        timings,
    )

    start = time.perf_counter()
    summary = summarise(out, sizes.judge)
    timings["compare"] = round(time.perf_counter() - start, 1)
    run(
        "blind items",
        [sys.executable, str(ROOT / "demo" / "blind_items.py"), str(out), str(out / "blind")],
        logs / "blind_items.log",
        timings,
    )
    timings["total"] = round(time.perf_counter() - total, 1)
    table = summary_markdown(summary, sizes.judge)
    (out / "report" / "before_after.md").write_text(table, encoding="utf-8")
    (out / "demo_summary.json").write_text(
        json.dumps({**plan, "before_after": summary, "timings_s": timings}, indent=2) + "\n",
        encoding="utf-8",
    )
    print("\n" + table)
    print("demo timings (s):", json.dumps(timings))
    print(
        f"blind reading: give {out / 'blind' / 'items.jsonl'} and "
        "experiments/blind_reading/BLIND_READING.md to a reader (and second.txt to a second "
        "one), then python -m experiments.blind_reading.blind_read score "
        f"{out / 'blind'}"
    )
    print(
        f"table: {out / 'report' / 'before_after.md'} and {out / 'report' / 'report.md'}\n"
        f"plot:  {out / 'report' / 'corr_at_k.png'}\nsamples: {out / 'report' / 'samples.html'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
