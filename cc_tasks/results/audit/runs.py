"""The audited runs: every judged path of a run, read from its lm-eval sample files.

The shared vocabulary of the audit (its error, the two labels) lives here too, since every
other module of the package reads runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cc_tasks.errors import UsageError

from ..samples import find_sample_files, sample_verdicts

LABELS = ("yes", "no")


class AuditError(UsageError):
    """An audit input is unusable (one line naming file, line and field; exit 2)."""


@dataclass(frozen=True)
class AuditPath:
    """One judged path of a run: where it is, what was shown, and the judge's verdict."""

    k: int
    row: str
    path: int
    request: str
    prefill: str
    continuation: str
    verdict: str

    @property
    def key(self) -> tuple[int, str, int]:
        return (self.k, self.row, self.path)


@dataclass
class AuditRun:
    """One run of one task family: every judged path, by (k, row, path)."""

    name: str
    folder: Path
    family: str
    judges: list[str]
    paths: dict[tuple[int, str, int], AuditPath] = field(default_factory=dict)

    @property
    def ks(self) -> list[int]:
        return sorted({key[0] for key in self.paths})

    def at(self, k: int) -> list[AuditPath]:
        return [p for key, p in sorted(self.paths.items()) if key[0] == k]


def digest(text: str) -> str:
    """Short content hash: the key notices a run whose continuations changed since prepare."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def load_runs(args: Sequence[str]) -> list[AuditRun]:
    """The judged runs below each argument (one per run folder and task family)."""
    runs: dict[tuple[str, str], AuditRun] = {}
    for arg in args:
        for sf in find_sample_files([arg], need_row_id=True):
            folder = sf.path.resolve().parent
            unit = runs.get((str(folder), sf.family))
            if unit is None:
                unit = AuditRun(sf.run, folder, sf.family, [])
                runs[(str(folder), sf.family)] = unit
            for sample in sf.samples:
                records = sample_verdicts(sample, str(sf.path))
                for index, (text, record) in enumerate(
                    zip(sample.continuations, records, strict=True)
                ):
                    key = (sample.k, str(sample.row_id), index)
                    if key in unit.paths:
                        raise AuditError(
                            f"{sf.path}: line {sample.line}: path (k={key[0]}, row_id={key[1]}, "
                            f"path={index}) appears twice in run {sf.run}"
                        )
                    judge = str(record.get("judge", "?"))
                    if judge not in unit.judges:
                        unit.judges.append(judge)
                    unit.paths[key] = AuditPath(
                        sample.k,
                        key[1],
                        index,
                        sample.prompt,
                        sample.prefill,
                        text,
                        str(record.get("label")),
                    )
    found = list(runs.values())
    names = [r.name for r in found]
    for r in found:
        if r.family != "c2_eval" or names.count(r.name) > 1:
            r.name = f"{r.name} {r.family}" if r.family != "c2_eval" else f"{r.name} ({r.folder})"
    return found
