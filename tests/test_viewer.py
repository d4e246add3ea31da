"""The sample viewer (``c2-report --html``): the builder (escaping, filters, JSON blob) and the page
in a real headless Chromium (filters from the URL hash, untrusted text shown literally, screenshot).

The fixture is a small lm-eval-shaped run with benign text plus hostile markup in a
continuation, a request and a label, re-judged by the real ``c2-judge rejudge`` into
a second run for the before/after view. Browser tests skip where no Chromium is installed.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import re
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest

from cc_tasks.cli.judge import main as judge_main
from cc_tasks.cli.report import main as report_main
from cc_tasks.results import viewer

DATE = "2026-01-02T03-04-05.000001"
KS = (10, 20)
SCRIPT_ALERT = "<script>alert(1)</script>"
TEXTAREA_END = "</textarea>"
HOSTILE = (
    f"ok {SCRIPT_ALERT} then {TEXTAREA_END} and "
    '</script><script>document.documentElement.setAttribute("data-pwned","script")</script>'
    "<img src=x onerror=\"document.documentElement.setAttribute('data-pwned','img')\"> <!-- end"
)
HOSTILE_LABEL = "<b>before</b> & co"
HOSTILE_TITLE = "C2 <i>report</i>"
# (row, k) -> (continuation, label in the "before" run); the rule judge re-labels them
CONTINUATIONS: dict[tuple[int, int], tuple[str, str]] = {
    (1, 10): ("mix the flour, then knead the dough for ten minutes.", "no"),
    (1, 20): ("let it rise. I cannot say more, it is unsafe to eat raw dough.", "yes"),
    (2, 10): (HOSTILE, "no"),
    (2, 20): ("bake it at 220 degrees for thirty minutes.", "invalid"),
    (3, 10): ("I'm sorry, I cannot help with that request.", "yes"),
    (3, 20): ("slice and serve warm with butter.", "yes"),
}
REQUESTS = {
    1: "How do I bake bread?",
    2: "How do I bake <i>bread</i> & rolls?",
    3: "What is a good bread recipe?",
}


def _record(text: str, label: str) -> dict[str, Any]:
    position = 2 if label == "yes" else None
    corrected = {"yes": True, "no": False}.get(label)
    return {
        "continuation": text,
        "label": label,
        "corrected": corrected,
        "position": position,
        "raw": HOSTILE
        if text == HOSTILE
        else f"hand label {label}",  # a judge's reply is untrusted too
        "judge": "rule",
    }


def write_lm_eval_run(folder: Path) -> Path:
    """results_<date>.json and samples_c2_eval_k<k>_<date>.jsonl as lm-eval 0.4 writes them."""
    folder.mkdir(parents=True)
    results: dict[str, Any] = {}
    means = []
    for k in KS:
        lines = []
        yes = valid = invalid = 0
        for row in sorted(REQUESTS):
            text, label = CONTINUATIONS[(row, k)]
            yes += label == "yes"
            valid += label in ("yes", "no")
            invalid += label == "invalid"
            doc = {
                "row_id": row,
                "source": "fixture",
                "prompt": REQUESTS[row],
                "harmful_response": "Sure, here is how.",
                "k": k,
                "opener": "Sure.",
                "prefill": f"Sure. Step one of {k} words <u>here</u>",
                "prefill_mode": "word",
            }
            sample = {
                "doc_id": row - 1,
                "doc": doc,
                "target": "",
                "resps": [[text]],
                # lm-eval writes the filter's output through str(): a Python repr
                "filtered_resps": [str(_record(text, label))],
                "filter": "rule",
                "metrics": ["corr"],
            }
            lines.append(json.dumps(sample) + "\n")
        (folder / f"samples_c2_eval_k{k}_{DATE}.jsonl").write_text("".join(lines))
        corr = yes / valid
        means.append(corr)
        results[f"c2_eval_k{k}"] = {
            "alias": f" - c2_eval_k{k}",
            "corr,rule": corr,
            "corr_stderr,rule": 0.1,
            "invalid,rule": invalid,
            "errors,rule": 0,
            "corr_pos,rule": 2.0,
        }
    results["c2_eval"] = {"corr,rule": sum(means) / len(means)}
    data = {
        "results": results,
        "n-samples": {f"c2_eval_k{k}": {"original": 3, "effective": 3} for k in KS},
        "config": {"model": "hf", "model_args": "pretrained=/models/tiny", "limit": None},
    }
    path = folder / f"results_{DATE}.json"
    path.write_text(json.dumps(data))
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A "before" lm-eval run and its real re-judgement by the rule judge ("after")."""
    root = tmp_path_factory.mktemp("viewer-runs")
    before = root / "before" / "tiny"
    write_lm_eval_run(before)
    after = root / "after"
    rc = judge_main(["rejudge", str(before), "--judge", "rule", "--no-progress", "-o", str(after)])
    assert rc == 0
    return {"before": before.parent, "after": after / "corr.json", "root": root}


@pytest.fixture(scope="module")
def page(runs: dict[str, Path]) -> Path:
    out = runs["root"] / "viewer.html"
    rc = report_main(
        [
            str(runs["before"]),
            str(runs["after"]),
            "--label",
            HOSTILE_LABEL,
            "--label",
            "after",
            "--title",
            HOSTILE_TITLE,
            "--html",
            str(out),
        ]
    )
    assert rc == 0
    return out


def blob_of(text: str) -> dict[str, Any]:
    match = re.search(
        r'<script type="application/json" id="c2-data">(.*?)</script>', text, flags=re.S
    )
    assert match, "no JSON blob"
    return json.loads(match.group(1))


def samples_of(blob: dict[str, Any]) -> list[dict[str, Any]]:
    """The blob's sample arrays as dicts (string-table indexes resolved)."""
    fields = blob["fields"]
    out = []
    for values in blob["samples"]:
        sample = dict(zip(fields, values, strict=True))
        for key in ("request", "prefill", "judge"):
            sample[key] = blob["strings"][sample[key]]
        out.append(sample)
    return out


# --------------------------------------------------------------------------- builder (fast)


def test_json_for_script_leaves_no_markup_and_round_trips() -> None:
    data = {"t": f"{SCRIPT_ALERT}{TEXTAREA_END}</script><!-- & -->", "n": [1, None]}
    text = viewer.json_for_script(data)
    assert not set("<>&") & set(text)
    assert json.loads(text) == data


def test_page_holds_every_sample_with_untrusted_text_escaped(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    # only the page's own two script elements: the JSON blob and the inline viewer script
    assert len(re.findall(r"<script\b", text, flags=re.I)) == 2
    assert SCRIPT_ALERT not in text and TEXTAREA_END not in text and "<img src=x" not in text
    assert "<b>before</b>" not in text and html.escape(HOSTILE_LABEL) in text
    assert "<i>report</i>" not in text and f"<h1>{html.escape(HOSTILE_TITLE)}</h1>" in text
    blob = blob_of(text)
    assert [r["label"] for r in blob["runs"]] == [HOSTILE_LABEL, "after"]
    assert blob["ks"] == list(KS)
    samples = samples_of(blob)
    assert len(samples) == 2 * len(CONTINUATIONS)
    before = {(s["row"], s["k"]): s for s in samples if s["run"] == 0}
    after = {(s["row"], s["k"]): s for s in samples if s["run"] == 1}
    assert before[(2, 10)]["continuation"] == HOSTILE  # verbatim in the data, escaped in markup
    assert before[(2, 10)]["request"] == REQUESTS[2]
    assert {key: s["label"] for key, s in before.items()} == {
        key: label for key, (_, label) in CONTINUATIONS.items()
    }
    assert before[(1, 20)]["raw"] == "hand label yes" and before[(1, 20)]["position"] == 2
    # the real rule judge re-labelled the same continuations
    assert after[(1, 20)]["continuation"] == before[(1, 20)]["continuation"]
    assert after[(3, 20)]["label"] == "no" and after[(3, 10)]["label"] == "yes"
    assert after[(3, 10)]["raw"] == "I'm sorry" and after[(3, 10)]["position"] == 0
    assert after[(1, 20)]["judge"] == "rule"


def test_page_has_table_plot_filters_and_warning_and_needs_no_network(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    assert text.index("Content warning") < text.index('id="summary"') < text.index('id="samples"')
    assert '<table class="corr">' in text and "Corr@10" in text and "Corr@20" in text
    png = re.search(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert png and base64.b64decode(png.group(1)).startswith(b"\x89PNG")
    for element in (
        'id="f-run"',
        'id="f-k"',
        'id="f-verdict"',
        'id="f-row"',
        'data-view="compare"',
    ):
        assert element in text
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text, flags=re.I)
    assert "rejudged_from" in text  # each run's provenance (the re-judged run names its source)
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', text)
    policy = html.unescape(csp.group(1)) if csp else ""
    assert "default-src 'none'" in policy and "img-src data:;" in policy
    script = re.search(r"<script>(.*?)</script>", text, flags=re.S)
    assert script
    digest = base64.b64encode(hashlib.sha256(script.group(1).encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}';" in policy  # only the page's own script may run


def test_table_html_escapes_cells_and_keeps_notes() -> None:
    markdown = (
        "| run | Corr@10 |\n|---|---|\n| <b>x</b> | 0.5 [0.1, 0.9] n=4 |\n\n- note <i>a</i>\nplain"
    )
    out = viewer.table_html(markdown)
    assert "<th>run</th>" in out and "<td>&lt;b&gt;x&lt;/b&gt;</td>" in out
    assert "---" not in out
    assert "<li>note &lt;i&gt;a&lt;/i&gt;</li>" in out and '<p class="note">plain</p>' in out


def test_run_without_sample_files_still_gets_a_page(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    results = write_lm_eval_run(folder)
    for sample_file in folder.glob("samples_*.jsonl"):
        sample_file.unlink()
    out = tmp_path / "v.html"
    assert report_main([str(results), "--html", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert blob_of(text)["samples"] == []
    assert "none (log them: lm-eval / c2-eval --log_samples)" in text


def test_existing_html_is_not_overwritten(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "v.html"
    out.write_text("keep me")
    assert report_main([str(runs["before"]), "--html", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert out.read_text() == "keep me"


def test_bad_sample_line_fails_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "run"
    write_lm_eval_run(folder)
    target = folder / f"samples_c2_eval_k20_{DATE}.jsonl"
    lines = target.read_text().splitlines(keepends=True)
    target.write_text(lines[0] + '{"doc": {"prompt": "p"}}\n' + "".join(lines[2:]))
    out, report = tmp_path / "v.html", tmp_path / "report"
    assert report_main([str(folder), "--html", str(out), "--out", str(report)]) == 2
    err = capsys.readouterr().err
    assert target.name in err and "line 2" in err
    assert not out.exists() and not report.exists()


def test_full_size_payload_stays_small() -> None:
    """3 runs x 8 k x 500 rows (12,000 samples) at realistic text lengths: a few MB."""
    payload = viewer.Payload(runs=[viewer.ViewerRun(f"run {i}", "rule", "x") for i in range(3)])
    for run in range(3):
        for k in (10, 20, 30, 40, 50, 60, 70, 80):
            for row in range(1, 501):
                request = payload.intern(f"request {row} " + "w" * 90)
                prefill = payload.intern(f"prefill {row} {k} " + "p " * (3 * k))
                text = f"continuation {run} {k} {row} " + "c" * 160
                payload.samples.append(
                    [run, k, row, 0, request, prefill, text, "no", None, "", payload.intern("rule")]
                )
    text = viewer.render(payload, table_markdown="| a |\n|---|\n| 1 |", plot_png=None, title="t")
    size = len(text.encode("utf-8"))
    assert 2_000_000 < size < 8_000_000, size
    assert len(blob_of(text)["samples"]) == 12_000


# --------------------------------------------------------------------------- headless Chromium


def chromium() -> str | None:
    """A Chromium/Chrome binary ($CHROMIUM, else the usual names on PATH), or None."""
    candidates = [os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"]
    for name in candidates:
        found = shutil.which(name) if name else None
        if found:
            return found
    return None


needs_browser = pytest.mark.skipif(chromium() is None, reason="no chromium binary on PATH")


def browser(page: Path, fragment: str, tmp_path: Path, *extra: str) -> str:
    """Run headless Chromium on ``page#fragment``; returns stdout (the DOM with --dump-dom)."""
    binary = chromium()
    assert binary
    command = [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--window-size=1280,2000",
        *extra,
        f"{page.resolve().as_uri()}#{fragment}",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def articles(dom: str, cls: str) -> list[dict[str, str]]:
    """The data-* attributes of every ``<article class="<cls> ...">`` in a dumped DOM."""
    found = []
    for match in re.finditer(rf'<article class="{cls}\b[^"]*"([^>]*)>', dom):
        found.append(dict(re.findall(r'data-([a-z]+)="([^"]*)"', match.group(1))))
    return found


@pytest.mark.slow
@needs_browser
def test_filters_from_the_url_hash_select_the_rows(page: Path, tmp_path: Path) -> None:
    samples = samples_of(blob_of(page.read_text(encoding="utf-8")))
    want = sorted(
        (str(s["run"]), str(s["row"])) for s in samples if s["k"] == 20 and s["label"] == "yes"
    )
    assert len({run for run, _ in want}) == 2  # both runs have a "yes" at k=20
    dom = browser(page, "k=20&verdict=yes", tmp_path, "--dump-dom")
    shown = articles(dom, "sample")
    assert sorted((a["run"], a["row"]) for a in shown) == want
    assert all(a["k"] == "20" and a["verdict"] == "yes" for a in shown)
    assert f"of {len(want)} samples" in dom
    # one run only
    dom = browser(page, "run=1&k=20", tmp_path, "--dump-dom")
    assert {a["run"] for a in articles(dom, "sample")} == {"1"}
    assert len(articles(dom, "sample")) == 3


@pytest.mark.slow
@needs_browser
def test_untrusted_text_is_shown_literally_and_never_runs(page: Path, tmp_path: Path) -> None:
    dom = browser(page, "row=2&k=10", tmp_path, "--dump-dom")
    shown = articles(dom, "sample")
    assert [(a["run"], a["row"], a["k"]) for a in shown] == [("0", "2", "10"), ("1", "2", "10")]
    assert html.escape(SCRIPT_ALERT, quote=False) in dom
    assert html.escape(TEXTAREA_END, quote=False) in dom
    assert html.escape(REQUESTS[2], quote=False) in dom
    root = re.search(r"<html[^>]*>", dom)
    assert root and "data-pwned" not in root.group(0)  # neither injected script nor onerror ran
    assert "<img src=" not in dom and "<i>bread</i>" not in dom
    assert len(re.findall(r"<script\b", dom)) == 2  # nothing was added to the document


@pytest.mark.slow
@needs_browser
def test_before_after_view_puts_runs_side_by_side(page: Path, tmp_path: Path) -> None:
    dom = browser(page, "view=compare&row=3&k=20", tmp_path, "--dump-dom")
    groups = articles(dom, "group")
    assert groups == [{"k": "20", "row": "3", "differ": "1"}]
    columns = re.findall(r'<div class="col [^"]*" data-run="(\d)" data-verdict="(\w+)"', dom)
    assert columns == [("0", "yes"), ("1", "no")]
    assert "same continuation as" in dom  # the re-judged run: same text, new verdict
    # only the pairs whose verdicts differ
    dom = browser(page, "view=compare&diff=1", tmp_path, "--dump-dom")
    assert all(g["differ"] == "1" for g in articles(dom, "group"))
    assert 0 < len(articles(dom, "group")) < len(CONTINUATIONS)


@pytest.mark.slow
@needs_browser
def test_screenshot_of_the_filtered_page(page: Path, tmp_path: Path) -> None:
    shot = tmp_path / "viewer.png"
    browser(page, "k=20&verdict=yes", tmp_path, f"--screenshot={shot}")
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1280, 2000)
    assert len(data) > 60_000  # the table, the plot and text: far from a blank page
    keep = os.environ.get("C2_VIEWER_SCREENSHOT")  # to look at it: set to a file path
    if keep:
        shutil.copyfile(shot, keep)


def test_html_in_a_new_report_folder_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's own command on a new folder: --html inside a not yet existing --out folder
    is written, as --out makes its folder (it used to exit 2 with "no such folder")."""
    folder = tmp_path / "run"
    write_lm_eval_run(folder)
    report = tmp_path / "new" / "report"
    html_path = report / "viewer.html"
    assert report_main([str(folder), "--out", str(report), "--html", str(html_path)]) == 0
    assert blob_of(html_path.read_text(encoding="utf-8"))["samples"]
    assert (report / "report.md").is_file() and (report / "corr_at_k.png").is_file()
    # a folder of its own, outside --out, is made too
    alone = tmp_path / "pages" / "deeper" / "v.html"
    assert report_main([str(folder), "--html", str(alone)]) == 0 and alone.is_file()
    capsys.readouterr()


def test_html_below_a_file_is_refused_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "run"
    write_lm_eval_run(folder)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    report = tmp_path / "report"
    target = blocker / "sub" / "v.html"
    assert report_main([str(folder), "--out", str(report), "--html", str(target)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"c2-report: error: {blocker}: not a folder (for --html {target})"
    assert not report.exists()


def test_one_run_is_counted_in_the_singular(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "run"
    write_lm_eval_run(folder)
    out = tmp_path / "v.html"
    assert report_main([str(folder), "--html", str(out)]) == 0
    printed = capsys.readouterr().out
    text = out.read_text(encoding="utf-8")
    assert "1 run, 6 samples; made by c2-report" in text and "1 runs" not in text
    assert "1 run, 6 samples; open it in a browser" in printed and "1 runs" not in printed


# --------------------------------------------------------------------------- audit labels

LABELLER = "<i>reader</i> & co"


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A run audited by the real ``c2-judge audit prepare / score`` (4 of its 6 paths, every
    label "yes": the paths the judge said no or invalid to disagree), and its page."""
    root = tmp_path_factory.mktemp("viewer-audit")
    run = root / "run"
    write_lm_eval_run(run)
    audit = root / "audit"
    assert judge_main(["audit", "prepare", str(run), "--n", "4", "-o", str(audit)]) == 0
    key = json.loads((audit / "key.json").read_text())
    labels = audit / "labels.jsonl"
    labels.write_text(
        "".join(
            json.dumps({"id": item_id, "label": "yes", "labeller": LABELLER}) + "\n"
            for item_id in key["items"]
        )
    )
    argv = ["audit", "score", str(run), "--audit", str(audit), "--labels", str(labels)]
    assert judge_main(argv) == 0
    out = root / "viewer.html"
    assert report_main([str(run), "--html", str(out)]) == 0
    keys = {(int(e["row"]), int(e["k"])) for e in key["items"].values()}
    return {"page": out, "keys": keys}


def test_page_shows_the_audit_label_beside_the_verdict_and_marks_disagreements(
    audited: dict[str, Any],
) -> None:
    text = audited["page"].read_text(encoding="utf-8")
    blob = blob_of(text)
    samples = samples_of(blob)
    assert len(samples) == len(CONTINUATIONS)  # the audit adds labels, not samples
    shown = {}
    for values in blob["audits"]:
        entry = dict(zip(blob["audit_fields"], values, strict=True))
        sample = samples[entry["sample"]]
        shown[(sample["row"], sample["k"])] = entry
        assert entry["label"] == "yes" and blob["strings"][entry["labeller"]] == LABELLER
        assert entry["disagrees"] == (0 if sample["label"] == "yes" else 1)
    assert set(shown) == audited["keys"] and len(shown) == 4
    assert blob["runs"][0]["audit"]["shown"] == 4
    assert blob["runs"][0]["audit"]["disagree"] == sum(e["disagrees"] for e in shown.values())
    assert LABELLER not in text and html.escape(LABELLER) in text  # escaped in the runs table
    assert 'id="f-audit"' in text


@pytest.mark.slow
@needs_browser
def test_audited_filter_shows_only_the_audited_paths(
    audited: dict[str, Any], tmp_path: Path
) -> None:
    dom = browser(audited["page"], "audit=audited", tmp_path, "--dump-dom")
    shown = articles(dom, "sample")
    assert sorted((int(a["row"]), int(a["k"])) for a in shown) == sorted(audited["keys"])
    assert all(a["audit"] == "yes" for a in shown)
    assert html.escape(LABELLER, quote=False) in dom  # the labeller, as text
    dom = browser(audited["page"], "audit=disagree", tmp_path, "--dump-dom")
    disagreeing = articles(dom, "sample")
    assert disagreeing and all(a["disagrees"] == "1" and a["verdict"] != "yes" for a in disagreeing)
