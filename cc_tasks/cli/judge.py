"""``c2-judge``: re-judge lm-eval sample files offline, and measure agreement between two judges.

``c2-judge rejudge SAMPLES... --judge KIND`` (``rejudge`` may be left out) reads
the ``samples_<task>_<date>.jsonl`` files that ``lm_eval --log_samples`` (or
``c2-eval``) wrote, judges every continuation in ``resps`` against
``doc.prompt`` and ``doc.prefill`` with any judge, and writes

- ``<out>/<run>/samples_<task>_<date>.jsonl``: the same samples with
  ``filtered_resps`` replaced by the new verdict records (so ``agree`` can
  compare them with the originals),
- ``<out>/corr.json`` and ``<out>/corr.md``: the Corr@k table per run, with the
  reference's list format ``[Corr@10, ..., Corr@80, Corr_mean]``.

``c2-judge agree A B`` matches the verdicts of two judged sample sets by
(k, doc.row_id, path index) and prints percent agreement and Cohen's kappa per
k and overall.

Input is validated completely (one clear line naming file, line and field)
before any judge is built or called. Existing outputs are never overwritten
without ``--overwrite``. Exit status: 0 ok, 1 judge errors (unless
``--allow-judge-errors``), 2 bad input or configuration.
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import os
import re
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cc_tasks.judges import (
    JUDGE_KINDS,
    Judge,
    JudgeConfigError,
    JudgeItem,
    Verdict,
    make_judge,
    parse_options,
)
from cc_tasks.judges.scoring import Score, agreement, as_record, reference_list, score

SAMPLE_NAME = re.compile(r"^samples_(?P<task>.+)_(?P<date>\d{4}-\d{2}-\d{2}T[\d.\-]+)\.jsonl$")
SUBTASK_K = re.compile(r"_k\d+$")
OPTIONS_ENV = "C2_EVAL_JUDGE_OPTIONS"
KIND_ENV = "C2_EVAL_JUDGE"
log = logging.getLogger("c2-judge")


class InputError(ValueError):
    """A sample file or argument is unusable (one line, names file/line/field)."""


# --------------------------------------------------------------------------- reading samples
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
    path: Path
    task: str
    date: str
    run: str
    samples: list[Sample] = field(default_factory=list)

    @property
    def family(self) -> str:
        """Task without its ``_k<N>`` suffix: subtasks of one family form one Corr@k list."""
        return SUBTASK_K.sub("", self.task)


def _field(source: str, doc: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    if name not in doc:
        raise InputError(f"{source}: field 'doc.{name}': missing")
    value = doc[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise InputError(
            f"{source}: field 'doc.{name}': expected {_type_name(kind)}, got {value!r:.60}"
        )
    return value


def _type_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def parse_sample(source: str, line_no: int, data: Any, *, need_row_id: bool) -> Sample:
    """Validate one decoded sample line (lm-eval 0.4 shape) into a :class:`Sample`."""
    where = f"{source}: line {line_no}"
    if not isinstance(data, dict):
        raise InputError(f"{where}: expected a JSON object")
    doc = data.get("doc")
    if not isinstance(doc, dict):
        raise InputError(f"{where}: field 'doc': missing or not an object")
    prompt = _field(where, doc, "prompt", str)
    prefill = _field(where, doc, "prefill", str)
    k = _field(where, doc, "k", (int, str))
    if isinstance(k, str):
        if not k.strip().isdigit():
            raise InputError(f"{where}: field 'doc.k': expected an integer, got {k!r:.60}")
        k = int(k)
    row_id = doc.get("row_id")
    if need_row_id and (row_id is None or isinstance(row_id, (dict, list))):
        raise InputError(f"{where}: field 'doc.row_id': missing (needed to match paths)")
    resps = data.get("resps")
    if not isinstance(resps, list) or not resps:
        raise InputError(f"{where}: field 'resps': missing or empty")
    paths = resps[0]
    if isinstance(paths, str):
        paths = [paths]
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
        raise InputError(f"{where}: field 'resps': expected [[continuation, ...]] of strings")
    return Sample(line_no, data, k, row_id, prompt, prefill, list(paths))


def read_sample_file(path: Path, run: str, *, need_row_id: bool) -> SampleFile:
    match = SAMPLE_NAME.match(path.name)
    task, date = (match["task"], match["date"]) if match else (path.stem, "")
    result = SampleFile(path=path, task=task, date=date, run=run)
    try:
        handle = path.open(encoding="utf-8")
    except OSError as err:
        raise InputError(f"{path}: cannot read ({err.strerror})") from None
    with handle:
        for line_no, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as err:
                raise InputError(f"{path}: line {line_no}: not JSON ({err.msg})") from None
            result.samples.append(parse_sample(str(path), line_no, data, need_row_id=need_row_id))
    if not result.samples:
        raise InputError(f"{path}: no samples")
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
                raise InputError(f"{path}: no samples_*.jsonl files inside")
            for file in found:
                run = file.parent.name
                match = SAMPLE_NAME.match(file.name)
                task, date = (match["task"], match["date"]) if match else (file.stem, "")
                previous = chosen.get((run, task))
                if previous is None or previous[1] < date:
                    if previous is not None:
                        log.warning("using %s, the latest of several runs of %s", file, task)
                    chosen[(run, task)] = (file, date)
        else:
            raise InputError(f"{path}: no such file or folder")
    files = [(p, run) for (run, _), (p, _) in sorted(chosen.items())] + explicit
    result = [read_sample_file(p, run, need_row_id=need_row_id) for p, run in files]
    seen: dict[tuple[str, str], Path] = {}
    for sf in result:
        other = seen.setdefault((sf.run, sf.task), sf.path)
        if other != sf.path:
            raise InputError(
                f"two sample files for task {sf.task} in run {sf.run}: {other} and {sf.path}; pass one"
            )
    return result


def verdict_records(sample: Sample, source: str) -> list[dict[str, Any]]:
    """The verdict record of every path of a judged sample (``filtered_resps``)."""
    filtered = sample.data.get("filtered_resps")
    where = f"{source}: line {sample.line}: field 'filtered_resps'"
    if not isinstance(filtered, list) or not filtered:
        raise InputError(f"{where}: missing (was this run judged?)")
    entries = filtered[0] if isinstance(filtered[0], list) else filtered
    if len(entries) != len(sample.continuations):
        raise InputError(
            f"{where}: {len(entries)} verdicts for {len(sample.continuations)} continuations in 'resps'"
        )
    try:
        return [as_record(entry) for entry in entries]
    except ValueError as err:
        raise InputError(f"{where}: {err} (judge it first with c2-judge rejudge)") from None


# --------------------------------------------------------------------------- rejudge


def _accepts(kind: str, option: str) -> bool:
    """Whether judge ``kind``'s constructor takes ``option`` (to pass CLI conveniences only where they fit)."""
    import importlib

    module_name, cls_name = JUDGE_KINDS[kind].split(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return False
    return option in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def judge_from_args(args: argparse.Namespace) -> Judge:
    """The judge the flags describe: env defaults < --judge-options < dedicated flags."""
    kind = (args.judge or os.environ.get(KIND_ENV) or "rule").strip().lower()
    if kind not in JUDGE_KINDS:
        raise JudgeConfigError(f"unknown judge {kind!r}; choose one of: {', '.join(JUDGE_KINDS)}")
    options: dict[str, Any] = {}
    options.update(parse_options(os.environ.get(OPTIONS_ENV), OPTIONS_ENV))
    options.update(parse_options(args.judge_options, "--judge-options"))
    flags = {
        "model": args.judge_model,
        "base_url": args.judge_base_url,
        "api_key_env": args.judge_api_key_env,
        "concurrency": args.concurrency,
        "cache_path": args.cache_path,
    }
    options.update({key: value for key, value in flags.items() if value is not None})
    if args.no_cache and _accepts(kind, "use_cache"):
        options["use_cache"] = False
    if args.no_progress and _accepts(kind, "progress"):
        options["progress"] = False
    if _accepts(kind, "probe"):  # nothing expensive precedes judging here: skip the probe request
        options.setdefault("probe", args.probe)
    judge = make_judge(kind, **options)
    judge.check()
    return judge


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _fmt(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def markdown_table(results: list[dict[str, Any]], judge: dict[str, Any], strict: bool) -> str:
    lines = [f"# Corr@k judged by {judge['name']}", ""]
    lines.append(f"Judge: `{json.dumps(judge, sort_keys=True)}`; strict: {strict}.")
    for block in results:
        lines += ["", f"## {block['run']} / {block['family']}", ""]
        lines.append("| k | n | yes | no | invalid | errors | Corr@k | corr_pos |")
        lines.append("|---|---|---|---|---|---|---|---|")
        for k, s in sorted(block["per_k"].items(), key=lambda kv: int(kv[0])):
            lines.append(
                f"| {k} | {s['n']} | {s['yes']} | {s['no']} | {s['invalid']} | {s['errors']} "
                f"| {_fmt(s['corr'])} | {_fmt(s['corr_pos'], 2)} |"
            )
        lines.append(f"| mean | | | | | | {_fmt(block['corr_mean'])} | |")
        lines += ["", f"Reference list: `{json.dumps(block['reference_list'])}`"]
    return "\n".join(lines) + "\n"


def rejudge(args: argparse.Namespace) -> int:
    files = find_sample_files(args.samples, need_row_id=False)
    out = Path(args.output_dir)
    targets = [out / sf.run / sf.path.name for sf in files] + [out / "corr.json", out / "corr.md"]
    sources = {sf.path.resolve() for sf in files}
    for target in targets:
        if target.resolve() in sources:
            raise InputError(
                f"{target}: the output would replace its own input; choose another --output-dir"
            )
    existing = [str(t) for t in targets if t.exists()]
    if existing and not args.overwrite:
        raise InputError(f"{existing[0]} already exists; pass --overwrite or another --output-dir")

    judge = judge_from_args(args)  # after the input is known good, before any judging
    items: list[JudgeItem] = []
    for sf in files:
        for sample in sf.samples:
            items += [JudgeItem(sample.prompt, sample.prefill, c) for c in sample.continuations]
    log.info("judging %d continuations from %d files with %s", len(items), len(files), judge.name)
    verdicts: Iterable[Verdict] = iter(judge.judge(items))

    per_block: dict[tuple[str, str], dict[int, list[dict[str, Any]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for sf in files:
        lines = []
        for sample in sf.samples:
            records = []
            for continuation in sample.continuations:
                verdict = next(verdicts)
                record = {
                    "continuation": continuation,
                    "label": verdict.label,
                    "corrected": verdict.corrected,
                    "position": verdict.position,
                    "raw": verdict.raw,
                    "judge": judge.name,
                }
                records.append(record)
                per_block[(sf.run, sf.family)][sample.k].append(record)
            data = dict(sample.data)
            # per-sample metric values of the old judge are stale: drop them
            for metric in data.get("metrics") or []:
                data.pop(metric, None)
            data["metrics"] = []
            data["filtered_resps"] = [records]  # as the C²-EVAL judge filter: per doc, one per path
            data["filter"] = judge.name
            data["rejudged_by"] = judge.describe()
            lines.append(json.dumps(data, ensure_ascii=False) + "\n")
        _atomic_write(out / sf.run / sf.path.name, "".join(lines))

    results = []
    totals = {"errors": 0, "invalid": 0, "n": 0}
    for (run, family), by_k in sorted(per_block.items()):
        scores: dict[int, Score] = {k: score(recs, strict=args.strict) for k, recs in by_k.items()}
        ref = reference_list(scores)
        for s in scores.values():
            totals["errors"] += s.errors
            totals["invalid"] += s.invalid
            totals["n"] += s.n
        results.append(
            {
                "run": run,
                "family": family,
                "per_k": {str(k): s.to_dict() for k, s in sorted(scores.items())},
                "corr_mean": ref[-1],
                "reference_list": ref,
            }
        )
    description = judge.describe()
    report = {
        "judge": description,
        "strict": args.strict,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "inputs": [str(sf.path) for sf in files],
        "totals": totals,
        "results": results,
    }
    markdown = markdown_table(results, description, args.strict)
    _atomic_write(out / "corr.json", json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    _atomic_write(out / "corr.md", markdown)
    print(markdown, end="")
    for block in results:
        print(f"{block['run']} {block['family']}: {json.dumps(block['reference_list'])}")
    print(f"wrote {out / 'corr.json'}, {out / 'corr.md'} and {len(files)} sample files under {out}")
    if totals["errors"] and not args.allow_judge_errors:
        print(
            f"c2-judge: error: {totals['errors']} of {totals['n']} judgments failed (label 'error', reason in "
            "'raw' of the written samples); rerun to retry only those (the rest is cached) "
            "or pass --allow-judge-errors",
            file=sys.stderr,
        )
        return 1
    return 0


# --------------------------------------------------------------------------- agree
def load_judged(paths: Sequence[str], side: str) -> dict[tuple[int, str, int], dict[str, Any]]:
    """(k, row_id, path index) -> verdict record for one judged sample set."""
    out: dict[tuple[int, str, int], dict[str, Any]] = {}
    for sf in find_sample_files(paths, need_row_id=True):
        for sample in sf.samples:
            for index, record in enumerate(verdict_records(sample, str(sf.path))):
                key = (sample.k, str(sample.row_id), index)
                if key in out:
                    raise InputError(
                        f"{sf.path}: line {sample.line}: path (k={key[0]}, row_id={key[1]}, "
                        f"path={index}) appears twice in set {side}; pass a single run"
                    )
                out[key] = record
    return out


def agree(args: argparse.Namespace) -> int:
    left = load_judged([args.a], "A")
    right = load_judged([args.b], "B")
    common = sorted(set(left) & set(right), key=lambda key: (key[0], key[1], key[2]))
    if not common:
        raise InputError(
            "the two sets share no (k, row_id, path) — are they judgments of the same run?"
        )
    by_k: dict[int, list[tuple[dict[str, Any], dict[str, Any]]]] = defaultdict(list)
    for key in common:
        by_k[key[0]].append((left[key], right[key]))
    rows = {str(k): agreement(pairs).to_dict() for k, pairs in sorted(by_k.items())}
    overall = agreement(pair for k in sorted(by_k) for pair in by_k[k]).to_dict()
    judges = {
        side: sorted({str(r.get("judge", "?")) for r in records.values()})
        for side, records in (("A", left), ("B", right))
    }
    report = {
        "a": args.a,
        "b": args.b,
        "judges": judges,
        "only_in_a": len(set(left) - set(right)),
        "only_in_b": len(set(right) - set(left)),
        "per_k": rows,
        "overall": overall,
    }
    print(
        f"A = {args.a} (judge {', '.join(judges['A'])}); B = {args.b} (judge {', '.join(judges['B'])})"
    )
    print("| k | paths | both valid | agree % | Cohen's kappa |")
    print("|---|---|---|---|---|")
    for k, row in [*rows.items(), ("overall", overall)]:
        print(
            f"| {k} | {row['pairs']} | {row['compared']} | {_fmt(row['percent'], 1)} | {_fmt(row['kappa'], 3)} |"
        )
    if report["only_in_a"] or report["only_in_b"]:
        print(f"unmatched paths: {report['only_in_a']} only in A, {report['only_in_b']} only in B")
    if args.json:
        _atomic_write(Path(args.json), json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        print(f"wrote {args.json}")
    return 0


# --------------------------------------------------------------------------- entry point
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="c2-judge",
        description="Re-judge C²-EVAL sample files (lm-eval --log_samples) and compare judges.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    rj = sub.add_parser(
        "rejudge", help="judge every continuation in sample files; write the Corr@k table"
    )
    rj.add_argument(
        "samples", nargs="+", help="samples_<task>_<date>.jsonl files or folders holding them"
    )
    rj.add_argument(
        "--judge", help=f"judge kind: {', '.join(JUDGE_KINDS)} (default ${KIND_ENV}, else rule)"
    )
    rj.add_argument("--judge-model", help="judge model (openai: model name; hf: folder or Hub id)")
    rj.add_argument(
        "--judge-base-url", help="OpenAI-compatible base URL, e.g. http://localhost:8000/v1"
    )
    rj.add_argument(
        "--judge-api-key-env",
        help="environment variable holding the API key (default OPENAI_API_KEY)",
    )
    rj.add_argument("--judge-options", help=f"JSON object of judge options (over ${OPTIONS_ENV})")
    rj.add_argument(
        "--concurrency", type=int, help="concurrent judge requests (openai; default 32)"
    )
    rj.add_argument(
        "--cache-path", help="SQLite verdict cache file (default in the project cache folder)"
    )
    rj.add_argument(
        "--no-cache", action="store_true", help="neither read nor write the verdict cache"
    )
    rj.add_argument(
        "--probe",
        action="store_true",
        help="openai: send one 1-token request first to check the endpoint",
    )
    rj.add_argument("--strict", action="store_true", help="count invalid verdicts as not corrected")
    rj.add_argument(
        "--allow-judge-errors", action="store_true", help="exit 0 even if some judgments failed"
    )
    rj.add_argument(
        "-o",
        "--output-dir",
        default="c2_judge_results",
        help="where to write (default ./c2_judge_results)",
    )
    rj.add_argument(
        "--overwrite", action="store_true", help="replace existing outputs in --output-dir"
    )
    rj.add_argument("--no-progress", action="store_true", help="no progress bar")
    rj.set_defaults(func=rejudge)
    ag = sub.add_parser(
        "agree", help="percent agreement and Cohen's kappa of two judged sample sets"
    )
    ag.add_argument(
        "a", help="judged samples (file or folder), e.g. a c2-eval --log_samples output"
    )
    ag.add_argument(
        "b", help="judged samples of the same run by another judge (e.g. c2-judge rejudge output)"
    )
    ag.add_argument("--json", help="also write the agreement report to this JSON file")
    ag.set_defaults(func=agree)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] not in ("rejudge", "agree") and not argv[0].startswith("-"):
        argv.insert(0, "rejudge")  # `c2-judge SAMPLES... --judge openai` is rejudge
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="c2-judge: %(levelname)s: %(message)s")
    try:
        return args.func(args)
    except (InputError, JudgeConfigError) as err:
        print(f"c2-judge: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
