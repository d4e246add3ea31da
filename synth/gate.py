"""Quality gate (beyond the paper): judge the "chosen" side of every request.

A small or unaligned synthesiser can write an r0 that complies with the
harmful request, or r1..r4 whose text after the trigger goes on with the harm;
those would then be trained as *preferred* answers. The gate asks any judge of
the eval side (:func:`cc_tasks.judges.make_judge`) the C²-EVAL question
"does this continuation course-correct?":

* r0 (must refuse): ``JudgeItem(request, prefill="", continuation=r0)``. With
  an empty prefill a refusal from the first word *is* a correction at position
  0, so "yes" means "refused" (the ``rule`` judge finds refusal/judgement
  phrases such as "I cannot", "illegal"; an LLM judge reads the definition).
* r1..r4 (must course-correct): ``JudgeItem(request, prefill=opener + p_i +
  trigger, continuation=model text after the trigger)``. The trigger itself is
  in the prefill, so the verdict is about whether the model *followed through*.

A request passes when all five verdicts are "yes"; "no", "invalid" and
"error" fail it. ``c2-syn pairs --gate-action`` then drops failing requests or
keeps them with ``gate = "failed"``.

The gate is configured with the judge flags every tool shares
(:mod:`cc_tasks.judges.settings`; ``--judge`` turns it on) and checks its
verdicts like ``c2-eval`` and ``c2-judge`` do (:mod:`cc_tasks.judges.record`):
invalid verdicts are reported with an example reply, and more than
``--max-invalid`` of them in a chunk (or any judge error, unless
``--allow-judge-errors``) stops the run before that chunk is written, so a
broken judge cannot silently drop every request; a rerun asks again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cc_tasks.errors import RunFailure
from cc_tasks.judges import ERROR, Judge, JudgeItem
from cc_tasks.judges.record import InvalidPolicy, judge_batch, verdict_record

GATED = 5  # r0..r4; r5 (the harmful response) is the rejected end of the ranking
RAW_CHARS = 200  # of each judge reply kept in a gate record
log = logging.getLogger(__name__)


@dataclass
class Gate:
    """A judge and the checks its verdicts must pass before a chunk is written."""

    judge: Judge
    policy: InvalidPolicy = field(default_factory=InvalidPolicy)
    allow_errors: bool = False

    def describe(self) -> dict[str, Any]:
        """The judge's description (the manifest's ``gate``: part of the run's identity)."""
        return self.judge.describe()


def gate_items(record: Mapping[str, Any]) -> list[JudgeItem]:
    """The five judge items of one generated request (r0, then r1..r4)."""
    prompt = record["prompt"]
    items = [JudgeItem(request=prompt, prefill="", continuation=record["responses"][0])]
    for prefix, cont in zip(record["assistant_prefixes"], record["continuations"][1:], strict=True):
        items.append(JudgeItem(request=prompt, prefill=prefix, continuation=cont))
    return items


def judge_records(gate: Gate | Judge, records: Sequence[dict[str, Any]]) -> None:
    """Judge all generated records in one batch; store the verdicts under ``record["gate"]``.

    Raises :class:`~cc_tasks.errors.RunFailure` (before anything is stored) when the
    verdicts fail the gate's checks (see the module docstring).
    """
    if not isinstance(gate, Gate):
        gate = Gate(gate)
    judge = gate.judge
    todo = [r for r in records if not r.get("skipped")]
    items = [item for r in todo for item in gate_items(r)]
    if not items:
        return
    verdicts, invalid = judge_batch(judge, items)
    errors = [v for v in verdicts if v.label == ERROR]
    if errors and not gate.allow_errors:
        raise RunFailure(
            f"quality gate: judge {judge.name}: {len(errors)} of {len(verdicts)} judgments "
            f"failed (e.g. {errors[0].raw[:200]}); the chunk was not written: rerun when the "
            "judge works, or pass --allow-judge-errors to let those requests fail the gate"
        )
    gate.policy.check(invalid)  # too many invalid verdicts: RunFailure, chunk not written
    if invalid.invalid:
        log.warning("quality gate: %s", invalid.warning())
    for i, record in enumerate(todo):
        record["gate"] = [
            verdict_record(v, judge.name, raw_chars=RAW_CHARS)
            for v in verdicts[i * GATED : (i + 1) * GATED]
        ]


def gate_passed(record: Mapping[str, Any]) -> bool | None:
    """True/False when the record was judged, None when it was not."""
    gate = record.get("gate")
    if not gate:
        return None
    return all(v["corrected"] is True for v in gate)


def gate_stats(records: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """Rates for the card and the summary: r0 refusal, r1..r4 correction, requests passing."""
    judged = [r for r in records if r.get("gate")]
    if not judged:
        return None
    n = len(judged)
    per_rank = [sum(r["gate"][k]["corrected"] is True for r in judged) / n for k in range(GATED)]
    return {
        "judged_requests": n,
        "r0_refusal_rate": round(per_rank[0], 4),
        "correction_rate": {f"r{k}": round(per_rank[k], 4) for k in range(1, GATED)},
        "pass_rate": round(sum(bool(gate_passed(r)) for r in judged) / n, 4),
        "invalid_or_error_verdicts": sum(
            v["label"] in ("invalid", "error") for r in judged for v in r["gate"]
        ),
    }
