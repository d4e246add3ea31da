"""The C²-EVAL task class: lm-eval's ConfigurableTask plus the run's :class:`RunOptions`.

It configures what a YAML cannot express statically (repeats = paths, the judge
filter under the judge's name, pooled Corr@k for several paths), records the
run's provenance in the task metadata (lm-eval writes it to the results file),
judges the continuations with the run's judge, and checks the chat rendering:
every prompt must end with its prefill, outside any reasoning block, or the
model would not continue the prefill.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, NoReturn

from lm_eval.api.filter import FilterEnsemble
from lm_eval.api.task import ConfigurableTask

from cc_tasks.c2_eval.options import RunOptions, task_options
from cc_tasks.c2_eval.rows import docs_dataset, run_provenance
from cc_tasks.c2_eval.utils import FILTER_NAME, JudgeFilter, pooled_corr, process_results
from cc_tasks.errors import CCError, exit_code, message
from cc_tasks.prefill import ChatTemplateError
from cc_tasks.provenance import PROVENANCE_KEY

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"

NO_CHAT_TEMPLATE = (
    "C²-EVAL prefills an open assistant turn, which needs the model's chat template: "
    "run lm-eval with --apply_chat_template (c2-eval adds it)"
)
NOT_A_PROMPT = (
    "C²-EVAL needs the chat rendered to one prompt string that ends with the prefill, but this "
    "backend sends chat messages: use hf, vllm or sglang, or local-completions with "
    "tokenizer=<HF tokenizer id> (tokenized_requests left on); chat-completions APIs start a new "
    "assistant turn instead of continuing the prefill"
)


class RunTask(ConfigurableTask):
    """lm-eval's ConfigurableTask with the run's :class:`RunOptions` (one object per run:
    options.py), built from the config's metadata before lm-eval sees the config; a project
    input error ends lm-eval's own command line with one line (:func:`fail`)."""

    family: ClassVar[str] = ""
    options: RunOptions

    def __init__(self, config: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        try:
            cfg = dict(config or {})
            cfg.pop("class", None)
            metadata = dict(cfg.get("metadata") or {})
            self.options = task_options(metadata)  # takes this run's private keys out
            cfg["metadata"] = metadata
            super().__init__(config=self._configure(cfg), **kwargs)
        except CCError as err:
            fail(err, self.family)

    def _configure(self, cfg: dict[str, Any]) -> dict[str, Any]:
        """The task's own config changes (a subclass's job)."""
        return cfg


class C2EvalTask(RunTask):
    """A C²-EVAL subtask: lm-eval's ConfigurableTask plus the run's :class:`RunOptions`."""

    family: ClassVar[str] = "c2_eval"

    def _configure(self, cfg: dict[str, Any]) -> dict[str, Any]:
        options = self.options
        judge = options.built_judge  # fail fast, before generation
        cfg["repeats"] = options.paths
        if options.paths > 1:
            # Explicit do_sample makes lm-eval's --use_cache skip these requests: identical
            # repeated requests would otherwise all get one cached sample on a resumed run.
            cfg["generation_kwargs"] = {**(cfg.get("generation_kwargs") or {}), "do_sample": True}
        # The judge filter as lm-eval records it in the results file; apply_filters runs it
        # with this run's judge and accounting (a config holds only JSON-like values).
        cfg["filter_list"] = [
            {
                "name": judge.name,
                "filter": [
                    {
                        "function": FILTER_NAME,
                        "judge": options.judge,
                        "judge_options": options.judge_options,
                        "task": cfg.get("task"),
                    }
                ],
            }
        ]
        pooled = options.paths > 1
        if pooled:  # pool paths across docs; lm-eval has no stderr for a custom aggregation
            cfg["metric_list"] = [
                {**m, "aggregation": pooled_corr} if m.get("metric") == "corr" else m
                for m in cfg.get("metric_list") or []
            ]
        base = cfg.get("process_results") or process_results
        cfg["process_results"] = functools.partial(base, strict=options.strict, pooled=pooled)
        # Provenance rides in the task metadata: lm-eval writes it to the results file's configs.
        cfg["metadata"] = {
            **(cfg.get("metadata") or {}),
            PROVENANCE_KEY: run_provenance(options, judge),
        }
        return cfg

    def download(self, dataset_kwargs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        """The docs of this subtask's k, from the run's options.

        Replaces lm-eval's ``custom_dataset`` call, which also logs a "Custom kwargs can be
        passed to --metadata" hint for every subtask of every run (eight times): the README
        says which metadata keys the tasks read.
        """
        k = (self.config.dataset_kwargs or {}).get("prefill_length")
        self.dataset = docs_dataset(self.options, k)

    def apply_filters(self) -> None:
        """Judge every continuation with the run's judge, counting into the run's accounting."""
        judge_filter = JudgeFilter(run=self.options, task=self.config.task)
        name = self.options.built_judge.name  # the filter_list name: lm-eval's Filter column
        FilterEnsemble(name=name, filters=[lambda: judge_filter]).apply(self.instances)

    def build_all_requests(self, **kwargs: Any) -> None:
        try:
            chat_template = kwargs.get("chat_template")
            if not kwargs.get("apply_chat_template") or chat_template is None:
                raise ChatTemplateError(NO_CHAT_TEMPLATE)
            _probe_chat_template(chat_template)
            super().build_all_requests(**kwargs)
            for instance in self._instances or ():
                check_rendered(instance.args[0], instance.doc)
        except CCError as err:
            fail(err, "c2_eval")
        record_run(self, kwargs.get("limit"))


def record_run(task: ConfigurableTask, limit: Any) -> None:
    """Add what is known only once requests are built to a task's provenance block: the final
    generation settings (after ``--gen_kwargs``), ``--limit`` and the rows actually evaluated."""
    metadata = task.config.metadata if isinstance(task.config.metadata, dict) else {}
    block = metadata.get(PROVENANCE_KEY)
    if not isinstance(block, dict):
        return
    block["generation"] = dict(task.config.generation_kwargs or {})
    block["limit"] = limit
    block["rows_evaluated"] = len({instance.doc_id for instance in task._instances or ()})


def fail(err: CCError, task_name: str) -> NoReturn:
    """Raise ``err``; but end lm-eval's own command line with one line instead of a traceback.

    Seam: lm-eval's command line prints a traceback for anything a task raises. When this
    process IS that command line (``lm-eval``, ``python -m lm_eval``), a C²-EVAL input error
    (no data offline, no --apply_chat_template, ...) ends it the way c2-eval would: one line
    and the project's exit code. Anywhere else (c2-eval, Python callers) it propagates.
    """
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if getattr(spec, "name", None) == "lm_eval.__main__" or Path(sys.argv[0]).name in (
        "lm-eval",
        "lm_eval",
    ):
        print(f"{task_name}: error: {message(err)}", file=sys.stderr)
        raise SystemExit(exit_code(err)) from None
    raise err


def _probe_chat_template(chat_template: Any) -> None:
    probe = [{"role": "user", "content": "How?"}, {"role": "assistant", "content": "Sure"}]
    try:
        rendered = chat_template(probe, add_generation_prompt=False)
    except Exception as err:
        raise ChatTemplateError(
            f"the model's chat template cannot render a prefilled assistant turn "
            f"({type(err).__name__}: {message(err, limit=200)}). "
            "Use a chat/instruct model, or give one a template: --model_args "
            "tokenizer=<a tokenizer with a chat template>, or save chat_template.jinja "
            "into the model folder"
        ) from None
    if not isinstance(rendered, str):
        raise ChatTemplateError(NOT_A_PROMPT)


def check_rendered(context: Any, doc: Mapping[str, Any]) -> None:
    """The rendered prompt must end with the prefill, outside an open reasoning block."""
    where = f"row {doc.get('row_id')} (k={doc.get('k')})"
    if not isinstance(context, str):
        raise ChatTemplateError(NOT_A_PROMPT)
    prefill = doc["prefill"]
    if not context.endswith(prefill):
        raise ChatTemplateError(
            f"{where}: the rendered prompt does not end with the prefill (it ends with "
            f"{context[-60:]!r}); the chat template closes or rewrites the assistant turn, so "
            "the model would not continue the prefill"
        )
    before = context[: len(context) - len(prefill)]
    if before.rfind(THINK_OPEN) > before.rfind(THINK_CLOSE):
        raise ChatTemplateError(
            f"{where}: the prefill lands inside an open {THINK_OPEN} reasoning block; switch "
            "thinking off so it lands in the answer: --model_args enable_thinking=False "
            "(hf, vllm) or chat_template_args={'enable_thinking': False}"
        )
