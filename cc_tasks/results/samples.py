"""Reading lm-eval sample files (``lm_eval --log_samples`` / ``c2-eval``) of the C²-EVAL tasks.

The one reader of ``samples_<task>_<date>.jsonl``: ``c2-judge`` re-judges and
compares what it returns, and anything else that shows samples builds on it.
Each line is validated into a :class:`Sample` (``doc.prompt``, ``doc.prefill``,
``doc.k``, the continuations in ``resps``); a bad line is one
:class:`SampleError` naming the file, the line and the field.

Lines are streamed with a bounded length (:func:`cc_tasks.files.iter_jsonl`), so
a huge or binary file is refused at its first line instead of being read whole.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cc_tasks.errors import UsageError
from cc_tasks.files import iter_jsonl
from cc_tasks.judges.scoring import as_record

SAMPLE_NAME = re.compile(r"^samples_(?P<task>.+)_(?P<date>\d{4}-\d{2}-\d{2}T[\d.\-]+)\.jsonl$")
SUBTASK_K = re.compile(r"_k\d+$")
log = logging.getLogger(__name__)


class SampleError(UsageError):
    """A sample file or line is unusable (one line naming file, line and field; exit 2)."""


@dataclass
class Sample:
    """One lm-eval sample line: a doc and its continuations (paths)."""

    line: int
    data: dict[str, Any]
    k: int
    row_id: Any
    prompt: str
    prefill: str
    continuations: list[str]


@dataclass
class SampleFile:
    """One sample file: its task and date (from the file name), its run (folder) and samples."""

    path: Path
    task: str
    date: str
    run: str
    samples: list[Sample] = field(default_factory=list)

    @property
    def family(self) -> str:
        """Task without its ``_k<N>`` suffix: subtasks of one family form one Corr@k list."""
        return SUBTASK_K.sub("", self.task)


def task_and_date(path: Path) -> tuple[str, str]:
    """``(task, date)`` from ``samples_<task>_<date>.jsonl`` (else the stem and "")."""
    match = SAMPLE_NAME.match(path.name)
    return (match["task"], match["date"]) if match else (path.stem, "")


def _type_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def _field(source: str, doc: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    if name not in doc:
        raise SampleError(f"{source}: field 'doc.{name}': missing")
    value = doc[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise SampleError(
            f"{source}: field 'doc.{name}': expected {_type_name(kind)}, got {value!r:.60}"
        )
    return value


def parse_sample(source: str, line_no: int, data: Any, *, need_row_id: bool) -> Sample:
    """Validate one decoded sample line (lm-eval 0.4 shape) into a :class:`Sample`."""
    where = f"{source}: line {line_no}"
    if not isinstance(data, dict):
        raise SampleError(f"{where}: expected a JSON object")
    doc = data.get("doc")
    if not isinstance(doc, dict):
        raise SampleError(f"{where}: field 'doc': missing or not an object")
    prompt = _field(where, doc, "prompt", str)
    prefill = _field(where, doc, "prefill", str)
    k = _field(where, doc, "k", (int, str))
    if isinstance(k, str):
        if not k.strip().isdigit():
            raise SampleError(f"{where}: field 'doc.k': expected an integer, got {k!r:.60}")
        k = int(k)
    row_id = doc.get("row_id")
    if need_row_id and (row_id is None or isinstance(row_id, (dict, list))):
        raise SampleError(f"{where}: field 'doc.row_id': missing (needed to match paths)")
    resps = data.get("resps")
    if not isinstance(resps, list) or not resps:
        raise SampleError(f"{where}: field 'resps': missing or empty")
    paths = resps[0]
    if isinstance(paths, str):
        paths = [paths]
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
        raise SampleError(f"{where}: field 'resps': expected [[continuation, ...]] of strings")
    return Sample(line_no, data, k, row_id, prompt, prefill, list(paths))


def read_sample_file(path: Path, run: str, *, need_row_id: bool) -> SampleFile:
    """All samples of one file, validated line by line (raises :class:`SampleError`)."""
    task, date = task_and_date(path)
    result = SampleFile(path=path, task=task, date=date, run=run)
    lines = iter_jsonl(path, unit="line", error=SampleError, not_json="not JSON")
    for line_no, data in lines:
        result.samples.append(parse_sample(str(path), line_no, data, need_row_id=need_row_id))
    if not result.samples:
        raise SampleError(f"{path}: no samples")
    return result


def find_sample_files(paths: Sequence[str], *, need_row_id: bool) -> list[SampleFile]:
    """Files as given; folders searched for ``samples_*.jsonl`` (latest date per run and task)."""
    chosen: dict[tuple[str, str], tuple[Path, str]] = {}
    explicit: list[tuple[Path, str]] = []
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            explicit.append((path, path.resolve().parent.name))
        elif path.is_dir():
            found = sorted(path.rglob("samples_*.jsonl"))
            if not found:
                raise SampleError(f"{path}: no samples_*.jsonl files inside")
            for file in found:
                run = file.parent.name
                task, date = task_and_date(file)
                previous = chosen.get((run, task))
                if previous is None or previous[1] < date:
                    if previous is not None:
                        log.warning("using %s, the latest of several runs of %s", file, task)
                    chosen[(run, task)] = (file, date)
        else:
            raise SampleError(f"{path}: no such file or folder")
    files = [(p, run) for (run, _), (p, _) in sorted(chosen.items())] + explicit
    result = [read_sample_file(p, run, need_row_id=need_row_id) for p, run in files]
    seen: dict[tuple[str, str], Path] = {}
    for sf in result:
        other = seen.setdefault((sf.run, sf.task), sf.path)
        if other != sf.path:
            raise SampleError(
                f"two sample files for task {sf.task} in run {sf.run}: {other} and {sf.path}; pass one"
            )
    return result


def sample_verdicts(sample: Sample, source: str) -> list[dict[str, Any]]:
    """The verdict record of every path of a judged sample (its ``filtered_resps``)."""
    filtered = sample.data.get("filtered_resps")
    where = f"{source}: line {sample.line}: field 'filtered_resps'"
    if not isinstance(filtered, list) or not filtered:
        raise SampleError(f"{where}: missing (was this run judged?)")
    entries = filtered[0] if isinstance(filtered[0], list) else filtered
    if len(entries) != len(sample.continuations):
        raise SampleError(
            f"{where}: {len(entries)} verdicts for {len(sample.continuations)} continuations in 'resps'"
        )
    try:
        return [as_record(entry) for entry in entries]
    except ValueError as err:
        raise SampleError(f"{where}: {err} (judge it first with c2-judge rejudge)") from None


__all__ = [
    "SAMPLE_NAME",
    "Sample",
    "SampleError",
    "SampleFile",
    "find_sample_files",
    "parse_sample",
    "read_sample_file",
    "sample_verdicts",
    "task_and_date",
]
