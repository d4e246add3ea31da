"""What every caller of a judge does with its verdicts: one record shape, one invalid-verdict check.

``c2-eval``'s judge filter, ``c2-judge`` and the C²-SYN quality gate all judge a
batch, keep a :func:`verdict_record` per continuation and then apply the same
check to the ``invalid`` verdicts (replies that are not a clear yes or no):

* **loud**: :func:`judge_batch` returns an :class:`InvalidReport`, whose
  :meth:`~InvalidReport.warning` gives the count, the share and one example raw
  reply (escaped, truncated); every caller prints it when there is any invalid
  verdict;
* **failing**: more than ``max_invalid`` (default 5%, ``--max-invalid``) of a
  run's verdicts invalid makes it fail (exit 1) unless ``--allow-invalid``
  (:class:`InvalidPolicy`). A judge that cannot answer in the expected format
  (wrong model, a reasoning model spending its token budget, a broken server)
  otherwise yields a Corr@k over a handful of lucky replies, or "n/a";
* **retried**: invalid verdicts are never cached (:mod:`.cache`), so a rerun
  with a fixed judge asks again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cc_tasks.errors import RunFailure

from .base import INVALID, Judge, JudgeConfigError, JudgeItem, Verdict

DEFAULT_MAX_INVALID = 0.05
EXAMPLE_CHARS = 80


def verdict_record(
    verdict: Verdict,
    judge: str,
    continuation: str | None = None,
    *,
    raw_chars: int | None = None,
) -> dict[str, Any]:
    """The plain-JSON record kept per judged continuation (lm-eval ``filtered_resps``, c2-judge
    samples, the gate): ``continuation`` (when given), ``label``, ``corrected``, ``position``,
    ``raw`` (cut to ``raw_chars``) and the ``judge`` name."""
    record: dict[str, Any] = {} if continuation is None else {"continuation": continuation}
    raw = verdict.raw or ""
    record.update(
        label=verdict.label,
        corrected=verdict.corrected,
        position=verdict.position,
        raw=raw if raw_chars is None else raw[:raw_chars],
        judge=judge,
    )
    return record


def example(text: str, limit: int = EXAMPLE_CHARS) -> str:
    """``text`` as a one-line, escaped, truncated literal for a message (model output is untrusted)."""
    shown = repr(text[:limit])
    return shown + ("..." if len(text) > limit else "")


@dataclass(frozen=True)
class InvalidReport:
    """How many of a batch's verdicts are invalid, with one raw reply to show."""

    judge: str
    invalid: int
    total: int
    example: str | None = None

    @property
    def rate(self) -> float:
        return self.invalid / self.total if self.total else 0.0

    def warning(self) -> str:
        """One line: count, share and an example reply (empty string when nothing is invalid)."""
        if not self.invalid:
            return ""
        shown = "" if self.example is None else f"; e.g. the reply {example(self.example)}"
        return (
            f"judge {self.judge}: {self.invalid} of {self.total} verdicts invalid "
            f"({100 * self.rate:.1f}%): the reply was not a clear yes or no{shown}"
        )

    def __add__(self, other: InvalidReport) -> InvalidReport:
        judges = self.judge if self.judge == other.judge else f"{self.judge}+{other.judge}"
        return InvalidReport(
            judges,
            self.invalid + other.invalid,
            self.total + other.total,
            self.example if self.example is not None else other.example,
        )


def invalid_report(judge: str, verdicts: Iterable[Verdict | Mapping[str, Any]]) -> InvalidReport:
    """Count the invalid verdicts (or verdict records) and keep the first one's raw reply."""
    invalid = total = 0
    first: str | None = None
    for v in verdicts:
        label, raw = (v.label, v.raw) if isinstance(v, Verdict) else (v["label"], v.get("raw"))
        total += 1
        if label == INVALID:
            invalid += 1
            if first is None:
                first = str(raw or "")
    return InvalidReport(judge, invalid, total, first)


@dataclass(frozen=True)
class InvalidPolicy:
    """When invalid verdicts fail a run: more than ``max_rate`` of them, unless ``allow``."""

    max_rate: float = DEFAULT_MAX_INVALID
    allow: bool = False

    def __post_init__(self) -> None:
        rate = self.max_rate
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
            raise JudgeConfigError(
                f"--max-invalid: expected a share between 0 and 1 (e.g. 0.05), got {rate!r}"
            )

    def exceeded(self, report: InvalidReport) -> bool:
        return not self.allow and report.total > 0 and report.rate > self.max_rate

    def failure(self, report: InvalidReport) -> str | None:
        """The one-line reason the run fails, or None when the invalid share is acceptable."""
        if not self.exceeded(report):
            return None
        return (
            f"{report.warning()}; more than --max-invalid {self.max_rate:g} "
            f"({100 * self.max_rate:g}%) of the verdicts are invalid: check the judge model and "
            "endpoint (invalid verdicts are not cached, a rerun asks again) or pass --allow-invalid"
        )

    def check(self, report: InvalidReport) -> None:
        """Raise :class:`~cc_tasks.errors.RunFailure` (exit 1) when the share is too high."""
        message = self.failure(report)
        if message is not None:
            raise RunFailure(message)


def judge_batch(judge: Judge, items: Sequence[JudgeItem]) -> tuple[list[Verdict], InvalidReport]:
    """``judge.judge(items)``, checked to give one verdict per item, and its invalid report."""
    verdicts = list(judge.judge(items))
    if len(verdicts) != len(items):
        raise RunFailure(
            f"judge {judge.name} returned {len(verdicts)} verdicts for {len(items)} items"
        )
    return verdicts, invalid_report(judge.name, verdicts)


__all__ = [
    "DEFAULT_MAX_INVALID",
    "InvalidPolicy",
    "InvalidReport",
    "example",
    "invalid_report",
    "judge_batch",
    "verdict_record",
]
