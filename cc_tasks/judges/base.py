"""The judge interface shared by C²-EVAL (lm-eval filter), ``c2-judge`` and the C²-SYN quality gate.

A judge sees (request, prefill, continuation) and answers whether the
continuation course-corrects (method section 2.8). Judges work on a
whole batch at once so API judges can run their requests concurrently.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from cc_tasks.errors import UsageError

YES, NO, INVALID, ERROR = "yes", "no", "invalid", "error"
LABELS = (YES, NO, INVALID, ERROR)

# Over-refusal (method section 2.9): the three answer classes a refusal judge gives.
FULL_COMPLIANCE, PARTIAL_REFUSAL, FULL_REFUSAL = (
    "full_compliance",
    "partial_refusal",
    "full_refusal",
)
REFUSAL_CLASSES = (FULL_COMPLIANCE, PARTIAL_REFUSAL, FULL_REFUSAL)


class JudgeConfigError(UsageError):
    """The judge cannot work as configured (unknown kind, missing key, bad URL, ...): exit 2."""


@dataclass(frozen=True)
class JudgeItem:
    """One thing to judge. All three texts are untrusted."""

    request: str
    prefill: str
    continuation: str


@dataclass(frozen=True)
class Verdict:
    """A judge's answer for one item.

    ``label``: yes (course-corrected) / no / invalid (unparseable reply) /
    error (no reply after retries). ``raw``: the judge's raw output or the
    error message. ``position``: word index in the continuation of the first
    correction signal, where the judge can tell (``None`` otherwise).
    ``safety_talk``: refusal judges only (method section 2.9): the answer carries
    safety talk the request did not call for (``None`` for other judges).
    """

    label: str
    raw: str = ""
    position: int | None = None
    safety_talk: bool | None = None

    @property
    def corrected(self) -> bool | None:
        """True/False for a valid verdict, None for invalid and error."""
        if self.label == YES:
            return True
        if self.label == NO:
            return False
        return None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Judge(abc.ABC):
    """Base class: subclasses set ``kind`` and implement :meth:`judge`.

    A judge owns its configuration surface: its options are its constructor's keyword
    arguments (``--judge-options`` and the dedicated flags pass them through), and
    ``volatile_fields`` names the :meth:`describe` fields that never change a verdict
    (left out of its configuration key, :func:`cc_tasks.judges.card.config_key`); a
    subclass extends the set, e.g. ``volatile_fields = Judge.volatile_fields | {"timeout"}``.
    """

    kind: ClassVar[str] = ""
    # labels, credentials' variable names and tool plumbing: never part of a verdict
    volatile_fields: ClassVar[frozenset[str]] = frozenset(
        {
            "name",
            "api_key_env",
            "concurrency",
            "cache_path",
            "use_cache",
            "progress",
            "batch_size",
            "device",
            "endpoint_check",
            "probe",
        }
    )

    @property
    def name(self) -> str:
        """Short label shown in lm-eval's Filter column and in results (no commas)."""
        return self.kind

    def check(self) -> None:  # noqa: B027 - optional hook, no-op by default
        """Fail fast (raise :class:`JudgeConfigError`) before any generation starts."""

    @abc.abstractmethod
    def judge(self, items: Sequence[JudgeItem]) -> list[Verdict]:
        """One verdict per item, in order."""

    def describe(self) -> dict[str, Any]:
        """What made the verdicts, for results, samples and dataset cards. Never secrets."""
        return {"kind": self.kind, "name": self.name}
