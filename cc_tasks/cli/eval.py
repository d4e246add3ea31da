"""``c2-eval``: lm-eval's own CLI with the C²-EVAL tasks, their defaults and up-front input checks.

Usage::

    c2-eval --data rows.jsonl --judge rule --limit 10            # embedded SmolLM2, hf backend
    c2-eval --model vllm --model_args pretrained=Qwen/Qwen2-7B-Instruct --judge openai

It runs ``lm-eval run`` in this process (:class:`LmEvalCli`) with, unless given:
``--tasks c2_eval``, ``--apply_chat_template``, ``--model hf`` with
``pretrained=<embedded SmolLM2 folder>``; it always adds this package's folder
(both task folders, C²-EVAL and over-refusal) to ``--include_path``. Its own flags
(below) become lm-eval ``--metadata`` keys; every other argument goes to lm-eval
unchanged. When every requested task is one of this package's, lm-eval indexes only
the include path (not its built-in tasks), which saves ~15 s of start-up.

Over-refusal tasks (``--tasks c2_overrefusal``, method section 2.9) get their prompts
(``--overrefusal-data``) and their judge checked before the model loads too, and after
the run a line per subtask with each share and its 95% Wilson interval.

Before lm-eval loads any model it checks ``--tasks`` and ``--limit``, validates
the data (every row), builds and checks the judge (``judge.check()``) and, for
hf/vllm/sglang, renders the model's chat template. The run's options, judge
included, reach lm-eval's subtasks as one object
(:func:`cc_tasks.c2_eval.options.registered`); after the run, its judge
accounting decides the exit status: 0 ok; 1 judge errors (unless
``--allow-judge-errors``) or more than ``--max-invalid`` (default 5%) invalid
verdicts (unless ``--allow-invalid``); 2 bad input or configuration. The judge
flags are the ones every tool shares (:mod:`cc_tasks.judges.settings`).

``--export-data OUT`` writes the rows a run would evaluate (from the Hub: the
C²-EVAL file of 500 rows) and exits, without lm-eval or a model.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cc_tasks import INCLUDE_PATH, OVERREFUSAL_DIR, TASK_DIR
from cc_tasks.c2_eval.options import RunOptions, registered, run_options
from cc_tasks.c2_eval.rows import build_docs, eval_rows, export_rows
from cc_tasks.errors import CCError, RunFailure, UsageError, cli_exit
from cc_tasks.judges.record import InvalidPolicy
from cc_tasks.judges.settings import add_judge_flags, explicit_settings, invalid_policy

PROG = "c2-eval"
OVERREFUSAL = "c2_overrefusal"  # the over-refusal task family (method section 2.9)
HF_LIKE = ("hf", "hf-auto", "huggingface", "vllm", "sglang")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Run C²-EVAL (Corr@k, Corr_mean) through lm-evaluation-harness.",
        epilog=(
            "Every other argument goes to `lm-eval run` unchanged (see `lm-eval run --help`), "
            "e.g. --model, --model_args, --tasks, --limit, --batch_size, --gen_kwargs, "
            "--output_path, --log_samples, --use_cache, --metadata."
        ),
        allow_abbrev=False,
    )
    group = parser.add_argument_group("C²-EVAL (become lm-eval --metadata keys)")
    group.add_argument(
        "--data",
        metavar="FILE",
        help="local PKU-SafeRLHF v0 rows (JSONL/JSON/parquet); default: $C2_EVAL_DATA, else the Hub",
    )
    group.add_argument(
        "--export-data",
        metavar="OUT",
        help="write the rows the run would evaluate (the Hub's 500 C²-EVAL rows, or --data "
        "[--select]) to OUT as JSONL and exit; no model, no lm-eval",
    )
    group.add_argument(
        "--select",
        action="store_true",
        default=None,
        help="apply the method's selection (method section 2: how/what + unsafe response, first 500) to --data",
    )
    group.add_argument(
        "--seed",
        type=int,
        help="seed for the openers (prefills) and for lm-eval's samplers (lm-eval --seed)",
    )
    group.add_argument("--paths", type=int, help="sampled continuations per (row, k); default 1")
    group.add_argument(
        "--prefill-mode", choices=("word", "token"), help="first k words (default) or tokens"
    )
    group.add_argument(
        "--strict",
        action="store_true",
        default=None,
        help="invalid verdicts count as not corrected",
    )
    group.add_argument(
        "--overrefusal-data",
        metavar="SOURCE",
        help="prompts of the c2_overrefusal tasks: project (default), xstest (the Hub's "
        "Paul/XSTest) or a file (JSONL in the project's shape, CSV/parquet in XSTest's)",
    )
    # the judge flags every tool shares (cc_tasks.judges.settings): --judge becomes metadata
    # 'judge', the options 'judge_options'; --max-invalid / --allow-invalid decide the exit code
    add_judge_flags(parser.add_argument_group("judge (metadata 'judge', 'judge_options')"))
    return parser


def metadata_from_flags(ours: argparse.Namespace) -> dict[str, Any]:
    """The lm-eval metadata keys for the flags the user gave (and only those)."""
    meta: dict[str, Any] = {}
    for flag, key in (
        ("data", "data"),
        ("select", "select"),
        ("seed", "seed"),
        ("paths", "paths"),
        ("prefill_mode", "prefill_mode"),
        ("strict", "strict"),
        ("allow_judge_errors", "allow_judge_errors"),
        ("overrefusal_data", "overrefusal_data"),
    ):
        if getattr(ours, flag) is not None:
            meta[key] = getattr(ours, flag)
    kind, options = explicit_settings(ours)  # the environment is resolved by the tasks
    if kind is not None:
        meta["judge"] = kind
    if options:
        meta["judge_options"] = options
    return meta


def _has(argv: Sequence[str], *flags: str) -> bool:
    return any(a == f or a.startswith(f + "=") for a in argv for f in flags)


def lm_eval_argv(rest: Sequence[str], ours: argparse.Namespace) -> tuple[list[str], bool]:
    """lm-eval ``run`` arguments with our defaults; also whether the model was defaulted."""
    argv = list(rest)
    if not _has(argv, "--tasks", "-t"):
        argv += ["--tasks", "c2_eval"]
    if not _has(argv, "--apply_chat_template"):
        argv += ["--apply_chat_template"]
    if ours.seed is not None and not _has(argv, "--seed"):
        argv += ["--seed", str(ours.seed)]
    default_model = not _has(argv, "--model", "-M")
    if default_model:
        argv += ["--model", "hf"]
    return argv, default_model


def _task_names(tasks: Any) -> list[str]:
    return [t for item in tasks or () for t in str(item).split(",") if t]


def wants_c2_eval(tasks: Any) -> bool:
    return any(name.startswith("c2_eval") for name in _task_names(tasks))


def wants_overrefusal(tasks: Any) -> bool:
    return any(name.startswith(OVERREFUSAL) for name in _task_names(tasks))


def only_c2_eval(tasks: Any) -> bool:
    """Every task is one of this package's (C²-EVAL or over-refusal): lm-eval's own index can go."""
    names = _task_names(tasks)
    return bool(names) and all(name.startswith(("c2_eval", OVERREFUSAL)) for name in names)


# --------------------------------------------------------------------------- the lm-eval CLI seam
#
# Why c2-eval drives lm-eval's command line rather than lm_eval.simple_evaluate: every lm-eval
# flag must keep working (--output_path, --log_samples, --config, --wandb_args, --hf_hub_log_args,
# the results table, ...), and that handling lives in lm-eval's CLI (lm_eval._cli), not in its
# Python API; copying it would drift with each lm-eval release. Its parser reads sys.argv and
# its task index is built by lm_eval.tasks.TaskManager inside the CLI, so this is the one place
# that sets sys.argv and swaps TaskManager, each only for the duration of one call.


class LmEvalCli:
    """lm-eval's ``run`` command line: :meth:`parse` its arguments, :meth:`execute` the run."""

    def __init__(self) -> None:
        from lm_eval._cli import HarnessCLI

        self._cli = HarnessCLI()

    def parse(self, argv: Sequence[str]) -> argparse.Namespace:
        """``lm-eval run`` arguments parsed by lm-eval's own parser (its help and errors)."""
        saved = sys.argv
        sys.argv = ["lm-eval", "run", *argv]
        try:
            return self._cli.parse_args()
        finally:
            sys.argv = saved

    def execute(self, args: argparse.Namespace, *, own_tasks_only: bool) -> None:
        """Run lm-eval. ``own_tasks_only``: index only the include path, not lm-eval's
        ~15,000 built-in task configs (saves ~15 s of CPU when every task is a C²-EVAL one)."""
        import lm_eval.tasks

        original = lm_eval.tasks.TaskManager
        if own_tasks_only:

            class OwnTasksManager(original):  # type: ignore[misc, valid-type]
                def __init__(self, *a: Any, **kw: Any) -> None:
                    kw.setdefault("include_defaults", False)  # a public TaskManager argument
                    super().__init__(*a, **kw)

            lm_eval.tasks.TaskManager = OwnTasksManager
        try:
            self._cli.execute(args)
        finally:
            lm_eval.tasks.TaskManager = original


def check_limit(limit: Any) -> None:
    """``--limit`` must select at least one row: lm-eval would fail only after the model load."""
    if limit is not None and not limit > 0:
        raise UsageError(
            f"--limit: expected a number of rows (>= 1) or a share of them (between 0 and 1), "
            f"got {limit:g}"
        )


def precheck_chat_template(model: str, model_args: Mapping[str, Any], options: Any) -> None:
    """Render the first prompt with the model's tokenizer before lm-eval loads the model.

    Same checks as the task (prefill at the end, not inside a reasoning block),
    minutes earlier for big models. Skipped where the tokenizer cannot be loaded
    here; the task checks again after lm-eval renders the real prompts.
    """
    from cc_tasks.c2_eval.task import check_rendered
    from cc_tasks.prefill import render_open_assistant

    if model not in HF_LIKE and not (model == "local-completions" and model_args.get("tokenizer")):
        return
    name = model_args.get("tokenizer") or model_args.get("pretrained")
    if not isinstance(name, str):
        return
    try:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(name)
    except Exception:  # lm-eval reports model/tokenizer problems in its own words
        return
    kwargs: dict[str, Any] = {}
    if model in HF_LIKE:
        template_args = model_args.get("chat_template_args")
        if isinstance(template_args, Mapping):
            kwargs.update(template_args)
        if model_args.get("enable_thinking") is not None:
            kwargs["enable_thinking"] = model_args["enable_thinking"]
    doc = build_docs(options, 10)[0]
    text = render_open_assistant(
        tokenizer, doc["prompt"], doc["prefill"], chat_template_kwargs=kwargs
    )
    check_rendered(text, doc)


def c2_eval_task_names(folder: Path = TASK_DIR) -> list[str]:
    """The task and group names the YAML files in ``folder`` define (default :data:`TASK_DIR`)."""
    names = set()
    for config in folder.glob("*.yaml"):
        for line in config.read_text(encoding="utf-8").splitlines():
            key, _, value = line.partition(":")
            if key in ("task", "group") and value.strip():
                names.add(value.strip())
    return sorted(names, key=lambda n: (len(n), n))


def check_task_names(tasks: Any) -> None:
    """Unknown ``c2_eval*`` / ``c2_overrefusal*`` names fail here in one line, not in lm-eval's
    traceback."""
    for prefix, folder, what in (
        ("c2_eval", TASK_DIR, "C²-EVAL"),
        (OVERREFUSAL, OVERREFUSAL_DIR, "over-refusal"),
    ):
        requested = [n for n in _task_names(tasks) if n.startswith(prefix)]
        known = c2_eval_task_names(folder)
        unknown = [n for n in requested if n not in known]
        if unknown:
            raise UsageError(
                f"--tasks: unknown {what} task {', '.join(map(repr, unknown))}; "
                f"valid names: {', '.join(known)}"
            )


def main(argv: Sequence[str] | None = None) -> int:
    """Exit codes (:mod:`cc_tasks.errors`): 0 ok, 1 judge errors, 2 bad input or configuration."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if _has(argv, "-h", "--help"):
        parser.print_help()
        return 0
    ours, rest = parser.parse_known_args(argv)
    try:
        if ours.export_data:
            return export_data(ours, rest)
        return run(ours, rest)
    except (CCError, OSError) as err:  # one line, no traceback
        return cli_exit(PROG, err)


def export_data(ours: argparse.Namespace, rest: Sequence[str]) -> int:
    """``--export-data OUT``: write the rows of the run's data and selection; no model."""
    if rest:
        raise UsageError(f"--export-data takes only the data flags, not {' '.join(rest)}")
    options = run_options(metadata_from_flags(ours))
    count = export_rows(options, ours.export_data)
    print(f"{PROG}: wrote {count} rows to {ours.export_data}", file=sys.stderr)
    return 0


def check_run(metadata: Mapping[str, Any], ks: Sequence[int] = (10,)) -> RunOptions:
    """Everything a run needs except the model: options, data, prefills, the judge (built and
    checked). Raises :class:`DataError`, :class:`C2EvalConfigError` or a judge config error."""
    options = run_options(metadata)
    for k in ks:
        build_docs(options, k)
    options.built_judge  # noqa: B018 (built once, here: before any model)
    return options


def run(ours: argparse.Namespace, rest: Sequence[str]) -> int:
    """Check everything cheap (tasks, limit, data, judge, chat template), then run lm-eval."""
    from lm_eval.utils import setup_logging

    setup_logging()
    policy = invalid_policy(ours)  # --max-invalid checked before anything runs
    lm_argv, default_model = lm_eval_argv(rest, ours)
    cli = LmEvalCli()
    args = cli.parse(lm_argv)
    check_task_names(args.tasks)
    check_limit(args.limit)

    include = str(INCLUDE_PATH)  # both task folders lie below it
    args.include_path = [include, args.include_path] if args.include_path else include
    args.metadata = {**(args.metadata or {}), **metadata_from_flags(ours)}
    model_args = dict(args.model_args or {})
    c2_eval = wants_c2_eval(args.tasks)
    if c2_eval:  # the rows first: streamed, so a bad file fails at once (before any model)
        eval_rows(run_options(model_args | args.metadata))
    if default_model and "pretrained" not in model_args:
        from cc_tasks.embedded import embedded_model_path

        model_args["pretrained"] = embedded_model_path()  # converts once (~1 min) if needed
        args.model_args = model_args
    # The run's options, as every subtask will see them (lm-eval merges model_args into the
    # task metadata); the subtasks use this very object: see options.registered.
    overrefusal = wants_overrefusal(args.tasks)
    if c2_eval:
        options = check_run(model_args | args.metadata)
    elif overrefusal:
        options = run_options(model_args | args.metadata)
    else:
        options = RunOptions()
    if c2_eval:
        precheck_chat_template(args.model, model_args, options)
    if overrefusal:  # every prompt row and the over-refusal judge, before any model
        from cc_tasks.c2_overrefusal.task import check_run as check_overrefusal

        check_overrefusal(options)

    with registered(options) as run_entry:
        args.metadata = {**args.metadata, **run_entry}
        cli.execute(args, own_tasks_only=only_c2_eval(args.tasks))

    if overrefusal:
        from cc_tasks.results.overrefusal import summary_lines

        for line in summary_lines(options.accounting.entries):
            print(f"{PROG}: {line}")
    return exit_status(options, policy)


def exit_status(options: RunOptions, policy: InvalidPolicy) -> int:
    """0, or :class:`RunFailure` for judge errors / too many invalid verdicts in the accounting."""
    accounting = options.accounting
    problems = []
    if accounting.errors:
        message = (
            f"{accounting.errors} of {accounting.paths} judgments failed (label 'error', left "
            "out of corr); see the log above, rerun (cached verdicts are reused) or re-judge "
            "the samples with c2-judge"
        )
        if not options.allow_judge_errors:
            problems.append(message + "; pass --allow-judge-errors to accept")
        else:
            print(f"{PROG}: warning: {message}", file=sys.stderr)
    invalid = accounting.invalid
    too_many_invalid = policy.failure(invalid)
    if too_many_invalid:
        problems.append(f"{too_many_invalid} (example replies in the log above)")
    elif invalid.invalid:
        print(f"{PROG}: warning: {invalid.warning()} (examples in the log above)", file=sys.stderr)
    if problems:
        raise RunFailure("; and ".join(problems))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
