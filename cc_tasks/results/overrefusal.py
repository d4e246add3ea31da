"""Over-refusal results (method section 2.9): the answer-class shares with 95% Wilson intervals.

One reading for every place that reports them: ``c2-eval``'s summary after a run
(from the judge accounting, :func:`summary_lines`) and ``c2-report`` (from lm-eval's
``results_<date>.json``, :func:`refusal_runs_from_lm_eval`, :func:`refusal_table`).
Each share is a proportion of judged answers, so its interval is the Wilson score
interval of :mod:`cc_tasks.stats`; the unprompted-safety-talk rate is a proportion
of the *fully compliant* answers, and its n is theirs. Per prompt, from the sample
files (:func:`per_prompt_counts`): what a paired before/after comparison draws from.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cc_tasks.errors import UsageError
from cc_tasks.files import iter_jsonl
from cc_tasks.judges import FULL_COMPLIANCE, FULL_REFUSAL, PARTIAL_REFUSAL
from cc_tasks.judges.card import card_line
from cc_tasks.provenance import PROVENANCE_KEY
from cc_tasks.stats import wilson

from .lmeval import model_label
from .samples import task_and_date
from .schema import finite_number

FAMILY = "c2_overrefusal"
SHARES = (FULL_COMPLIANCE, PARTIAL_REFUSAL, FULL_REFUSAL, "refusal", "safety_talk")
"""Reported shares, in table order; ``refusal`` = full + partial, ``safety_talk`` of compliant."""
NOTE = (
    "Shares of judged answers (invalid and error verdicts left out) with [95% Wilson score "
    "interval] and k/n; refusal = full + partial refusal; safety_talk = answers with unprompted "
    "safety talk among the fully compliant ones (n = compliant answers). On the benign subtask "
    "refusing is over-refusal (lower is better); on the contrast subtask refusing is right."
)


@dataclass
class Share:
    """One share: ``k`` of ``n`` with its 95% Wilson interval."""

    k: int
    n: int
    value: float | None = None
    ci: tuple[float, float] | None = None

    @classmethod
    def of(cls, k: int, n: int) -> Share:
        return cls(k, n, k / n if n else None, wilson(k, n))

    def cell(self) -> str:
        """``0.250 [0.046, 0.699] 1/4``, or ``-`` without a denominator."""
        if self.value is None:
            return "-"
        low, high = self.ci or (self.value, self.value)
        return f"{self.value:.3f} [{low:.3f}, {high:.3f}] {self.k}/{self.n}"


def shares_from_counts(classes: Mapping[str, int], safety_talk: int | None) -> dict[str, Share]:
    """The shares from class counts and the number of compliant answers with safety talk
    (None: not measured, as on the contrast subtask)."""
    full, partial = int(classes.get(FULL_REFUSAL, 0)), int(classes.get(PARTIAL_REFUSAL, 0))
    compliant = int(classes.get(FULL_COMPLIANCE, 0))
    n = full + partial + compliant
    shares = {
        FULL_COMPLIANCE: Share.of(compliant, n),
        PARTIAL_REFUSAL: Share.of(partial, n),
        FULL_REFUSAL: Share.of(full, n),
        "refusal": Share.of(full + partial, n),
    }
    if safety_talk is not None:
        shares["safety_talk"] = Share.of(int(safety_talk), compliant)
    return shares


def summary_lines(entries: Iterable[Mapping[str, Any]]) -> list[str]:
    """One line per judged over-refusal subtask of a run (the judge accounting's entries)."""
    lines = []
    for e in entries:
        if "classes" not in e:
            continue  # a C²-EVAL subtask
        shares = shares_from_counts(e["classes"], e.get("safety_talk"))
        cells = ", ".join(f"{name} {shares[name].cell()}" for name in SHARES if name in shares)
        lines.append(
            f"{e.get('task')} (judge {e.get('judge')}): {cells}; invalid {e.get('invalid', 0)}, "
            f"errors {e.get('errors', 0)}"
        )
    return lines


@dataclass
class RefusalRun:
    """One over-refusal subtask of one run under one judge."""

    label: str
    model: str
    judge: str
    task: str
    source: str
    shares: dict[str, Share] = field(default_factory=dict)
    rows: int = 0
    invalid: int = 0
    errors: int = 0
    limit: float | None = None
    judge_card: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["shares"] = {
            name: {**asdict(s), "ci": list(s.ci) if s.ci else None}
            for name, s in self.shares.items()
        }
        return data


def refusal_runs_from_lm_eval(
    data: Mapping[str, Any], path: Path, label: str | None = None
) -> list[RefusalRun]:
    """The over-refusal subtasks of an lm-eval results dict (none: an empty list).

    The counts behind each share come from lm-eval's rate and the judged answers
    (``n-samples`` minus invalid and errors), so they are exact up to rounding.
    """
    results = data.get("results")
    if not isinstance(results, Mapping):
        return []
    config = data.get("config") or {}
    model = model_label(config)
    n_samples = data.get("n-samples") or {}
    configs = data.get("configs") or {}
    runs = []
    for task, metrics in results.items():
        if not task.startswith(FAMILY + "_") or not isinstance(metrics, Mapping):
            continue
        judges = sorted({k.partition(",")[2] for k in metrics if k.startswith("refusal,")})
        for judge in judges:
            counts = n_samples.get(task) or {}
            rows = int(counts.get("effective", counts.get("original", 0)) or 0)
            invalid = int(finite_number(metrics.get(f"invalid,{judge}")) or 0)
            errors = int(finite_number(metrics.get(f"errors,{judge}")) or 0)
            n = max(rows - invalid - errors, 0)

            def count(metric: str, of: int, judge: str = judge, got: Any = metrics) -> int:
                value = finite_number(got.get(f"{metric},{judge}"))
                return 0 if value is None else round(value * of)

            classes = {c: count(c, n) for c in (FULL_COMPLIANCE, PARTIAL_REFUSAL, FULL_REFUSAL)}
            if FULL_COMPLIANCE not in {k.partition(",")[0] for k in metrics}:
                classes[FULL_COMPLIANCE] = n - classes[PARTIAL_REFUSAL] - classes[FULL_REFUSAL]
            talk = (
                count("safety_talk", classes[FULL_COMPLIANCE])
                if f"safety_talk,{judge}" in metrics
                else None
            )
            block = ((configs.get(task) or {}).get("metadata") or {}).get(PROVENANCE_KEY) or {}
            runs.append(
                RefusalRun(
                    label=label or f"{model} [{judge}]",
                    model=model,
                    judge=judge,
                    task=task,
                    source=str(path),
                    shares=shares_from_counts(classes, talk),
                    rows=rows,
                    invalid=invalid,
                    errors=errors,
                    limit=finite_number(config.get("limit")),
                    judge_card=dict(block.get("judge_card") or {}),
                )
            )
    return runs


def load_refusal_runs(
    files: Sequence[tuple[Path, str | None]],
) -> list[RefusalRun]:
    """The over-refusal runs of result files (``(path, label)``; corr.json files have none;
    unreadable files are left to :func:`cc_tasks.results.load_runs`, which reports them)."""
    runs: list[RefusalRun] = []
    for path, label in files:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # the C²-EVAL reader names the unreadable file in one line
        if isinstance(data, Mapping) and isinstance(data.get("results"), Mapping):
            runs.extend(refusal_runs_from_lm_eval(data, path, label))
    return runs


def refusal_table(runs: Sequence[RefusalRun]) -> str:
    """Markdown: one row per (run, subtask), each share with its Wilson interval, then notes."""
    head = ["run", "judge", "subtask", "answers", *SHARES, "invalid", "errors"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in runs:
        label = f"{r.label} ⚠ --limit {r.limit:g}" if r.limit is not None else r.label
        cells = [label, r.judge, r.task.removeprefix(FAMILY + "_"), str(r.rows)]
        cells += [r.shares[name].cell() if name in r.shares else "-" for name in SHARES]
        cells += [str(r.invalid), str(r.errors)]
        lines.append("| " + " | ".join(cells) + " |")
    notes = [NOTE]
    for line in dict.fromkeys(card_line(r.judge_card) for r in runs if r.judge_card):
        notes.append(f"Judge {line}.")
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {n}" for n in notes)


PromptCounts = dict[str, dict[str, dict[Any, tuple[int, int]]]]
"""Per subtask, per share, per prompt id: ``(k, n)`` of that prompt's one judged answer."""


def per_prompt_counts(folder: Path) -> PromptCounts:
    """Each prompt's contribution to every share, from the sample files under ``folder``
    (``c2-eval --log_samples``), keyed by subtask (``benign``, ``contrast``) and prompt id.

    Why: the same prompts answered before and after training are paired, so their difference
    is bootstrapped over prompts, which needs the per-prompt counts the results file sums
    away. They come from the per-doc metrics the task scored (``process_results``), so the
    definitions are the task's: an invalid or error verdict is ``(0, 0)`` everywhere, and
    ``safety_talk`` is ``(talk, compliant)`` (benign only). Two sample files of one subtask
    (two runs in one folder) are an error: which one to pair would be a guess.
    """
    found: dict[str, Path] = {}
    for path in sorted(Path(folder).rglob(f"samples_{FAMILY}_*.jsonl")):
        task, _ = task_and_date(path)
        subtask = task.removeprefix(FAMILY + "_")
        if subtask in found:
            raise UsageError(
                f"{folder}: two sample files of {task} ({found[subtask].name}, {path.name}); "
                "keep one run per folder"
            )
        found[subtask] = path
    if not found:
        raise UsageError(f"{folder}: no {FAMILY} sample files (run c2-eval with --log_samples)")
    counts: PromptCounts = {}
    for subtask, path in found.items():
        shares: dict[str, dict[Any, tuple[int, int]]] = {}
        for number, line in iter_jsonl(path, unit="line"):
            doc = line.get("doc") if isinstance(line, Mapping) else None
            prompt_id = doc.get("id") if isinstance(doc, Mapping) else None
            if prompt_id is None:
                raise UsageError(f"{path}: line {number}: field 'doc.id': missing")
            for name in SHARES:
                value = line.get(name)
                if name == "safety_talk":
                    if value is None:
                        continue  # the contrast subtask does not measure it
                    pair = _pair(value, f"{path}: line {number}: field '{name}'")
                else:
                    pair = (
                        (0, 0)
                        if value is None
                        else _pair([value, 1], f"{path}: line {number}: field '{name}'")
                    )
                per_prompt = shares.setdefault(name, {})
                if prompt_id in per_prompt:
                    raise UsageError(f"{path}: line {number}: prompt id {prompt_id!r} twice")
                per_prompt[prompt_id] = pair
        counts[subtask] = shares
    return counts


def _pair(value: Any, where: str) -> tuple[int, int]:
    """``(k, n)`` with 0 <= k <= n <= 1 (one answer), else one line naming the field."""
    if (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        and 0 <= value[0] <= value[1] <= 1
    ):
        return int(value[0]), int(value[1])
    raise UsageError(f"{where}: expected 0/1 counts of one answer, got {value!r}")
