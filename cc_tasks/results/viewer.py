"""The C²-EVAL sample viewer: one self-contained HTML file per report (``c2-report --html``).

It holds the Corr@k table and plot of the report, then every judged sample of
its runs (request, prefill, continuation, verdict, the judge's raw reply,
correction position), filterable by run, k, verdict, row id and text, with a
before/after view of the same (row, k) across runs. Where a run has an audit
(``c2-judge audit score`` wrote ``audit.json`` beside it and it still fits the
run), each labelled path shows the person's label next to the judge's verdict,
disagreements marked, and a filter keeps audited paths or disagreements only.
It works offline: the plot
is a ``data:`` PNG, the samples are one JSON blob, the script is inline, and
a Content-Security-Policy allows nothing else (no network, no other script).

The texts are harmful by design and untrusted: the page never treats them as
HTML. Python escapes everything it writes into the markup
(:func:`html.escape`); the JSON blob has every ``<``, ``>`` and ``&`` as a
``\\u`` escape, so no ``</script>`` can end it; the script builds the sample
cards with ``textContent`` only. Rows render lazily, a page at a time, so a
full run (4,000 samples per run, several runs) stays fast.

Which sample files belong to a run is the result schema's call
(:attr:`cc_tasks.results.Run.sample_files`); :mod:`cc_tasks.results.samples` reads them.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

from cc_tasks.errors import UsageError
from cc_tasks.files import atomic_write_text

from .samples import Sample, SampleFile, read_sample_file, sample_verdicts
from .schema import Run

TEMPLATE = "viewer.html"
FIELDS = (
    "run",
    "k",
    "row",
    "path",
    "request",
    "prefill",
    "continuation",
    "label",
    "position",
    "raw",
    "judge",
)
"""Columns of each sample array in the JSON blob (``request``, ``prefill`` and ``judge`` index
``strings``: a request repeats for every k and run, so it is stored once)."""
AUDIT_FIELDS = ("sample", "label", "labeller", "disagrees")
"""Columns of each audited path in the JSON blob: the index of its sample array, the audit's
label (yes/no), the labeller (index into ``strings``) and 1 where the label and the judge's
verdict disagree (the judge's invalid or error counts as its no, as the audit counts it)."""
_PLACEHOLDER = re.compile(r"\{\{([A-Z]+)\}\}")
_JSON_ESCAPES = {ord("<"): "\\u003c", ord(">"): "\\u003e", ord("&"): "\\u0026"}


class ViewerError(UsageError):
    """The ``--html`` output path is unusable (exit 2, before anything is written)."""


class RunLike(Protocol):
    """What the viewer needs of one report run (:class:`cc_tasks.results.Run` has it)."""

    label: str
    judge: str
    source: str
    sample_files: dict[int, str]
    """k -> the sample file holding this run's verdicts at k (none: the run shows no samples)."""
    provenance: dict[str, Any]


@dataclass
class ViewerRun:
    """One run as the viewer shows it: its report label and judge, and the sample files read."""

    label: str
    judge: str
    source: str
    sample_files: list[str] = field(default_factory=list)
    samples: int = 0
    provenance: dict[str, Any] = field(default_factory=dict)
    audit: dict[str, Any] | None = None
    """The run's audit as the page shows it: its file, labellers and labelled paths shown."""


@dataclass
class Payload:
    """The JSON blob of the page: runs, the ks present, interned strings and sample arrays."""

    runs: list[ViewerRun] = field(default_factory=list)
    strings: list[str] = field(default_factory=list)
    samples: list[list[Any]] = field(default_factory=list)
    labels: dict[tuple[int, int, str, int], tuple[str, int, bool]] = field(default_factory=dict)
    """(run index, k, row, path) -> (the audit's label, labeller string index, agrees with the
    judge's verdict): only the audited paths, so a page without audits carries nothing more."""
    _index: dict[str, int] = field(default_factory=dict, repr=False)

    def intern(self, text: str) -> int:
        index = self._index.get(text)
        if index is None:
            index = self._index[text] = len(self.strings)
            self.strings.append(text)
        return index

    def to_json(self) -> dict[str, Any]:
        ks = sorted({s[1] for s in self.samples})
        paths = max((s[3] for s in self.samples), default=0) + 1
        audits = []
        for index, s in enumerate(self.samples):
            found = self.labels.get((s[0], s[1], str(s[2]), s[3]))
            if found is not None:
                label, labeller, agrees = found
                audits.append([index, label, labeller, 0 if agrees else 1])
        return {
            "fields": list(FIELDS),
            "runs": [
                {
                    "label": r.label,
                    "judge": r.judge,
                    "source": r.source,
                    "samples": r.samples,
                    "audit": r.audit,
                }
                for r in self.runs
            ],
            "ks": ks,
            "paths": paths,
            "strings": self.strings,
            "samples": self.samples,
            "audit_fields": list(AUDIT_FIELDS),
            "audits": audits,
        }


# --------------------------------------------------------------------------- reading samples


def _unique(labels: Iterable[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f"{label} ({seen[label]})")
    return out


def _lines_of_run(sample_file: SampleFile, judge: str) -> list[Sample]:
    """The lines of ``judge``: lm-eval writes one line per (doc, filter) when a task has several."""
    filters = {s.data.get("filter") for s in sample_file.samples}
    if len(filters) <= 1:
        return sample_file.samples
    return [s for s in sample_file.samples if s.data.get("filter") == judge]


def _audited_paths(run: RunLike) -> tuple[str, dict[tuple[int, str, int], dict[str, Any]]]:
    """The run's audit file and its labelled paths by (k, row, path); none without an audit that
    fits the run (version 1 audit files record no paths)."""
    from .audit import audit_of  # here: the audit's labelling page uses this module

    found = audit_of(run, quiet=True) if isinstance(run, Run) else None
    if found is None:
        return "", {}
    source, block = found
    items = [i for i in block.get("items") or [] if isinstance(i, dict)]
    return str(source), {(int(i["k"]), str(i["row"]), int(i["path"])): i for i in items}


def _digest(text: str) -> str:
    from .audit import digest

    return digest(text)


def collect(runs: Sequence[RunLike]) -> Payload:
    """Every judged sample of every run, read from the run's ``sample_files`` (bad line:
    ``SampleError``), with the audit's labels where the run has an audit."""
    payload = Payload()
    labels = _unique(r.label for r in runs)
    for run_index, (run, label) in enumerate(zip(runs, labels, strict=True)):
        shown = ViewerRun(
            label=label,
            judge=run.judge,
            source=str(run.source),
            provenance=dict(run.provenance or {}),
        )
        payload.runs.append(shown)
        audit_file, audited = _audited_paths(run)
        labellers: set[str] = set()
        for _, name in sorted((run.sample_files or {}).items()):
            sample_file = read_sample_file(Path(name), label, need_row_id=False)
            shown.sample_files.append(str(name))
            for sample in _lines_of_run(sample_file, run.judge):
                records = sample_verdicts(sample, str(sample_file.path))
                request = payload.intern(sample.prompt)
                prefill = payload.intern(sample.prefill)
                row = sample.row_id if sample.row_id is not None else sample.data.get("doc_id")
                for path_index, (text, record) in enumerate(
                    zip(sample.continuations, records, strict=True)
                ):
                    position = record.get("position")
                    payload.samples.append(
                        [
                            run_index,
                            sample.k,
                            row if isinstance(row, (int, str)) else str(row),
                            path_index,
                            request,
                            prefill,
                            text,
                            record["label"],
                            position if isinstance(position, int) else None,
                            "" if record.get("raw") is None else str(record["raw"]),
                            payload.intern(str(record.get("judge") or run.judge)),
                        ]
                    )
                    shown.samples += 1
                    item = audited.get((sample.k, str(row), path_index))
                    if item is not None and item.get("sha") in (None, _digest(text)):
                        labeller = str(item.get("labeller") or "?")
                        labellers.add(labeller)
                        agrees = (item.get("label") == "yes") == (record["label"] == "yes")
                        payload.labels[(run_index, sample.k, str(row), path_index)] = (
                            str(item.get("label")),
                            payload.intern(labeller),
                            agrees,
                        )
        if audit_file:
            mine = [key for key in payload.labels if key[0] == run_index]
            shown.audit = {
                "source": audit_file,
                "labelled": len(audited),
                "shown": len(mine),
                "disagree": sum(not payload.labels[key][2] for key in mine),
                "labellers": sorted(labellers),
            }
    payload.samples.sort(key=lambda s: (s[0], s[1], _row_key(s[2]), s[3]))
    return payload


def _row_key(row: int | str) -> tuple[int, int, str]:
    if isinstance(row, int) or (isinstance(row, str) and row.isdigit()):
        return (0, int(row), "")
    return (1, 0, str(row))


# --------------------------------------------------------------------------- HTML parts


def counted(n: int, noun: str) -> str:
    """``1 run``, ``2 runs``, ``0 runs``: a count with its noun in the right number."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def json_for_script(data: Any) -> str:
    """JSON safe inside ``<script type="application/json">``: no ``<``, ``>`` or ``&`` left."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).translate(_JSON_ESCAPES)


def table_html(markdown: str) -> str:
    """The report's markdown table as an HTML table (other lines as paragraphs), all escaped."""
    rows: list[list[str]] = []
    out: list[str] = []

    def flush() -> None:
        if not rows:
            return
        head, body = rows[0], rows[1:]
        out.append('<div class="table-wrap"><table class="corr"><thead><tr>')
        out.extend(f"<th>{html.escape(c)}</th>" for c in head)
        out.append("</tr></thead><tbody>")
        for cells in body:
            out.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
        out.append("</tbody></table></div>")
        rows.clear()

    items: list[str] = []
    for line in [*markdown.splitlines(), ""]:
        text = line.strip()
        if text.startswith("|") and text.endswith("|") and len(text) > 1:
            cells = [c.strip() for c in text[1:-1].split("|")]
            if not all(re.fullmatch(r":?-{3,}:?", c) for c in cells):  # skip the separator
                rows.append(cells)
            continue
        flush()
        if text.startswith(("- ", "* ")):
            items.append(f"<li>{html.escape(text[2:])}</li>")
            continue
        if items:
            out.append('<ul class="note">' + "".join(items) + "</ul>")
            items.clear()
        if text:
            out.append(f'<p class="note">{html.escape(text)}</p>')
    return "\n".join(out)


def plot_html(png: bytes | None) -> str:
    if not png:
        return '<p class="note">No plot.</p>'
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<img alt="Corr@k per run (plot)" src="data:image/png;base64,{data}">'
        "<figcaption>Corr@k per prefill length k, one line per run, as c2-report plots it "
        "(the table gives the numbers).</figcaption>"
    )


def runs_html(runs: Sequence[ViewerRun]) -> str:
    rows = ["<table class='runs'><thead><tr><th>run</th><th>judge</th><th>samples</th>"]
    rows.append("<th>result file</th><th>sample files</th><th>provenance</th></tr></thead><tbody>")
    for run in runs:
        folders: dict[str, list[str]] = {}
        for name in run.sample_files:
            folders.setdefault(str(Path(name).parent), []).append(Path(name).name)
        files = "<br>".join(
            f"<code>{html.escape(folder)}/</code>: "
            + ", ".join(f"<code>{html.escape(n)}</code>" for n in names)
            for folder, names in folders.items()
        )
        files = files or "none (log them: lm-eval / c2-eval --log_samples)"
        rows.append(
            f"<tr><td>{html.escape(run.label)}</td><td>{html.escape(run.judge)}"
            f"{_audit_html(run.audit)}</td>"
            f"<td>{run.samples}</td><td><code>{html.escape(run.source)}</code></td>"
            f"<td>{files}</td><td>{_provenance_html(run.provenance)}</td></tr>"
        )
    rows.append("</tbody></table>")
    return "".join(rows)


def _audit_html(audit: dict[str, Any] | None) -> str:
    if not audit:
        return ""
    who = ", ".join(audit["labellers"]) or "nobody"
    return (
        f"<br>audit: {audit['shown']} labelled paths shown (by {html.escape(who)}), "
        f"{audit['disagree']} disagree with the judge; "
        f"<code>{html.escape(audit['source'])}</code>"
    )


def _provenance_html(provenance: dict[str, Any]) -> str:
    if not provenance:
        return "-"
    text = json.dumps(provenance, indent=1, ensure_ascii=False, sort_keys=True, default=str)
    return f"<details><summary>show</summary><pre>{html.escape(text)}</pre></details>"


def inline_hash(template: str, tag: str) -> str:
    """The CSP source (``'sha256-...'``) of a page template's one inline ``<style>``/``<script>``:
    the pages allow exactly their own inline code and nothing else."""
    match = re.search(rf"<{tag}>(.*?)</{tag}>", template, re.S)
    if not match:
        raise RuntimeError(f"page template: no inline <{tag}>")
    digest = hashlib.sha256(match.group(1).encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


def load_template() -> str:
    return resources.files("cc_tasks.results").joinpath(TEMPLATE).read_text(encoding="utf-8")


def render(
    payload: Payload,
    *,
    table_markdown: str,
    plot_png: bytes | None,
    title: str,
    generator: str = "c2-report",
) -> str:
    """The whole page. The CSP admits only this template's own script and style (by hash)."""
    template = load_template()
    csp = (
        "default-src 'none'; img-src data:; "
        f"style-src {inline_hash(template, 'style')}; "
        f"script-src {inline_hash(template, 'script')}; "
        "base-uri 'none'; form-action 'none'"
    )
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    total = len(payload.samples)
    meta = (
        f"{counted(len(payload.runs), 'run')}, {counted(total, 'sample')}; "
        f"made by {generator} on {created}. "
        "Filters live in the address (#k=20&verdict=yes), so a view can be bookmarked."
    )
    values = {
        "CSP": html.escape(csp),
        "GENERATOR": html.escape(generator),
        "TITLE": html.escape(title),
        "META": html.escape(meta),
        "TABLE": table_html(table_markdown),
        "PLOT": plot_html(plot_png),
        "RUNS": runs_html(payload.runs),
        "DATA": json_for_script(payload.to_json()),
    }
    # one pass: text inserted for one placeholder is never scanned for another
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def png_of(plot: Callable[[Path], None]) -> bytes:
    """Bytes of the PNG that ``plot(path)`` writes (in a private temporary folder)."""
    with tempfile.TemporaryDirectory(prefix="c2-viewer-") as tmp:
        path = Path(tmp) / "corr_at_k.png"
        plot(path)
        return path.read_bytes()


def write_html(
    path: str | Path,
    payload: Payload,
    *,
    table_markdown: str,
    plot_png: bytes | None,
    title: str,
    generator: str = "c2-report",
) -> int:
    """Write the page atomically (its folder made if missing); returns its size in bytes."""
    text = render(
        payload, table_markdown=table_markdown, plot_png=plot_png, title=title, generator=generator
    )
    atomic_write_text(path, text)
    return len(text.encode("utf-8"))


def prepare(path: str | Path, runs: Sequence[RunLike], *, overwrite: bool = False) -> Payload:
    """Check the output path, then read every sample: all before anything is written.

    A missing parent folder is fine (it is made when the page is written, as ``--out``
    makes its folder); a parent path that runs into a file is not.
    """
    target = Path(path)
    if target.is_dir():
        raise ViewerError(f"{target}: is a directory; --html needs a file name (report.html)")
    if target.exists() and not overwrite:
        raise ViewerError(f"{target}: already exists; choose another --html path or remove it")
    ancestor = target.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ViewerError(f"{ancestor}: not a folder (for --html {target})")
    return collect(runs)


def write_report(
    path: str | Path,
    payload: Payload,
    *,
    table_markdown: str,
    title: str,
    plot: Callable[[Path], None] | None = None,
    png_path: str | Path | None = None,
) -> str:
    """Write the viewer (the plot from ``png_path`` if already drawn, else drawn by ``plot``);
    returns the line to print."""
    png = Path(png_path).read_bytes() if png_path else png_of(plot) if plot else None
    size = write_html(path, payload, table_markdown=table_markdown, plot_png=png, title=title)
    return (
        f"html: {path} ({size / 1e6:.1f} MB, {counted(len(payload.runs), 'run')}, "
        f"{counted(len(payload.samples), 'sample')}; open it in a browser, it needs no network)"
    )


__all__ = [
    "AUDIT_FIELDS",
    "FIELDS",
    "Payload",
    "ViewerError",
    "ViewerRun",
    "collect",
    "json_for_script",
    "png_of",
    "prepare",
    "render",
    "table_html",
    "write_html",
    "write_report",
]
