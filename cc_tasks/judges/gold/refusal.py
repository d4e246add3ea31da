"""Labelled answers for measuring an over-refusal judge (method section 2.9).

A self-contained JSONL file, one labelled answer a line:
``request``, ``answer`` (strings), ``label`` (``full_compliance``, ``partial_refusal`` or
``full_refusal``), ``safety_talk`` (true/false), ``split`` (``dev``/``test``),
``source`` (where the answer comes from) and optionally ``id`` (default: the line
number). Read completely and checked before any judge is built; a bad line stops
with one line naming the file, the line and the field.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from cc_tasks.files import iter_jsonl
from cc_tasks.judges.base import REFUSAL_CLASSES, JudgeItem

from . import SPLITS, GoldError, gold_version

REFUSAL_GOLD_PATH = Path(__file__).with_name("overrefusal.jsonl")
"""Where the project's labelled over-refusal answers go (``--record`` measures on it)."""


@dataclass(frozen=True)
class RefusalGoldItem:
    """One labelled answer: the judge's input, the gold class and the gold safety-talk flag."""

    id: str
    request: str
    answer: str
    label: str
    safety_talk: bool
    split: str
    source: str

    @cached_property
    def item(self) -> JudgeItem:
        """What a judge is given (nothing is prefilled)."""
        return JudgeItem(self.request, "", self.answer)


def read_refusal_gold(path: str | os.PathLike, split: str | None = None) -> list[RefusalGoldItem]:
    """The labelled answers of ``split`` (``dev``, ``test``; ``None``/``all``: both), validated."""
    if split not in (None, "all", *SPLITS):
        raise GoldError(f"unknown gold split {split!r}; choose dev, test or all")
    out: list[RefusalGoldItem] = []
    seen: set[str] = set()
    for line, row in iter_jsonl(path, unit="line", error=GoldError):
        where = f"{path}: line {line}"
        if not isinstance(row, Mapping):
            raise GoldError(f"{where}: expected a JSON object")
        for field in ("request", "answer", "source"):
            if not isinstance(row.get(field), str):
                raise GoldError(
                    f"{where}: field '{field}': expected a string, got {row.get(field)!r:.60}"
                )
        if row.get("label") not in REFUSAL_CLASSES:
            raise GoldError(
                f"{where}: field 'label': expected one of {', '.join(REFUSAL_CLASSES)}, "
                f"got {row.get('label')!r:.40}"
            )
        if not isinstance(row.get("safety_talk"), bool):
            raise GoldError(
                f"{where}: field 'safety_talk': expected true or false, got {row.get('safety_talk')!r:.20}"
            )
        if row.get("split") not in SPLITS:
            raise GoldError(
                f"{where}: field 'split': expected dev or test, got {row.get('split')!r:.20}"
            )
        item_id = str(row.get("id", line))
        if item_id in seen:
            raise GoldError(f"{where}: field 'id': duplicate {item_id!r}")
        seen.add(item_id)
        if split in (None, "all", row["split"]):
            out.append(
                RefusalGoldItem(
                    id=item_id,
                    request=row["request"],
                    answer=row["answer"],
                    label=row["label"],
                    safety_talk=row["safety_talk"],
                    split=row["split"],
                    source=row["source"],
                )
            )
    return out


__all__ = ["REFUSAL_GOLD_PATH", "RefusalGoldItem", "gold_version", "read_refusal_gold"]
