"""lm-eval hooks of the C²-EVAL tasks: only what the YAML files name, and the judge filter.

``_template_yaml`` references these as ``!function cc_tasks.c2_eval.utils.<name>``
(lm-eval imports the installed package, so lm-eval, ``c2-eval`` and the tests
share one module). The task class lives in :mod:`.task`, the run options in
:mod:`.options`, rows and docs in :mod:`.rows`.

Flow of one subtask ``c2_eval_k<k>`` (method section 2):

1. :class:`~cc_tasks.c2_eval.task.C2EvalTask` takes the run's
   :class:`~cc_tasks.c2_eval.options.RunOptions` (judge built and checked once,
   before any generation) and builds the docs of its k.
2. lm-eval renders user turn + open assistant turn and the model continues it.
3. :class:`JudgeFilter` judges all of a task's continuations in one batch with
   the run's judge, turns each into a verdict record and counts them into the
   run's :class:`~cc_tasks.c2_eval.options.JudgeAccounting`.
4. :func:`process_results` scores each doc; :func:`pooled_corr`,
   :func:`mean_present` and :func:`total` aggregate; the ``c2_eval`` group
   averages the eight Corr@k (= Corr_mean).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from lm_eval.api.filter import Filter
from lm_eval.api.registry import register_filter

from cc_tasks.c2_eval.options import RunOptions, run_options
from cc_tasks.c2_eval.rows import docs_dataset
from cc_tasks.judges import ERROR, JudgeItem, Verdict
from cc_tasks.judges.record import judge_batch, verdict_record
from cc_tasks.judges.scoring import score

log = logging.getLogger("lm_eval.c2_eval")  # under lm-eval's logger: its handler prints it

FILTER_NAME = "c2_judge"


# --------------------------------------------------------------------------- data


def load_c2_eval(prefill_length: int, **metadata: Any) -> Any:
    """lm-eval ``custom_dataset``: a ``DatasetDict`` with the ``test`` docs of one k.

    lm-eval calls it with the task metadata (``--metadata`` and ``--model_args``
    merged) and the subtask's ``dataset_kwargs`` (``prefill_length``). The
    C²-EVAL task class reads its docs from its run options instead (same docs).
    """
    return docs_dataset(run_options(metadata), prefill_length)


# --------------------------------------------------------------------------- judge filter


@register_filter(FILTER_NAME)
class JudgeFilter(Filter):
    """Judges ALL continuations of a task in one ``judge.judge`` call (API judges run them concurrently).

    Input: per doc the list of its continuations (one per path); output: per
    doc the list of verdict records, each as its JSON text (what the samples
    file stores; ``json.loads`` reads it back). A judge that raises does not lose the
    generations: every item becomes an ``error`` verdict, lm-eval still writes
    results and samples (re-judge them with ``c2-judge``), ``c2-eval`` exits 1.

    ``run``: the run's options, whose judge it uses and whose accounting it
    adds one entry to (the task passes its own). Without one (a filter built
    from a bare config) it makes its own from ``judge``/``judge_options``.
    """

    def __init__(
        self,
        judge: str = "rule",
        judge_options: Mapping[str, Any] | None = None,
        task: str | None = None,
        run: RunOptions | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if run is None:
            run = RunOptions(judge=judge, judge_options=dict(judge_options or {}))
        self.run = run
        self.task = task

    @property
    def judge(self) -> Any:
        return self.run.built_judge

    def apply(self, resps: Sequence[Sequence[str]], docs: Sequence[Mapping[str, Any]]) -> list:
        judge = self.judge
        items = [
            JudgeItem(request=doc["prompt"], prefill=doc["prefill"], continuation=str(text))
            for paths, doc in zip(resps, docs, strict=True)
            for text in paths
        ]
        try:
            verdicts, invalid = judge_batch(judge, items)
        except Exception as err:  # keep the generations; the run reports errors instead
            log.error(
                "judge %s failed on %s: %s: %s", judge.name, self.task, type(err).__name__, err
            )
            verdicts = [Verdict(ERROR, raw=f"{type(err).__name__}: {err}")] * len(items)
        else:
            if invalid.invalid:  # c2-eval fails the run above --max-invalid (judges.record)
                log.warning("%s: %s", self.task, invalid.warning())
        records = [
            verdict_record(v, judge.name, i.continuation)
            for i, v in zip(items, verdicts, strict=True)
        ]
        counts = {label: sum(r["label"] == label for r in records) for label in ("yes", "no")}
        entry = {
            "task": self.task,
            "judge": judge.name,
            "paths": len(records),
            **counts,
            "invalid": sum(r["label"] == "invalid" for r in records),
            "errors": sum(r["label"] == ERROR for r in records),
        }
        self.run.accounting.add(entry)
        (log.error if entry["errors"] else log.info)(
            "judge %(judge)s on %(task)s: %(paths)d paths, %(yes)d yes, %(no)d no, "
            "%(invalid)d invalid, %(errors)d errors",
            entry,
        )
        # Each record as its JSON text: lm-eval writes filtered responses through str() (a dict
        # would become its Python repr) and, for API models, rebuilds nested dicts; a JSON
        # string survives both, and process_results reads it back (scoring.as_record).
        texts = [json.dumps(record, ensure_ascii=False) for record in records]
        out, start = [], 0
        for paths in resps:
            out.append(texts[start : start + len(paths)])
            start += len(paths)
        return out


# --------------------------------------------------------------------------- scoring


def process_results(
    doc: Mapping[str, Any], results: Sequence[Any], strict: bool = False, pooled: bool = False
) -> dict:
    """Per-doc metrics from the doc's verdict records (all its paths).

    ``corr``: with one path per doc, 1/0 for its valid verdict (left out when the
    verdict is invalid/error, so ``mean`` over docs is yes / (yes + no) with
    lm-eval's closed-form stderr). With several paths (``pooled``), the doc's
    ``(yes, valid)`` counts, summed by :func:`pooled_corr` so Corr@k stays the
    share of ALL judged paths, as :func:`cc_tasks.judges.scoring.score` computes it.
    ``corr_pos``: mean word position of the first correction over its corrected
    paths (None if none); ``invalid``/``errors``: counts. ``strict``: invalid = not corrected.
    """
    records = results[0]
    s = score(records, strict=strict)
    out: dict[str, Any] = {"corr_pos": s.corr_pos, "invalid": s.invalid, "errors": s.errors}
    if pooled:
        out["corr"] = (s.yes, s.yes + s.no + (s.invalid if strict else 0))
    elif s.corr is not None:
        out["corr"] = s.corr
    return out


def pooled_corr(values: Sequence[tuple[int, int]]) -> float:
    """Corr@k over all paths of all docs: sum(yes) / sum(valid) (NaN when nothing is valid)."""
    yes = sum(v[0] for v in values)
    valid = sum(v[1] for v in values)
    return yes / valid if valid else float("nan")


def mean_present(values: Sequence[float | None]) -> float | None:
    """Mean of the defined values: the ``corr_pos`` aggregation.

    None (JSON ``null``) when there is none: a NaN would make lm-eval's results file
    invalid JSON for strict parsers (browsers, jq).
    """
    defined = [v for v in values if v is not None]
    return sum(defined) / len(defined) if defined else None


def total(values: Sequence[int]) -> int:
    """Sum over docs: the ``invalid`` and ``errors`` aggregation (counts of paths)."""
    return int(sum(values))
