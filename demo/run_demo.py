"""End-to-end Course-Correction demo on one CPU: evaluate -> synthesise -> DPO -> evaluate -> report.

Usage (from the repository root)::

    python demo/run_demo.py                 # full demo, sized for <= 60 min on a quiet 2-core CPU
    python demo/run_demo.py --quick         # smoke test: a few rows, a few steps (CI runs this)
    python demo/run_demo.py --resume        # finish runs/demo: skip the steps already done
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
   ``c2-eval --tasks c2_overrefusal`` the base model (beside step 2) and the adapter (beside
   this step): the over-refusal group, the cost of the training (method section 2.9);
6. ``c2-judge rejudge`` both sample sets with the ``rule`` judge (a second line, no generation);
7. the base model's and the adapter's plain answers to a few harmless requests (greedy);
8. ``c2-report`` the table, the Corr@k plot and the sample viewer (``--html``);
9. the paired before/after difference of Corr_mean with a bootstrap over rows
   (demo/compare.py), the over-refusal shares before/after with Wilson intervals and their
   paired difference (bootstrap over prompts), and the share of degenerate continuations;
10. ``c2-judge audit prepare`` both evaluations: a seeded, blind, uniform random sample of the
   same paths in both runs, stratified by k, for a reader to label; ``c2-judge audit score``
   then corrects the judge's Corr@k and before/after difference by the labels (PPI++).

Whatever the effect is, it is reported as measured, with the number of paths behind each figure.
``--resume`` reuses a finished or interrupted demo folder: every step whose complete output is
there is skipped (the steps are deterministic), the report and the summary are rebuilt.
Choices of steps 3 and 4 were measured (experiments/demo-notes.md, experiments/synth_choices.py).
The demo's helpers (settings.py: the sizes and why; steps.py: running the commands; compare.py:
the before/after numbers; plain_answers.py) sit beside this file and are imported the way a
script imports its siblings: Python puts the script's folder first on the path.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from compare import demo_summary, summary_markdown
from settings import DEFAULT_DATA, FULL, QUICK, ROOT, SYNTH_SYSTEM_PROMPT, Sizes
from steps import Step, bin_of, output_of, run_parallel, run_step, split_differs, split_rows

RESULTS = "**/results_*.json"
"""What an lm-eval output folder holds once its run finished (written last, in a model folder)."""


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
        model_args(model, adapter),
        "--batch_size",
        str(sizes.eval_batch_size),
        "--log_samples",
        "--seed",
        "0",
        "--output_path",
        str(output),
    ]


def model_args(model: str, adapter: Path | None) -> str:
    """lm-eval ``--model_args``: the base model, with the adapter (``peft=``) after training."""
    return f"pretrained={model}" + (f",peft={adapter}" if adapter else "")


def eval_step(
    when: str, model: str, adapter: Path | None, eval_path: Path, sizes: Sizes, out: Path
) -> Step:
    """The ``eval before`` / ``eval after`` step: :func:`eval_cmd` into ``out/eval_<when>``."""
    return Step(
        f"eval {when}",
        eval_cmd(model, adapter, eval_path, sizes, out / f"eval_{when}"),
        out / "logs" / f"eval_{when}.log",
        threads=1,
        done=output_of(out / f"eval_{when}", RESULTS),
    )


def overrefusal_step(when: str, model: str, adapter: Path | None, sizes: Sizes, out: Path) -> Step:
    """The ``over-refusal before`` / ``after`` step: the over-refusal group (method section 2.9)
    on the base model or the adapter, into ``out/overrefusal_<when>``; greedy, so the two runs
    differ only by ``peft=`` and pair prompt by prompt. Judged by the rule judge: the offline
    one the group accepts (the probe is trained on course-correction only)."""
    folder = out / f"overrefusal_{when}"
    limit = [] if sizes.overrefusal_limit is None else ["--limit", str(sizes.overrefusal_limit)]
    return Step(
        f"over-refusal {when}",
        [
            bin_of("c2-eval"),
            "--tasks",
            "c2_overrefusal",
            "--judge",
            "rule",
            *limit,
            "--model",
            "hf",
            "--model_args",
            model_args(model, adapter),
            "--batch_size",
            str(sizes.overrefusal_batch_size),
            "--gen_kwargs",
            f"max_gen_toks={sizes.overrefusal_max_new_tokens}",
            "--log_samples",
            "--seed",
            "0",
            "--output_path",
            str(folder),
        ],
        out / "logs" / f"overrefusal_{when}.log",
        threads=1,
        done=output_of(folder, RESULTS),
    )


def earlier_summary(out: Path) -> dict[str, Any]:
    """The summary an earlier run left in ``out`` (empty: none yet); ValueError if unreadable."""
    path = out / "demo_summary.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise ValueError(f"{path}: not JSON ({err})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a JSON object")
    return data


def resume_mismatch(
    out: Path, data: Path, seed: int, sizes: Sizes, earlier: dict[str, Any]
) -> str | None:
    """Why ``out`` cannot be resumed with these settings (None: it can). Its outputs are
    reused as they are, so they must come from the same rows, split and sizes; the earlier
    summary's sizes are compared where both runs have the setting."""
    if differs := split_differs(data, out, seed):
        return f"{differs} differs from the split of {data} with seed {seed}"
    if "split_seed" in earlier and earlier["split_seed"] != seed:
        return f"it was split with --seed {earlier['split_seed']}, this run asks for {seed}"
    old = earlier.get("sizes") or {}
    for name, value in asdict(sizes).items():
        if name in old and old[name] != value:
            return f"it was run with {name}={old[name]!r}, this run asks for {value!r}"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few rows and steps (smoke test)")
    parser.add_argument(
        "--data", type=Path, default=Path(os.environ.get("C2_DEMO_DATA", DEFAULT_DATA))
    )
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "demo")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="reuse an existing --out folder: skip every step whose complete output is there "
        "(same data, split and sizes; the steps are deterministic), rebuild report and summary",
    )
    parser.add_argument("--seed", type=int, default=1234, help="split seed (documented demo split)")
    parser.add_argument("--eval-rows", type=int, help="override the eval size (rows per k)")
    parser.add_argument("--syn-requests", type=int, help="override the C²-SYN size (requests)")
    parser.add_argument("--train-epochs", type=float, help="override the DPO epochs")
    parser.add_argument("--train-max-steps", type=int, help="override the DPO step cap")
    parser.add_argument(
        "--audit-n", type=int, help="override the paths per run drawn for the blind audit"
    )
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
    paths_per_run = sizes.eval_rows * 8  # one sampled path per row and prefill length
    # every check before any expensive work
    if args.audit_n is not None and not 1 <= args.audit_n <= paths_per_run:
        print(
            f"demo: error: --audit-n {args.audit_n}: a run of {paths_per_run} paths takes 1 to "
            f"{paths_per_run}",
            file=sys.stderr,
        )
        return 2
    # a smaller --eval-rows shrinks the default sample with the runs
    sizes = replace(sizes, audit_n=min(args.audit_n or sizes.audit_n, paths_per_run))
    if not args.data.is_file():
        print(
            f"demo: error: C²-EVAL rows not found at {args.data} (pass --data FILE)",
            file=sys.stderr,
        )
        return 2
    out = args.out
    earlier: dict[str, Any] = {}
    if out.exists() and any(out.iterdir()):
        if not args.resume:
            print(
                f"demo: error: {out} is not empty; pass another --out, remove it, or pass "
                "--resume to finish it",
                file=sys.stderr,
            )
            return 2
        try:
            earlier = earlier_summary(out)
            why = resume_mismatch(out, args.data, args.seed, sizes, earlier)
        except ValueError as err:
            why = str(err)
        if why:
            print(f"demo: error: cannot --resume {out}: {why}", file=sys.stderr)
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
    logs.mkdir(exist_ok=True)

    from cc_tasks.embedded import embedded_model_path
    from cc_tasks.results.audit import ITEMS_FILE, PAGE_FILE

    model = embedded_model_path()
    if earlier.get("model", model) != model:
        print(
            f"demo: error: cannot --resume {out}: it evaluated {earlier['model']}, the embedded "
            f"model is now {model}",
            file=sys.stderr,
        )
        return 2
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
        f"{sizes.train_max_length} (LoRA, CPU recipe)\n"
        f"  audit: {sizes.audit_n} of each run's {paths_per_run} paths (the same in both), "
        "drawn blind for labelling\n"
        f"  over-refusal: {sizes.overrefusal_limit or 'all'} prompts per subtask (benign, "
        f"contrast), greedy, {sizes.overrefusal_max_new_tokens} new tokens, rule judge, "
        "base model and adapter"
    )
    timings: dict[str, float] = {}
    skipped: list[str] = []
    total = time.perf_counter()

    def side_by_side(steps: list[Step]) -> None:
        ran = run_parallel(steps, timings, resume=args.resume)
        skipped.extend(step.name for step in steps if step.name not in ran)

    def one(step: Step) -> None:
        if not run_step(step, timings, resume=args.resume):
            skipped.append(step.name)

    syn_dir = out / "c2syn"
    # the base model's over-refusal needs no adapter: it runs beside eval before and the
    # synthesis, whose measured times differ by a minute or two that it fills on the free core
    side_by_side(
        [
            eval_step("before", model, None, eval_path, sizes, out),
            overrefusal_step("before", model, None, sizes, out),
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
                # the dataset card, written last (after pairs/stats.json and data/)
                done=output_of(syn_dir, "README.md"),
            ),
        ]
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
    step = Step(
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
        done=output_of(adapter, "adapter_model.safetensors"),
    )
    one(step)

    side_by_side(
        [
            eval_step("after", model, adapter, eval_path, sizes, out),
            overrefusal_step("after", model, adapter, sizes, out),
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
                done=output_of(out, "plain_answers.json"),
            ),
        ]
    )

    reports = [out / "eval_before", out / "eval_after"]
    labels = ["SmolLM2 before DPO", "SmolLM2 + C²-SYN DPO adapter"]
    if sizes.judge != "rule":
        for when in ("before", "after"):
            step = Step(
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
                done=output_of(out / "rejudge-rule" / when, "corr.json"),
            )
            one(step)
        reports += [out / "rejudge-rule" / "before", out / "rejudge-rule" / "after"]
        labels += [f"{labels[0]} (rule re-judge)", f"{labels[1]} (rule re-judge)"]
    # the over-refusal runs: c2-report adds their table (Wilson intervals) below Corr@k
    reports += [out / "overrefusal_before", out / "overrefusal_after"]
    labels += labels[:2]

    (out / "report").mkdir(exist_ok=True)  # c2-report --html writes into an existing folder
    # the report is rebuilt on --resume (cheap, and it gains any new step's runs); c2-report
    # does not overwrite a sample viewer, and this one is the demo's own
    (out / "report" / "samples.html").unlink(missing_ok=True)
    run_step(
        Step(
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
        ),
        timings,
    )

    start = time.perf_counter()
    summary = demo_summary(out, sizes.judge)
    timings["compare"] = round(time.perf_counter() - start, 1)
    audit_dir = out / "audit"
    step = Step(
        "audit prepare",
        [
            bin_of("c2-judge"),
            "audit",
            "prepare",
            str(out / "eval_before"),
            str(out / "eval_after"),
            "--n",
            str(sizes.audit_n),
            "-o",
            str(audit_dir),
        ],
        logs / "audit_prepare.log",
        done=output_of(audit_dir, PAGE_FILE),  # written last, after the key and the items
    )
    one(step)
    timings["total"] = round(time.perf_counter() - total, 1)
    table = summary_markdown(summary, sizes.judge)
    (out / "report" / "before_after.md").write_text(table, encoding="utf-8")
    record = {**plan, "before_after": summary, "timings_s": timings}
    if args.resume:  # this invocation's timings only; the skipped steps' are the earlier run's
        record["resumed"] = {"skipped": skipped, "earlier_timings_s": earlier.get("timings_s")}
    (out / "demo_summary.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print("\n" + table)
    print("demo timings (s):", json.dumps(timings))
    labels_file = audit_dir / "labels.jsonl"
    print(
        f"audit: label {audit_dir / PAGE_FILE} in a browser (y / n, e exports) and save the "
        f"export as {labels_file}, or label {audit_dir / ITEMS_FILE} by script or API into "
        'the same file ({"id", "label": "yes"|"no", "labeller"} per line), then\n  '
        + shlex.join(
            [
                "c2-judge",
                "audit",
                "score",
                str(out / "eval_before"),
                str(out / "eval_after"),
                "--audit",
                str(audit_dir),
                "--labels",
                str(labels_file),
            ]
        )
        + "\n  prints the judge's agreement with the labels and the corrected before/after "
        "difference beside the judge's raw one"
    )
    print(
        f"table: {out / 'report' / 'before_after.md'} and {out / 'report' / 'report.md'}\n"
        f"plot:  {out / 'report' / 'corr_at_k.png'}\nsamples: {out / 'report' / 'samples.html'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
