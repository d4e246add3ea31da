"""The judge gold set: labelled continuations whose requests and prefills are rebuilt from the data.

This package is THE gold module: one :class:`GoldItem`, one :func:`gold_version`, the
loader (:func:`load_gold`, split by request) and :func:`read_gold_file` for labelled sets
in a self-contained form. The data files sit beside it (``gold.jsonl``, ``RUBRIC.md``,
``README.md``); the tools that build ``gold.jsonl`` are :mod:`cc_tasks.judges.gold.build`.

``gold.jsonl`` stores references, not the benchmark's text: each line names a
row of the 500-row C²-EVAL file (``row_id``: C²-EVAL's doc ``row_id``, the 1-based
line of that file), the prefill length ``k``, the continuation (model-written or
hand-written, which we may store), the label and where the item comes from. The
request and prefill are rebuilt here exactly as C²-EVAL builds its docs
(:func:`cc_tasks.pku.harmful_response` + :func:`cc_tasks.prefill.build_prefill`,
word mode, no seed), so a judge sees what it would see in a real run. Each line
also keeps a short fingerprint of its request (``request_sha``, 12 hex of SHA-256)
so a different data file is refused instead of silently pairing labels with the
wrong rows. Rubric, sizes and agreement: ``RUBRIC.md`` and ``README.md`` in this folder.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from cc_tasks.errors import UsageError
from cc_tasks.judges.base import NO, YES, JudgeItem

GOLD_DIR = Path(__file__).parent
GOLD_PATH = GOLD_DIR / "gold.jsonl"
ENV_DATA = "C2_EVAL_DATA"  # the same variable c2-eval reads for its data file
SHARED_DATA_HINT = "../shared/data/c2_eval_pku_saferlhf_test500.jsonl"

SPLITS = ("dev", "test")
DEV_SHARE = 0.55  # share of requests in dev; the rest is test
SOURCES = ("model", "handwritten")
MODEL_KIND = "model"
HANDWRITTEN_KINDS = (
    "correction_with_refusal_words",
    "correction_without_refusal_words",
    "refusal_words_inside_continued_harm",
    "plain_continuation_or_offtopic",
    # text that addresses the grader, and refusals that carry on helping: never a correction
    # (RUBRIC.md, "Text aimed at the judge"); measured on every judge as kinds of their own
    "aimed_at_judge",
    "refuse_then_continue",
)
KINDS = (MODEL_KIND, *HANDWRITTEN_KINDS)
GOLD_LABELS = (YES, NO)
PREFILL_KS = (10, 20, 30, 40, 50, 60, 70, 80)


class GoldError(UsageError):
    """The gold set or its data file cannot be used (one line: file, line, field)."""


def normalise_request(request: str) -> str:
    """Case- and whitespace-insensitive form: duplicate prompts of the data share one split."""
    return " ".join(request.lower().split())


def split_of(request: str) -> str:
    """``dev`` or ``test`` for a request: SHA-256 of its normalised text, ~55 % dev.

    By request, not by row: the 500 rows hold 36 prompts more than once, and a
    request must never sit in both splits.
    """
    digest = hashlib.sha256(("c2-gold-split\0" + normalise_request(request)).encode()).digest()
    return "dev" if int.from_bytes(digest[:8], "big") / 2**64 < DEV_SHARE else "test"


def request_fingerprint(request: str) -> str:
    """12 hex of SHA-256 of the exact request: identifies the row without storing its text."""
    return hashlib.sha256(request.encode("utf-8")).hexdigest()[:12]


@dataclass(frozen=True)
class GoldItem(JudgeItem):
    """A :class:`JudgeItem` (request, prefill, continuation) with its gold label and origin.

    ``split`` is ``dev`` or ``test`` (``""`` for an item of an outside file that names
    none); ``row_id`` and ``k`` are set for the project's items (references into the
    500-row file) and ``None`` for self-contained files (:func:`read_gold_file`).
    """

    id: str
    label: str
    kind: str
    split: str
    source: str = "external"
    row_id: int | None = None
    k: int | None = None
    condition: str | None = None
    borderline: bool = False
    reason: str = ""

    @cached_property
    def item(self) -> JudgeItem:
        """The plain :class:`JudgeItem` (what a judge is given)."""
        return JudgeItem(self.request, self.prefill, self.continuation)


def gold_version(path: str | os.PathLike | None = None) -> str:
    """12 hex of SHA-256 of the gold file (default: the shipped one): names the labels a
    judge was measured on."""
    return hashlib.sha256(Path(path or GOLD_PATH).read_bytes()).hexdigest()[:12]


def _check_record(row: Any, where: str, seen: set[str]) -> dict[str, Any]:
    """One gold line, checked field by field (raises :class:`GoldError`)."""
    if not isinstance(row, Mapping):
        raise GoldError(f"{where}: expected a JSON object")

    def need(field: str, kind: type, allowed: Sequence[Any] | None = None) -> Any:
        value = row.get(field)
        # bool is an int subclass: true/false must not pass for a row id or k, nor 1 for a flag
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise GoldError(
                f"{where}: field '{field}': expected {kind.__name__}, got {value!r:.60}"
            )
        if allowed is not None and value not in allowed:
            raise GoldError(
                f"{where}: field '{field}': expected one of {list(allowed)}, got {value!r:.60}"
            )
        return value

    gold_id = need("id", str)
    if gold_id in seen:
        raise GoldError(f"{where}: field 'id': duplicate {gold_id!r}")
    seen.add(gold_id)
    row_id = need("row_id", int)
    if row_id < 1:
        raise GoldError(f"{where}: field 'row_id': expected a 1-based row number, got {row_id}")
    need("k", int, PREFILL_KS)
    source = need("source", str, SOURCES)
    need("kind", str, (MODEL_KIND,) if source == "model" else HANDWRITTEN_KINDS)
    need("continuation", str)
    need("label", str, GOLD_LABELS)
    need("split", str, SPLITS)
    need("borderline", bool)
    need("reason", str)
    need("request_sha", str)
    if source == "model":
        need("condition", str)
    for field in ("label_a", "label_b"):
        if field in row:
            need(field, str, GOLD_LABELS)
    return dict(row)


def read_records(path: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """The gold lines, validated, without rebuilding anything (no data file needed)."""
    p = Path(path or GOLD_PATH)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as err:
        raise GoldError(f"{p}: cannot read the gold set ({err.strerror or err})") from None
    records: list[dict[str, Any]] = []
    seen: set[str] = set()
    for line_no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise GoldError(f"{p}: line {line_no}: not valid JSON ({err.msg})") from None
        records.append(_check_record(row, f"{p}: line {line_no}", seen))
    if not records:
        raise GoldError(f"{p}: no gold items")
    return records


def count_table(records: Sequence[Mapping[str, Any]]) -> str:
    """The README's count table: yes/no per split for each model condition and hand-written kind.

    ``tests/test_gold.py`` checks that the README holds exactly this table for the
    shipped file, so the documented counts cannot drift from the data.
    """
    cells: Counter[tuple[str, str, str]] = Counter()
    for r in records:
        cells[(f"{r['source']}: {r.get('condition') or r['kind']}", r["split"], r["label"])] += 1
    groups = sorted({c[0] for c in cells}, key=lambda g: (not g.startswith("model"), g))

    def row(name: str, match: Callable[[str], bool]) -> str:
        v = [
            sum(n for (g, s, lab), n in cells.items() if match(g) and s == split and lab == label)
            for split in SPLITS
            for label in GOLD_LABELS
        ]
        return f"| {name} | {' | '.join(map(str, v))} | {sum(v)} | {v[0] + v[2]} |"

    lines = [
        "| source: condition / kind | dev yes | dev no | test yes | test no | total | yes |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [row(g, lambda x, g=g: x == g) for g in groups]
    lines += [row(f"**{s} (all)**", lambda x, s=s: x.startswith(s + ":")) for s in SOURCES]
    lines.append(row("**all**", lambda x: True))
    borderline = sum(bool(r["borderline"]) for r in records)
    requests = {s: len({r["request_sha"] for r in records if r["split"] == s}) for s in SPLITS}
    rows = len({r["row_id"] for r in records})
    lines += [
        "",
        f"Borderline: {borderline}. Distinct requests: dev {requests['dev']}, "
        f"test {requests['test']}. Rows of the 500-row file: {rows}.",
    ]
    return "\n".join(lines)


def _data_rows(data_path: str | os.PathLike | None) -> tuple[list[dict], str]:
    """The validated rows of the 500-row file (``row_id`` i is ``rows[i - 1]``)."""
    from cc_tasks.pku import DataError, load_rows

    source = data_path or os.environ.get(ENV_DATA)
    if not source:
        raise GoldError(
            "the gold set stores row references, not the benchmark's texts: pass the 500-row "
            f"C²-EVAL file with --data FILE (Python: data_path=FILE) or set ${ENV_DATA}; the "
            "file holds the rows c2-eval selects from the Hub's PKU-Alignment/PKU-SafeRLHF "
            f"(v0, test split) and sits beside a project checkout at {SHARED_DATA_HINT}"
        )
    try:
        rows, label = load_rows(source, split="test", need_unsafe=True)
    except DataError as err:
        raise GoldError(f"gold set data file: {err}") from None
    return rows, label


def load_gold(
    split: str | None = None,
    data_path: str | os.PathLike | None = None,
    gold_path: str | os.PathLike | None = None,
) -> list[GoldItem]:
    """Gold items of ``split`` (``dev``, ``test``; ``None`` or ``all``: both), in file order.

    ``data_path``: the 500-row C²-EVAL file (default ``$C2_EVAL_DATA``). Raises
    :class:`GoldError` (one line) when it is missing or is not the file the gold
    set was labelled on.
    """
    from cc_tasks.pku import harmful_response
    from cc_tasks.prefill import build_prefill

    if split not in (None, "all", *SPLITS):
        raise GoldError(f"unknown gold split {split!r}; choose dev, test or all")
    records = read_records(gold_path)
    if split in SPLITS:
        records = [r for r in records if r["split"] == split]
    rows, label = _data_rows(data_path)
    needed = max((r["row_id"] for r in records), default=0)
    if needed > len(rows):
        raise GoldError(
            f"{label} has only {len(rows)} rows, the gold set refers to row {needed}; "
            "use the 500-row C²-EVAL file"
        )
    items = []
    for r in records:
        where = f"gold item {r['id']} (row_id {r['row_id']}, k={r['k']})"
        row = rows[r["row_id"] - 1]
        request = row["prompt"]
        if request_fingerprint(request) != r["request_sha"]:
            raise GoldError(
                f"{where}: row {r['row_id']} of {label} is not the row this item was labelled "
                "on (request fingerprint differs); use the 500-row C²-EVAL file"
            )
        harmful = harmful_response(row)
        if harmful is None:  # validated rows always have one
            raise GoldError(f"{where}: row {r['row_id']} of {label} has no unsafe response")
        _, prefill = build_prefill(request, harmful, r["k"])
        items.append(
            GoldItem(
                request=request,
                prefill=prefill,
                continuation=r["continuation"],
                id=r["id"],
                row_id=r["row_id"],
                k=r["k"],
                label=r["label"],
                kind=r["kind"],
                split=r["split"],
                source=r["source"],
                condition=r.get("condition"),
                borderline=r["borderline"],
                reason=r["reason"],
            )
        )
    return items


def _text(row: Mapping[str, Any], field: str, where: str) -> str:
    value = row.get(field)
    if not isinstance(value, str):
        raise GoldError(f"{where}: field '{field}': expected a string, got {value!r:.60}")
    return value


def read_gold_file(path: str | os.PathLike, split: str | None = None) -> list[GoldItem]:
    """Gold items of ``split`` from a self-contained JSONL file (request and prefill inline).

    Row fields: ``request``, ``prefill``, ``continuation``, ``label`` (yes/no);
    optional ``kind`` (default ``model``), ``split`` (dev/test; rows without one
    count for ``all`` only) and ``id`` (default: the line number). For labelled sets
    from outside the project and for tests; the project's set is :func:`load_gold`.
    """
    from cc_tasks.files import iter_jsonl

    out: list[GoldItem] = []
    for line, row in iter_jsonl(path, unit="line", error=GoldError):
        where = f"{path}: line {line}"
        if not isinstance(row, Mapping):
            raise GoldError(f"{where}: expected a JSON object")
        label = row.get("label")
        if label not in GOLD_LABELS:
            raise GoldError(f"{where}: field 'label': expected 'yes' or 'no', got {label!r:.40}")
        item_split = row.get("split", "")
        if item_split not in ("", *SPLITS):
            raise GoldError(
                f"{where}: field 'split': expected 'dev' or 'test', got {item_split!r:.40}"
            )
        kind = row.get("kind", MODEL_KIND)
        if not isinstance(kind, str) or not kind:
            raise GoldError(f"{where}: field 'kind': expected a non-empty string")
        if split in (None, "all", item_split):
            out.append(
                GoldItem(
                    request=_text(row, "request", where),
                    prefill=_text(row, "prefill", where),
                    continuation=_text(row, "continuation", where),
                    id=str(row.get("id", line)),
                    label=label,
                    kind=kind,
                    split=item_split,
                )
            )
    return out


def is_self_contained(path: str | os.PathLike) -> bool:
    """Whether a gold file carries its own request/prefill (else: ``row_id`` + ``k``, the
    project's form, rebuilt from the data file)."""
    from cc_tasks.files import iter_jsonl

    for _, row in iter_jsonl(path, unit="line", error=GoldError):
        return isinstance(row, Mapping) and "request" in row
    return True


def load_items(
    split: str | None = None,
    *,
    data_path: str | os.PathLike | None = None,
    gold_path: str | os.PathLike | None = None,
) -> list[GoldItem]:
    """Gold items from the shipped set or ``gold_path`` in either form (self-contained, or
    references rebuilt from ``data_path`` as :func:`load_gold` does)."""
    if gold_path is not None and is_self_contained(gold_path):
        if split not in (None, "all", *SPLITS):
            raise GoldError(f"unknown gold split {split!r}; choose dev, test or all")
        return read_gold_file(gold_path, split)
    return load_gold(split, data_path=data_path, gold_path=gold_path)


__all__ = [
    "DEV_SHARE",
    "GOLD_LABELS",
    "GOLD_PATH",
    "HANDWRITTEN_KINDS",
    "KINDS",
    "SOURCES",
    "SPLITS",
    "GoldError",
    "GoldItem",
    "count_table",
    "gold_version",
    "is_self_contained",
    "load_gold",
    "load_items",
    "read_gold_file",
    "read_records",
    "request_fingerprint",
    "split_of",
]
