"""The over-refusal task class: lm-eval's ConfigurableTask plus the run's options.

It does what a YAML cannot: takes the run's options (shared with C²-EVAL subtasks
of the same run, :mod:`cc_tasks.c2_eval.options`), builds and checks the
over-refusal judge before any generation, names the judge filter after the judge
(lm-eval's Filter column), records provenance in the task metadata, reads its docs
from the chosen prompt source, and requires the chat template (an answer to a bare
prompt string says nothing about a chat model's refusals).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from lm_eval.api.filter import FilterEnsemble

from cc_tasks.c2_eval.options import RunOptions
from cc_tasks.c2_eval.task import RunTask, fail, record_run
from cc_tasks.c2_overrefusal import prompts
from cc_tasks.c2_overrefusal.utils import FILTER_NAME, RefusalJudgeFilter
from cc_tasks.errors import UsageError
from cc_tasks.judges import Judge
from cc_tasks.judges.card import judge_card
from cc_tasks.provenance import PROJECT, PROVENANCE_KEY, file_sha256, project_version

NO_CHAT_TEMPLATE = (
    "c2_overrefusal asks a chat model in its chat format: run lm-eval with "
    "--apply_chat_template (c2-eval adds it)"
)


def data_identity(source: str) -> dict[str, Any]:
    """What the prompts were: the shipped file or a local one (path, sha256), or XSTest's Hub id."""
    if source == prompts.XSTEST:
        return {"source": "hub", "id": prompts.XSTEST_HUB_ID, "license": "CC-BY-4.0"}
    path = prompts.PROMPTS_PATH if source == prompts.PROJECT else Path(source)
    return {"source": source if source == prompts.PROJECT else "file", "path": str(path),
            "sha256": file_sha256(path)}  # fmt: skip


def check_run(options: RunOptions) -> Judge:
    """Everything an over-refusal run needs except the model: the prompts (every row) and the
    judge (built and checked). Raises one clear line; ``c2-eval`` calls it before the model."""
    source = prompts.source_of(options.overrefusal_data)
    for subset in prompts.SUBSETS:
        prompts.docs(source, subset)
    return options.built_refusal_judge


class OverRefusalTask(RunTask):
    """One over-refusal subtask (``benign`` or ``contrast``)."""

    family: ClassVar[str] = "c2_overrefusal"

    def _configure(self, cfg: dict[str, Any]) -> dict[str, Any]:
        options = self.options
        self.source = prompts.source_of(options.overrefusal_data)
        judge = check_run(options)  # fail fast, before generation
        cfg["filter_list"] = [
            {"name": judge.name, "filter": [{"function": FILTER_NAME, "task": cfg.get("task")}]}
        ]
        block = {
            "project": {"name": PROJECT, "version": project_version()},
            "data": data_identity(self.source),
            "subset": (cfg.get("dataset_kwargs") or {}).get("subset"),
            "judge_card": judge_card(judge),
        }
        cfg["metadata"] = {**(cfg.get("metadata") or {}), PROVENANCE_KEY: block}
        return cfg

    def download(self, dataset_kwargs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        """The docs of this subtask from the run's prompt source (no ``custom_dataset`` call)."""
        import datasets

        subset = (self.config.dataset_kwargs or {}).get("subset")
        docs = prompts.docs(self.source, subset)
        self.dataset = datasets.DatasetDict({"test": datasets.Dataset.from_list(docs)})

    def apply_filters(self) -> None:
        """Judge every answer with the run's over-refusal judge, counting into its accounting."""
        judge_filter = RefusalJudgeFilter(run=self.options, task=self.config.task)
        name = self.options.built_refusal_judge.name
        FilterEnsemble(name=name, filters=[lambda: judge_filter]).apply(self.instances)

    def build_all_requests(self, **kwargs: Any) -> None:
        if not kwargs.get("apply_chat_template") or kwargs.get("chat_template") is None:
            fail(UsageError(NO_CHAT_TEMPLATE), "c2_overrefusal")
        super().build_all_requests(**kwargs)
        record_run(self, kwargs.get("limit"))
