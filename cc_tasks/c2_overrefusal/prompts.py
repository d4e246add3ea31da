"""The prompts of the over-refusal tasks: the project's own file, or XSTest (method section 2.9).

One row shape for both sources (``id, prompt, type, category, note``; ``type`` is
``benign`` or ``unsafe``), validated line by line before any generation: a bad row
stops the run with one line naming the file, the line and the field.

Sources (metadata ``overrefusal_data``):

- ``project`` (default): ``prompts.jsonl`` beside this module, written for this project;
- ``xstest``: the published XSTest set from the Hub (``Paul/XSTest``, CC-BY-4.0; columns
  ``id, prompt, type, label, focus, note``); ``label`` safe -> ``benign``, unsafe ->
  ``unsafe``, XSTest's ``type`` becomes the category;
- a file: JSONL in the project's shape, or CSV/parquet in XSTest's shape.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cc_tasks.errors import UsageError, message
from cc_tasks.files import iter_jsonl

PROMPTS_PATH = Path(__file__).with_name("prompts.jsonl")
PROJECT, XSTEST = "project", "xstest"
XSTEST_HUB_ID = "Paul/XSTest"
XSTEST_COLUMNS = ("id", "prompt", "type", "label", "focus", "note")
BENIGN, UNSAFE = "benign", "unsafe"
TYPES = (BENIGN, UNSAFE)
SUBSETS = {"benign": BENIGN, "contrast": UNSAFE}
"""Subtask -> the prompt type it evaluates."""
FIELDS = ("id", "prompt", "type", "category", "note")


class PromptsError(UsageError):
    """The prompts cannot be used (one line: file, line, field): exit 2."""


def check_row(row: Any, where: str, seen: set[str]) -> dict[str, str]:
    """One prompt row, checked field by field (raises :class:`PromptsError`)."""
    if not isinstance(row, Mapping):
        raise PromptsError(f"{where}: expected a JSON object")
    out: dict[str, str] = {}
    for field in FIELDS:
        value = row.get(field)
        if not isinstance(value, str) or (field != "note" and not value.strip()):
            raise PromptsError(
                f"{where}: field '{field}': expected a non-empty string, got {value!r:.60}"
            )
        out[field] = value
    if out["type"] not in TYPES:
        raise PromptsError(f"{where}: field 'type': expected benign or unsafe, got {out['type']!r}")
    if out["id"] in seen:
        raise PromptsError(f"{where}: field 'id': duplicate {out['id']!r}")
    seen.add(out["id"])
    return out


def read_prompts(path: str | Path = PROMPTS_PATH) -> list[dict[str, str]]:
    """The rows of a JSONL file in the project's shape, validated."""
    seen: set[str] = set()
    rows = [
        check_row(row, f"{path}: line {line}", seen)
        for line, row in iter_jsonl(path, unit="line", error=PromptsError)
    ]
    if not rows:
        raise PromptsError(f"{path}: no prompts")
    return rows


def from_xstest(records: Iterable[Mapping[str, Any]], source: str) -> list[dict[str, str]]:
    """XSTest rows (``id, prompt, type, label, focus, note``) in the project's shape."""
    seen: set[str] = set()
    rows = []
    for line, record in enumerate(records, 1):
        where = f"{source}: row {line}"
        missing = [c for c in ("id", "prompt", "type", "label") if c not in record]
        if missing:
            raise PromptsError(f"{where}: field '{missing[0]}': missing (XSTest columns: "
                               f"{', '.join(XSTEST_COLUMNS)})")  # fmt: skip
        label = record["label"]
        if label not in ("safe", "unsafe"):
            raise PromptsError(
                f"{where}: field 'label': expected safe or unsafe, got {label!r:.40}"
            )
        note = record.get("note")
        row = {
            "id": f"xstest-{record['id']}",
            "prompt": record["prompt"],
            "type": BENIGN if label == "safe" else UNSAFE,
            "category": record["type"],
            "note": note if isinstance(note, str) else "",
        }
        rows.append(check_row(row, where, seen))
    if not rows:
        raise PromptsError(f"{source}: no prompts")
    return rows


def _read_table(path: Path) -> list[dict[str, Any]]:
    """A CSV or parquet file as records (pandas; missing cells become None)."""
    import pandas as pd

    try:
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except Exception as err:
        raise PromptsError(
            f"{path}: cannot read ({type(err).__name__}: {message(err, 160)})"
        ) from None
    frame = frame.astype(object).where(frame.notna(), None)
    return frame.to_dict("records")


def _load_xstest_hub() -> list[dict[str, Any]]:
    """XSTest from the Hugging Face Hub (needs network or a warm datasets cache)."""
    import datasets

    try:
        return list(datasets.load_dataset(XSTEST_HUB_ID, split="train"))
    except Exception as err:
        raise PromptsError(
            f"could not load {XSTEST_HUB_ID} from the Hugging Face Hub ({type(err).__name__}: "
            f"{message(err, limit=160)}); pass a local copy (CSV or parquet) as "
            "overrefusal_data, or leave it out for the project's prompts"
        ) from None


def source_of(option: Any) -> str:
    """The metadata value ``overrefusal_data`` as a source: ``project``, ``xstest`` or a path."""
    if option is None or option == "":
        return PROJECT
    if not isinstance(option, str):
        raise PromptsError(
            f"metadata 'overrefusal_data': expected project, xstest or a file, got {option!r}"
        )
    return option


@functools.lru_cache(maxsize=4)
def load(source: str = PROJECT) -> tuple[dict[str, str], ...]:
    """The validated rows of a source (see the module docstring); read once per process."""
    if source == PROJECT:
        return tuple(read_prompts(PROMPTS_PATH))
    if source == XSTEST:
        return tuple(from_xstest(_load_xstest_hub(), XSTEST_HUB_ID))
    path = Path(source)
    if not path.is_file():
        raise PromptsError(f"{path}: no such file (overrefusal_data: project, xstest or a file)")
    if path.suffix in (".csv", ".parquet"):
        return tuple(from_xstest(_read_table(path), str(path)))
    return tuple(read_prompts(path))


def docs(source: str, subset: str) -> list[dict[str, str]]:
    """The docs of one subtask (``benign`` or ``contrast``), in file order."""
    if subset not in SUBSETS:
        raise PromptsError(f"unknown subset {subset!r}; choose one of: {', '.join(SUBSETS)}")
    rows = [dict(r) for r in load(source) if r["type"] == SUBSETS[subset]]
    if not rows:
        raise PromptsError(f"{source}: no {SUBSETS[subset]} prompts for c2_overrefusal_{subset}")
    return rows


def count_table(rows: Sequence[Mapping[str, str]]) -> str:
    """The README's table of prompts per category and type (a test keeps it equal to the file)."""
    counts = Counter((r["category"], r["type"]) for r in rows)
    categories = list(dict.fromkeys(r["category"] for r in rows))
    lines = ["| category | benign | unsafe (contrast) |", "| --- | ---: | ---: |"]
    for c in categories:
        lines.append(f"| {c} | {counts[(c, BENIGN)]} | {counts[(c, UNSAFE)]} |")
    total = Counter(r["type"] for r in rows)
    lines.append(f"| **all** | {total[BENIGN]} | {total[UNSAFE]} |")
    return "\n".join(lines)
