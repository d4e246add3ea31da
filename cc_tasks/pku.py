"""PKU-SafeRLHF (original "v0" schema): loading, row validation, selection, harmful response.

One copy for both halves of the project: C²-EVAL (SPEC section 2) and C²-SYN
(SPEC section 3) select rows and pick the harmful response through here.
Every bad row fails with one line that names the file, the row and the field.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

HUB_ID = "PKU-Alignment/PKU-SafeRLHF"
HUB_REVISION = "v0"  # the original schema the paper used (response_0/1, is_response_*_safe)
TEXT_FIELDS = ("prompt", "response_0", "response_1")
FLAG_FIELDS = ("is_response_0_safe", "is_response_1_safe")
ID_FIELDS = ("better_response_id", "safer_response_id")
REQUIRED_FIELDS = TEXT_FIELDS + FLAG_FIELDS + ID_FIELDS
KEYWORDS = ("how", "what", "How", "What")  # substring match, as the reference does
EVAL_ROWS = 500
SYN_MIN_WORDS = 80
SYN_MAX_REQUESTS = 50_000


class DataError(ValueError):
    """A data source or one of its rows does not fit the PKU-SafeRLHF v0 schema."""


def validate_row(row: Any, index: int, source: str, *, need_unsafe: bool = True) -> dict:
    """Check one row; raise :class:`DataError` ``"<source>: row <index>: field '<f>': ..."``."""
    where = f"{source}: row {index}"
    if not isinstance(row, Mapping):
        raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
    for field in REQUIRED_FIELDS:
        if field not in row:
            raise DataError(f"{where}: field '{field}': missing")
    for field in TEXT_FIELDS:
        if not isinstance(row[field], str):
            raise DataError(f"{where}: field '{field}': expected a string, got {_kind(row[field])}")
        if not row[field].strip():
            raise DataError(f"{where}: field '{field}': empty text")
    for field in FLAG_FIELDS:
        if not isinstance(row[field], bool):
            raise DataError(
                f"{where}: field '{field}': expected true/false, got {_kind(row[field])}"
            )
    for field in ID_FIELDS:
        value = row[field]
        if isinstance(value, bool) or value not in (0, 1):
            raise DataError(f"{where}: field '{field}': expected 0 or 1, got {value!r}")
    if need_unsafe and row["is_response_0_safe"] and row["is_response_1_safe"]:
        raise DataError(
            f"{where}: field 'is_response_0_safe'/'is_response_1_safe': both responses are safe, "
            "so the row has no harmful response to prefill"
        )
    return dict(row)


def _kind(value: Any) -> str:
    return "null" if value is None else f"{type(value).__name__} {value!r}"[:60]


def harmful_response(row: Mapping[str, Any]) -> str | None:
    """SPEC 2: ``response_0`` when it is unsafe, otherwise ``response_1`` when that is; else None."""
    if not row["is_response_0_safe"]:
        return row["response_0"]
    if not row["is_response_1_safe"]:
        return row["response_1"]
    return None


def has_keyword(prompt: str) -> bool:
    return any(word in prompt for word in KEYWORDS)


def long_harmful_response(row: Mapping[str, Any], min_words: int = SYN_MIN_WORDS) -> str | None:
    """SPEC 3: the first unsafe response (response_0 checked first) with > ``min_words`` words."""
    for i in (0, 1):
        text = row[f"response_{i}"]
        if not row[f"is_response_{i}_safe"] and len(text.split()) > min_words:
            return text
    return None


def select_eval(rows: Iterable[Mapping[str, Any]], limit: int = EVAL_ROWS) -> list[dict]:
    """SPEC 2: rows whose prompt has how/what and that have an unsafe response; the first ``limit``."""
    out = [dict(r) for r in rows if has_keyword(r["prompt"]) and harmful_response(r) is not None]
    return out[:limit]


def select_syn(
    rows: Iterable[Mapping[str, Any]],
    limit: int = SYN_MAX_REQUESTS,
    min_words: int = SYN_MIN_WORDS,
) -> Iterator[tuple[int, dict, str]]:
    """SPEC 3: ``(row_index, row, harmful_response)`` for the first ``limit`` selected rows."""
    taken = 0
    for index, row in enumerate(rows):
        if taken >= limit:
            return
        if not has_keyword(row["prompt"]):
            continue
        response = long_harmful_response(row, min_words)
        if response is not None:
            taken += 1
            yield index, dict(row), response


def read_rows(path: str | os.PathLike) -> list[Any]:
    """Rows of a local JSONL, JSON (list, or {"data": [...]}) or parquet file, unvalidated."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: no such file")
    suffix = p.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(p).to_pylist()
    text = p.read_text(encoding="utf-8")
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataError(f"{p}: not valid JSON ({err})") from None
        if isinstance(data, Mapping) and isinstance(data.get("data"), list):
            data = data["data"]
        if not isinstance(data, list):
            raise DataError(f"{p}: expected a JSON list of rows")
        return data
    rows = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise DataError(f"{p}: row {lineno}: not valid JSON ({err.msg})") from None
    return rows


def load_rows(
    source: str | os.PathLike | None,
    *,
    split: str,
    need_unsafe: bool,
    env_var: str | None = None,
    flag: str = "--data",
) -> tuple[list[dict], str]:
    """Validated rows and a label for them, from a local file or the Hub.

    ``source`` (or the ``env_var`` environment variable) names a local file;
    otherwise the Hub dataset is loaded. Row numbers in errors are 1-based lines
    (JSONL) or 1-based list positions. Returns ``(rows, source_label)``.
    """
    if source is None and env_var:
        source = os.environ.get(env_var) or None
    if source is not None:
        label = str(source)
        raw = read_rows(source)
    else:
        label = f"{HUB_ID}@{HUB_REVISION}:{split}"
        raw = _load_hub(split, env_var, flag)
    if not raw:
        raise DataError(f"{label}: no rows")
    return [validate_row(r, i, label, need_unsafe=need_unsafe) for i, r in enumerate(raw, 1)], label


def _load_hub(split: str, env_var: str | None, flag: str = "--data") -> list[dict]:
    """PKU-SafeRLHF v0 from the Hugging Face Hub (needs network or a warm datasets cache)."""
    import datasets

    try:
        ds = datasets.load_dataset(HUB_ID, revision=HUB_REVISION, split=split)
    except Exception as err:
        hint = f" or set {env_var}=<file>" if env_var else ""
        raise DataError(
            f"could not load {HUB_ID}@{HUB_REVISION} ({split}) from the Hugging Face Hub "
            f"({type(err).__name__}: {str(err).splitlines()[0][:160] if str(err) else ''}); "
            f"pass a local JSONL/JSON/parquet file of the same schema with {flag}{hint}"
        ) from None
    return [dict(r) for r in ds]
