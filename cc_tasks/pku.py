"""PKU-SafeRLHF (original "v0" schema): loading, row validation, selection, harmful response.

One copy for both halves of the project: C²-EVAL (method section 2) and C²-SYN
(method section 3) select rows and pick the harmful response through here.
Every bad row fails with one line that names the file, the row and the field,
as soon as it is read: rows are streamed and validated one at a time.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from cc_tasks.errors import UsageError, message
from cc_tasks.files import iter_jsonl, open_input

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
JSON_MAX_BYTES = 64 << 20  # a .json file is parsed whole; larger sources must be JSONL/parquet


class DataError(UsageError):
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
    """method section 2: ``response_0`` when it is unsafe, otherwise ``response_1`` when that is; else None."""
    if not row["is_response_0_safe"]:
        return row["response_0"]
    if not row["is_response_1_safe"]:
        return row["response_1"]
    return None


def has_keyword(prompt: str) -> bool:
    return any(word in prompt for word in KEYWORDS)


def long_harmful_response(row: Mapping[str, Any], min_words: int = SYN_MIN_WORDS) -> str | None:
    """method section 3: the first unsafe response (response_0 checked first) with > ``min_words`` words."""
    for i in (0, 1):
        text = row[f"response_{i}"]
        if not row[f"is_response_{i}_safe"] and len(text.split()) > min_words:
            return text
    return None


def select_eval(rows: Iterable[Mapping[str, Any]], limit: int = EVAL_ROWS) -> list[dict]:
    """method section 2: rows whose prompt has how/what and that have an unsafe response; the first ``limit``."""
    out = [dict(r) for r in rows if has_keyword(r["prompt"]) and harmful_response(r) is not None]
    return out[:limit]


def select_syn(
    rows: Iterable[Mapping[str, Any]],
    limit: int = SYN_MAX_REQUESTS,
    min_words: int = SYN_MIN_WORDS,
) -> Iterator[tuple[int, dict, str]]:
    """method section 3: ``(row_index, row, harmful_response)`` for the first ``limit`` selected rows."""
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


def iter_rows(path: str | os.PathLike) -> Iterator[tuple[int, Any]]:
    """``(row number, raw row)`` of a local JSONL, JSON or parquet file, streamed, unvalidated.

    Row numbers are 1-based lines (JSONL) or positions (JSON list, parquet). A
    JSONL file is read one bounded line at a time, so a wrong or huge file fails
    on its first bad line at once (:func:`cc_tasks.files.iter_jsonl`). A JSON
    file is parsed whole, so only up to :data:`JSON_MAX_BYTES`.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".parquet":
        yield from _iter_parquet(p)
    elif suffix == ".json":
        yield from enumerate(_read_json_list(p), 1)
    else:
        yield from iter_jsonl(p, unit="row", error=DataError)


def _iter_parquet(p: Path) -> Iterator[tuple[int, Any]]:
    import pyarrow.parquet as pq

    with open_input(p, DataError) as handle:
        try:
            batches = pq.ParquetFile(handle).iter_batches(batch_size=1024)
        except Exception as err:  # pyarrow raises ArrowInvalid/OSError for a non-parquet file
            raise DataError(
                f"{p}: not a readable parquet file ({message(err, limit=160)})"
            ) from None
        index = 0
        while True:
            try:
                batch = next(batches, None)
            except Exception as err:
                raise DataError(
                    f"{p}: row {index + 1}: damaged parquet ({message(err, limit=160)})"
                ) from None
            if batch is None:
                return
            for row in batch.to_pylist():
                index += 1
                yield index, row


def _read_json_list(p: Path) -> list[Any]:
    with open_input(p, DataError) as handle:
        size = os.fstat(handle.fileno()).st_size
        if size > JSON_MAX_BYTES:
            raise DataError(
                f"{p}: {size / 2**20:.0f} MiB is too large for a .json file (it is parsed whole; "
                f"limit {JSON_MAX_BYTES >> 20} MiB); write it as JSONL (one row per line), "
                "which is streamed"
            )
        raw = handle.read()
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{p}: not valid JSON ({message(err, limit=160)})") from None
    if isinstance(data, Mapping) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list):
        raise DataError(f"{p}: expected a JSON list of rows")
    return data


def stream_rows(
    source: str | os.PathLike | None,
    *,
    split: str,
    need_unsafe: bool,
    env_var: str | None = None,
    flag: str = "--data",
) -> tuple[Iterator[dict], str]:
    """Validated rows, one at a time, and a label for them, from a local file or the Hub.

    ``source`` (or the ``env_var`` environment variable) names a local file;
    otherwise the Hub dataset is loaded. Each row is validated as it is read, so
    the first bad row fails at once, whatever the size of the file. The
    iterator raises :class:`DataError` ``"<label>: no rows"`` when there is none.
    """
    if source is None and env_var:
        source = os.environ.get(env_var) or None
    if source is not None:
        label = str(source)
        raw: Iterator[tuple[int, Any]] = iter_rows(source)
    else:
        label = f"{HUB_ID}@{HUB_REVISION}:{split}"
        raw = enumerate(_load_hub(split, env_var, flag), 1)
    return _validated(raw, label, need_unsafe), label


def _validated(raw: Iterator[tuple[int, Any]], label: str, need_unsafe: bool) -> Iterator[dict]:
    empty = True
    for index, row in raw:
        empty = False
        yield validate_row(row, index, label, need_unsafe=need_unsafe)
    if empty:
        raise DataError(f"{label}: no rows")


def load_rows(
    source: str | os.PathLike | None,
    *,
    split: str,
    need_unsafe: bool,
    env_var: str | None = None,
    flag: str = "--data",
) -> tuple[list[dict], str]:
    """:func:`stream_rows` collected in a list: ``(rows, source_label)``.

    Validation still happens row by row as the file is read, so a bad row is
    reported before the rest of the file is touched.
    """
    rows, label = stream_rows(
        source, split=split, need_unsafe=need_unsafe, env_var=env_var, flag=flag
    )
    return list(rows), label


def _load_hub(split: str, env_var: str | None, flag: str = "--data") -> Iterable[Mapping]:
    """PKU-SafeRLHF v0 from the Hugging Face Hub (needs network or a warm datasets cache)."""
    import datasets

    try:
        ds = datasets.load_dataset(HUB_ID, revision=HUB_REVISION, split=split)
    except Exception as err:
        hint = f" or set {env_var}=<file>" if env_var else ""
        raise DataError(
            f"could not load {HUB_ID}@{HUB_REVISION} ({split}) from the Hugging Face Hub "
            f"({type(err).__name__}: {message(err, limit=160)}); "
            f"pass a local JSONL/JSON/parquet file of the same schema with {flag}{hint}"
        ) from None
    return ds  # Arrow-backed: rows are read as they are iterated
