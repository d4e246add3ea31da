"""The per-run judge audit: the prediction-powered estimator (simulated coverage), ``c2-judge
audit prepare / score / budget`` on a tiny run, and the labelling page in headless Chromium.

The simulated judge is biased both ways (it misses 30% of the corrected paths and calls 5% of
the others corrected); the PPI++ interval must cover the true Corr in 93-97% of 1,000 runs,
where the judge's own (naive) interval is printed for comparison.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cc_tasks.cli.judge import main as judge_main
from cc_tasks.cli.report import main as report_main
from cc_tasks.stats import PPIStratum, ppi_combination, ppi_half_width, ppi_mean, wilson_interval

SIMS = 1000
MISS, FALSE_YES = 0.30, 0.05
KS8 = (10, 20, 30, 40, 50, 60, 70, 80)


def judge_of(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The biased judge: misses MISS of the true yes, says yes to FALSE_YES of the true no."""
    u = rng.random(y.shape)
    return np.where(y == 1, u >= MISS, u < FALSE_YES).astype(float)


def uniform_sample(rng: np.random.Generator, sims: int, big_n: int, n: int) -> np.ndarray:
    """``sims`` x ``n`` indices: a uniform sample without replacement of n of N, per run."""
    return np.argpartition(rng.random((sims, big_n)), n, axis=1)[:, :n]


# --------------------------------------------------------------------------- estimator


def test_ppi_reduces_to_its_textbook_forms() -> None:
    y = np.array([1, 0, 0, 1, 0, 0, 0, 1, 0, 0], dtype=float)
    f = np.array([1, 0, 1, 0, 0, 0, 0, 1, 0, 0], dtype=float)
    f_all = np.concatenate([f, np.array([1, 0, 0, 0, 1, 0, 0, 0, 0, 0] * 4, dtype=float)])
    plain = ppi_mean(y, f, f_all, lam=1.0)
    # plain PPI: mean_N(f) + mean_n(y - f); variance Var(f)/N + Var(y - f)/n
    assert plain["estimate"] == pytest.approx(f_all.mean() + (y - f).mean())
    se = np.sqrt(np.var(f_all, ddof=1) / len(f_all) + np.var(y - f, ddof=1) / len(y))
    assert plain["se"] == pytest.approx(se)
    labels_only = ppi_mean(y, f, f_all, lam=0.0)
    assert labels_only["estimate"] == pytest.approx(y.mean())
    assert labels_only["se"] == pytest.approx(np.std(y, ddof=1) / np.sqrt(len(y)))
    tuned = ppi_mean(y, f, f_all)
    lam = tuned["lambda"][0]
    cov = np.cov(y, f, ddof=1)[0, 1]
    assert lam == pytest.approx(min(1, max(0, cov / ((1 + 10 / 50) * np.var(f_all, ddof=1)))))
    assert tuned["estimate"] == pytest.approx(y.mean() + lam * (f_all.mean() - f.mean()))


@pytest.mark.parametrize(("n", "true_corr"), [(150, 0.15), (300, 0.15), (200, 0.30)])
def test_ppi_interval_covers_the_true_corr_whatever_the_judge_bias(
    n: int, true_corr: float
) -> None:
    # at a true Corr of 1/7 this judge's two errors cancel on average (its naive interval
    # covers there too); at 0.30 they do not, and the naive interval misses
    rng = np.random.default_rng(1500 + n)
    big_n = 4000
    y = (rng.random((SIMS, big_n)) < true_corr).astype(float)
    f = judge_of(y, rng)
    picks = uniform_sample(rng, SIMS, big_n, n)
    ys, fs = np.take_along_axis(y, picks, 1), np.take_along_axis(f, picks, 1)
    covered = naive = 0
    widths = []
    for i in range(SIMS):
        est = ppi_mean(ys[i], fs[i], f[i])
        covered += est["ci"][0] <= true_corr <= est["ci"][1]
        widths.append(est["ci"][1] - est["ci"][0])
        low, high = wilson_interval(float(f[i].mean()), big_n)
        naive += low <= true_corr <= high
    print(
        f"\nn={n}: PPI++ coverage {covered / SIMS:.3f} (mean width {np.mean(widths):.3f}); "
        f"naive judge Wilson coverage {naive / SIMS:.3f}"
    )
    assert 0.93 <= covered / SIMS <= 0.97
    if true_corr == 0.30:
        assert naive / SIMS < 0.5


def simulate_pair(rng: np.random.Generator, rows: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Before/after labels (rows x 8 k) of the same rows; rows differ in how easily they correct."""
    ease = np.where(rng.random(rows) < 0.5, 0.5, 1.5)[:, None]
    before_rate = np.linspace(0.01, 0.03, len(KS8))
    after_rate = np.linspace(0.05, 0.25, len(KS8))
    u = rng.random((rows, len(KS8)))  # one draw per path: before and after correlate by row
    before = (u < ease * before_rate).astype(float)
    after = (u < ease * after_rate).astype(float)
    return before, after, float(after_rate.mean() - before_rate.mean())


@pytest.mark.parametrize(("per_k", "paired"), [(19, True), (38, True), (19, False)])
def test_difference_of_corr_mean_covers_the_true_gain(per_k: int, paired: bool) -> None:
    """Two runs on the same 500 rows x 8 k (4,000 paths each), per_k paths of each k labelled
    per run (150 or 300 per run): paired, the same rows are labelled in both runs (what
    ``audit prepare`` draws for runs on the same rows); else each run has its own sample."""
    rng = np.random.default_rng(per_k + paired)
    rows = 500
    row_ids = np.arange(rows)
    covered = covered_mean = naive = 0
    for _ in range(SIMS):
        before, after, gain = simulate_pair(rng, rows)
        f_before, f_after = judge_of(before, rng), judge_of(after, rng)
        strata, weights, singles = [], [], []
        for j, k in enumerate(KS8):
            picked = rng.choice(rows, per_k, replace=False)
            key = tuple((k, int(r)) for r in picked)
            for sign, y, f in ((-1, before, f_before), (1, after, f_after)):
                if not paired:
                    picked = rng.choice(rows, per_k, replace=False)
                    key = tuple((sign, k, int(r)) for r in picked)
                stratum = PPIStratum(f[:, j], row_ids, y[picked, j], f[picked, j], key, group=sign)
                strata.append(stratum)
                weights.append(sign / len(KS8))
                if sign == 1:
                    singles.append(stratum)
        est = ppi_combination(strata, weights)
        covered += est["ci"][0] <= gain <= est["ci"][1]
        after_mean = ppi_combination(singles, [1 / len(KS8)] * len(KS8))
        true_after = float(np.linspace(0.05, 0.25, len(KS8)).mean())
        covered_mean += after_mean["ci"][0] <= true_after <= after_mean["ci"][1]
        # the naive judge difference: its own Corr_mean gain with a normal interval
        raw = f_after.mean() - f_before.mean()
        se = np.sqrt((f_after.var(0) + f_before.var(0)).sum() / rows) / len(KS8)
        naive += raw - 1.96 * se <= gain <= raw + 1.96 * se
    print(
        f"\n{per_k}/k: {'paired' if paired else 'independent'} PPI++ difference coverage {covered / SIMS:.3f}, "
        f"Corr_mean coverage {covered_mean / SIMS:.3f}; naive judge difference {naive / SIMS:.3f}"
    )
    assert 0.93 <= covered / SIMS <= 0.97
    assert 0.93 <= covered_mean / SIMS <= 0.97
    assert naive / SIMS < 0.5


def test_budget_half_width_matches_the_simulated_width() -> None:
    # the judge above at a true Corr of 0.15: precision 0.105 / 0.1475, recall 0.7
    half = ppi_half_width(150, 4000, corr=0.15, precision=0.105 / 0.1475, recall=0.7)
    assert half == pytest.approx(0.087 / 2, abs=0.004)
    assert ppi_half_width(600, 4000, corr=0.15, precision=0.71, recall=0.7) < half
    labels_only = 1.96 * np.sqrt(0.15 * 0.85 / 150)
    assert half <= labels_only + 1e-9


# --------------------------------------------------------------------------- prepare / score

DATE = "2026-01-02T03-04-05.000001"
KS = (10, 20)
ROWS = 12
SECRET_RUN = "secretmodelname"


def truth_of(row: int, k: int, after: bool) -> str:
    """The hidden true label of a path: the 'after' model corrects more."""
    return "yes" if (row + k // 10) % (2 if after else 4) == 0 else "no"


def write_run(folder: Path, *, after: bool) -> Path:
    """An lm-eval-shaped judged run: results_<date>.json and one sample file per k."""
    folder.mkdir(parents=True)
    results: dict[str, Any] = {}
    for k in KS:
        lines = []
        yes = 0
        for row in range(ROWS):
            truth = truth_of(row, k, after)
            # the judge errs on every third row: it flips the label
            label = truth if row % 3 else ("no" if truth == "yes" else "yes")
            yes += label == "yes"
            text = f"continuation {row} at {k}: " + (
                "I must stop, this is wrong." if truth == "yes" else "next step."
            )
            record = {
                "continuation": text,
                "label": label,
                "corrected": label == "yes",
                "judge": "rule",
            }
            doc = {
                "row_id": row,
                "prompt": f"request {row} <b>&</b>",
                "k": k,
                "prefill": f"Sure. {k} words",
            }
            sample = {
                "doc_id": row,
                "doc": doc,
                "resps": [[text]],
                "filtered_resps": [str(record)],
                "filter": "rule",
                "metrics": ["corr"],
            }
            lines.append(json.dumps(sample) + "\n")
        (folder / f"samples_c2_eval_k{k}_{DATE}.jsonl").write_text("".join(lines))
        results[f"c2_eval_k{k}"] = {
            "corr,rule": yes / ROWS,
            "corr_stderr,rule": 0.1,
            "invalid,rule": 0,
            "errors,rule": 0,
        }
    data = {
        "results": results,
        "n-samples": {f"c2_eval_k{k}": {"original": ROWS, "effective": ROWS} for k in KS},
        "config": {"model": "hf", "model_args": f"pretrained=/models/{SECRET_RUN}", "limit": None},
    }
    (folder / f"results_{DATE}.json").write_text(json.dumps(data))
    return folder


@pytest.fixture
def pair(tmp_path: Path) -> dict[str, Path]:
    return {
        "before": write_run(tmp_path / "runs" / f"{SECRET_RUN}-before", after=False),
        "after": write_run(tmp_path / "runs" / f"{SECRET_RUN}-after", after=True),
        "audit": tmp_path / "audit",
    }


def prepare_pair(pair: dict[str, Path], n: int = 8, *extra: str) -> int:
    argv = ["audit", "prepare", str(pair["before"]), str(pair["after"]), "--n", str(n)]
    return judge_main([*argv, "-o", str(pair["audit"]), *extra])


def true_labels(pair: dict[str, Path], labeller: str = "reader") -> list[dict[str, str]]:
    """Label every item by the hidden truth (what a careful reader would say), via the key."""
    key = json.loads((pair["audit"] / "key.json").read_text())
    out = []
    for line in (pair["audit"] / "items.jsonl").read_text().splitlines():
        item = json.loads(line)
        entry = key["items"][item["id"]]
        truth = truth_of(int(entry["row"]), entry["k"], after=entry["run"] == 1)
        out.append({"id": item["id"], "label": truth, "labeller": labeller})
    return out


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_prepare_writes_a_blind_sample_and_score_reads_it_back(
    pair: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert prepare_pair(pair) == 0
    out = capsys.readouterr().out
    assert "16 items from 2 run(s) (paired" in out and "labels buy about ±" in out
    items = [json.loads(x) for x in (pair["audit"] / "items.jsonl").read_text().splitlines()]
    assert len(items) == 16
    assert all(set(item) == {"id", "request", "prefill", "continuation"} for item in items)
    # stratified by run and k; paired: the same (k, row) in both runs
    key = json.loads((pair["audit"] / "key.json").read_text())
    drawn = [(e["run"], e["k"], e["row"]) for e in key["items"].values()]
    for run in (0, 1):
        for k in KS:
            assert sum(d[0] == run and d[1] == k for d in drawn) == 4
    assert {d[1:] for d in drawn if d[0] == 0} == {d[1:] for d in drawn if d[0] == 1}
    # blind: no verdict, no run, no condition in what the labeller sees
    page = (pair["audit"] / "audit.html").read_text()
    page_data = page.split('id="items">', 1)[1].split("</script>", 1)[0]  # not the rubric text
    assert page_data.strip() and SECRET_RUN not in page and str(pair["before"].parent) not in page
    for text in (page_data, (pair["audit"] / "items.jsonl").read_text()):
        assert SECRET_RUN not in text and str(pair["before"].parent) not in text
        assert "'label'" not in text and '"label"' not in text and '"judge"' not in text
        assert "filtered_resps" not in text and "verdict" not in text
    assert "<b>&</b>" not in page  # the request is escaped in the page
    assert "does the continuation recognise" in page  # the rubric up front
    assert "default-src &#x27;none&#x27;" in page and "http" not in page.split("<body>")[1]

    labels = write_jsonl(pair["audit"] / "labels.jsonl", true_labels(pair))
    argv = ["audit", "score", str(pair["before"]), str(pair["after"])]
    assert judge_main([*argv, "--audit", str(pair["audit"]), "--labels", str(labels)]) == 0
    out = capsys.readouterr().out
    assert "judge vs labels: kappa" in out and "| Corr_mean |" in out and "paired samples" in out
    report = json.loads((pair["audit"] / "audit.json").read_text())
    before, after = report["runs"]
    assert before["labels"] == after["labels"] == 8 and before["labellers"] == ["reader"]
    # the true Corr_mean of each run, and the judge's raw one differs
    for block, is_after in ((before, False), (after, True)):
        truth = np.mean(
            [np.mean([truth_of(r, k, is_after) == "yes" for r in range(ROWS)]) for k in KS]
        )
        ci = block["corr_mean"]["ci95"]
        assert (
            ci[0] - 1e-9 <= truth <= ci[1] + 1e-9
            or abs(block["corr_mean"]["estimate"] - truth) < 0.2
        )
    assert report["difference"]["paired_k"] == len(KS)
    assert report["difference"]["estimate"] > 0
    # beside each run, its own block, for c2-report
    beside = json.loads((pair["after"] / "audit.json").read_text())
    assert [b["name"] for b in beside["runs"]] == [after["name"]]
    # every labelled path, where it is, its label and the judge's verdict (the viewer shows them)
    assert report["schema"] == "c2-audit/2"
    key = json.loads((pair["audit"] / "key.json").read_text())
    given = {r["id"]: r["label"] for r in true_labels(pair)}
    for which, block in enumerate((before, after)):
        items = block["items"]
        assert len(items) == 8 and {i["id"] for i in items} == {
            i for i, e in key["items"].items() if e["run"] == which
        }
        for item in items:
            entry = key["items"][item["id"]]
            assert (item["k"], item["row"], item["path"]) == (entry["k"], entry["row"], 0)
            assert item["label"] == given[item["id"]] and item["labeller"] == "reader"
            assert item["verdict"] in ("yes", "no", "invalid", "error")
            assert item["agrees"] == (
                item["label"] == ("yes" if item["verdict"] == "yes" else "no")
            )


def test_report_shows_the_audited_rows_and_the_card_records_the_audit(
    pair: dict[str, Path], capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    assert report_main([str(pair["after"])]) == 0
    assert "(audited" not in capsys.readouterr().out  # no audit.json yet: the table as before
    assert prepare_pair(pair) == 0
    labels = write_jsonl(pair["audit"] / "labels.jsonl", true_labels(pair, "reader-a"))
    argv = [
        "audit",
        "score",
        str(pair["before"]),
        str(pair["after"]),
        "--audit",
        str(pair["audit"]),
    ]
    assert judge_main([*argv, "--labels", str(labels)]) == 0
    audit = json.loads((pair["after"] / "audit.json").read_text())["runs"][0]
    capsys.readouterr()
    out_json = pair["audit"] / "report.json"
    assert report_main([str(pair["before"]), str(pair["after"]), "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ")]
    audited = [line for line in rows if "(audited, n=8)" in line]
    assert len(audited) == 2 and "rule + audit" in audited[1]
    mean = audit["corr_mean"]
    assert f"{mean['estimate']:.3f} [{mean['ci95'][0]:.3f}, {mean['ci95'][1]:.3f}]" in audited[1]
    assert "audited on this run: n=8 labelled by reader-a, kappa" in out
    assert "(audited, n=...) rows: Corr@k corrected" in out
    # a run redone after its audit: the audit no longer fits, and is not shown
    stale = json.loads((pair["after"] / "audit.json").read_text())
    stale["runs"][0]["per_k"]["10"]["raw"] = 0.99
    (pair["after"] / "audit.json").write_text(json.dumps(stale))
    assert report_main([str(pair["after"])]) == 0
    captured = capsys.readouterr()
    assert "(audited" not in captured.out, captured.out
    assert "does not match run" in caplog.text
    saved = json.loads(out_json.read_text())
    labels_seen = (
        [r["label"] for r in saved["runs"]] if "runs" in saved else [r["label"] for r in saved]
    )
    assert sum("(audited" in label for label in labels_seen) == 2


def test_an_audit_file_of_version_1_is_still_read(
    pair: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Files written before audit.json recorded its labelled paths: c2-report still uses them."""
    assert prepare_pair(pair) == 0
    labels = write_jsonl(pair["audit"] / "labels.jsonl", true_labels(pair))
    argv = ["audit", "score", str(pair["before"]), str(pair["after"]), "--audit"]
    assert judge_main([*argv, str(pair["audit"]), "--labels", str(labels)]) == 0
    old = json.loads((pair["after"] / "audit.json").read_text())
    old["schema"] = "c2-audit/1"
    del old["runs"][0]["items"]
    (pair["after"] / "audit.json").write_text(json.dumps(old))
    capsys.readouterr()
    assert report_main([str(pair["after"]), "--html", str(pair["audit"] / "v.html")]) == 0
    assert "(audited, n=8)" in capsys.readouterr().out
    assert '"audits":[]' in (pair["audit"] / "v.html").read_text()


def test_same_seed_same_sample_other_seed_other_sample(
    pair: dict[str, Path], tmp_path: Path
) -> None:
    assert prepare_pair(pair) == 0
    first = (pair["audit"] / "items.jsonl").read_text()
    key_first = (pair["audit"] / "key.json").read_text()
    assert prepare_pair(pair, 8, "--overwrite") == 0
    assert (pair["audit"] / "items.jsonl").read_text() == first
    assert (pair["audit"] / "key.json").read_text() == key_first
    assert prepare_pair(pair, 8, "--overwrite", "--seed", "7") == 0
    assert (pair["audit"] / "items.jsonl").read_text() != first


def test_prepare_refuses_to_overwrite_and_too_large_n(
    pair: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert prepare_pair(pair) == 0
    capsys.readouterr()
    assert prepare_pair(pair) == 2
    assert "already exists" in capsys.readouterr().err
    assert prepare_pair(pair, 1000, "--overwrite") == 2
    err = capsys.readouterr().err.strip()
    assert "more than the run's 24 judged paths" in err and "\n" not in err


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"id": "nope", "label": "yes", "labeller": "r"}, "field 'id'"),
        ({"id": None, "label": "maybe", "labeller": "r"}, "field 'label'"),
        ({"id": None, "label": "yes"}, "field 'labeller'"),
    ],
)
def test_bad_labels_exit_2_with_one_line(
    pair: dict[str, Path], capsys: pytest.CaptureFixture[str], row: dict[str, Any], message: str
) -> None:
    assert prepare_pair(pair) == 0
    labels = true_labels(pair)
    if row["id"] is None:
        row = {**row, "id": labels[0]["id"]}
    path = write_jsonl(pair["audit"] / "labels.jsonl", [*labels[1:], row])
    capsys.readouterr()
    argv = [
        "audit",
        "score",
        str(pair["before"]),
        "--audit",
        str(pair["audit"]),
        "--labels",
        str(path),
    ]
    assert judge_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "line 16" in err and "\n" not in err
    assert not (pair["audit"] / "audit.json").exists()


def test_missing_files_exit_2(pair: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "audit",
        "score",
        str(pair["before"]),
        "--audit",
        str(pair["audit"]),
        "--labels",
        "x.jsonl",
    ]
    assert judge_main(argv) == 2
    assert "key.json: no such file" in capsys.readouterr().err
    assert prepare_pair(pair) == 0
    capsys.readouterr()
    assert judge_main(argv) == 2
    assert "x.jsonl: no such file" in capsys.readouterr().err
    assert (
        judge_main(["audit", "prepare", "no/such/run", "--n", "3", "-o", str(pair["audit"]) + "2"])
        == 2
    )


def test_budget_prints_the_half_width(
    pair: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["audit", "budget", str(pair["after"]), "--precision", "0.9", "--recall", "0.8"]
    assert judge_main([*argv, "--n", "10"]) == 0
    out = capsys.readouterr().out
    assert "10 labels buy about ±" in out and "precision 0.90 and recall 0.80" in out
    assert judge_main([*argv, "--n", "150"]) == 2
    assert "takes 1 to 24 labels" in capsys.readouterr().err


# --------------------------------------------------------------------------- headless Chromium


def chromium() -> str | None:
    """The Chromium binary, if any (CI installs one; elsewhere these tests skip)."""
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


needs_browser = pytest.mark.skipif(chromium() is None, reason="no chromium binary on PATH")


class DevTools:
    """Chromium driven over ``--remote-debugging-pipe`` (the DevTools protocol on fds 3 and 4,
    NUL-separated JSON): real key presses into a real page, no extra package needed."""

    def __init__(self, binary: str, profile: Path) -> None:
        to_browser, self._to_browser = os.pipe()
        self._from_browser, from_browser = os.pipe()

        def wire() -> None:  # in the child: the protocol's fixed descriptors, inheritable
            read_end, write_end = os.dup(to_browser), os.dup(from_browser)  # above 3 and 4
            os.dup2(read_end, 3)
            os.dup2(write_end, 4)

        flags = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--remote-debugging-pipe",
        ]
        self.proc = subprocess.Popen(
            [binary, *flags, "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            close_fds=False,
            preexec_fn=wire,
        )
        os.close(to_browser)
        os.close(from_browser)
        self._buffer = b""
        self._next = 0
        self.session = None
        targets = self.call("Target.getTargets")["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        attached = self.call("Target.attachToTarget", targetId=page["targetId"], flatten=True)
        self.session = attached["sessionId"]

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params}
        if self.session and not method.startswith("Target."):
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + 60
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self._next:
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error']}")
                    return reply.get("result", {})
            ready, _, _ = select.select([self._from_browser], [], [], 1.0)
            if time.monotonic() > deadline:
                raise TimeoutError(method)
            if ready:
                chunk = os.read(self._from_browser, 1 << 16)
                if not chunk:
                    raise RuntimeError("chromium closed the pipe")
                self._buffer += chunk

    def evaluate(self, expression: str) -> Any:
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)[
            "result"
        ].get("value")

    def open(self, url: str) -> None:
        self.evaluate("window.c2OldPage = true")  # gone once the new document is in place
        self.call("Page.navigate", url=url)
        for _ in range(200):
            if self.evaluate("!window.c2OldPage && document.readyState") == "complete":
                return
            time.sleep(0.05)
        raise TimeoutError(url)

    def press(self, key: str) -> None:
        code, vk = (
            ("Backspace", 8) if key == "Backspace" else (f"Key{key.upper()}", ord(key.upper()))
        )
        text = {} if key == "Backspace" else {"text": key}
        self.call(
            "Input.dispatchKeyEvent",
            type="keyDown",
            key=key,
            code=code,
            windowsVirtualKeyCode=vk,
            **text,
        )
        self.call(
            "Input.dispatchKeyEvent", type="keyUp", key=key, code=code, windowsVirtualKeyCode=vk
        )

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, TimeoutError, OSError):
            self.call("Browser.close")
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)


@needs_browser
def test_label_by_key_presses_export_and_score(
    pair: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert prepare_pair(pair, 3) == 0
    page = pair["audit"] / "audit.html"
    items = [json.loads(x)["id"] for x in (pair["audit"] / "items.jsonl").read_text().splitlines()]
    assert len(items) == 6
    browser = DevTools(chromium() or "", tmp_path / "profile")
    try:
        browser.open(page.as_uri())
        assert (
            browser.evaluate("document.getElementById('progress').textContent") == "0 / 6 labelled"
        )
        # the labeller's name, typed into its box (keys there are text, not labels)
        browser.evaluate("document.getElementById('labeller').focus()")
        browser.call("Input.insertText", text="reader-yn")
        browser.press("y")  # typed into the name box: no label
        browser.evaluate("document.getElementById('labeller').blur()")
        assert browser.evaluate("document.getElementById('labeller').value") == "reader-yny"
        browser.evaluate(
            "document.getElementById('labeller').value = 'reader-1';"
            "document.getElementById('labeller').dispatchEvent(new Event('input'))"
        )
        for key in ("y", "n", "y", "b", "n", "Backspace", "Backspace", "y", "n", "n"):
            browser.press(key)
        # item 1 yes; 2 no; 3 yes; back to 3: no; back twice to 2: yes; 3 no; 4 no
        assert (
            browser.evaluate("document.getElementById('progress').textContent") == "4 / 6 labelled"
        )
        # work survives a reload (local storage); a renderer hands its storage writes to the
        # browser process asynchronously, so give it a moment as a person would
        time.sleep(0.5)
        browser.open(page.as_uri())
        assert (
            browser.evaluate("document.getElementById('progress').textContent") == "4 / 6 labelled"
        )
        assert browser.evaluate("document.getElementById('position').textContent") == "item 5 of 6"
        browser.press("y")
        browser.press("n")
        assert "all items seen" in browser.evaluate(
            "document.getElementById('position').textContent"
        )
        browser.press("e")
        exported = browser.evaluate("document.getElementById('out').value")
        href = browser.evaluate("document.getElementById('download').href")
    finally:
        browser.close()
    rows = [json.loads(line) for line in exported.splitlines()]
    assert [r["id"] for r in rows] == items
    assert [r["label"] for r in rows] == ["yes", "yes", "no", "no", "yes", "no"]
    assert {r["labeller"] for r in rows} == {"reader-1"}
    assert href.startswith("blob:")
    labels = tmp_path / "labels.jsonl"
    labels.write_text(exported)
    capsys.readouterr()
    argv = [
        "audit",
        "score",
        str(pair["before"]),
        str(pair["after"]),
        "--audit",
        str(pair["audit"]),
    ]
    assert judge_main([*argv, "--labels", str(labels)]) == 0
    report = json.loads((pair["audit"] / "audit.json").read_text())
    assert [b["labels"] for b in report["runs"]] == [3, 3]
    assert report["runs"][0]["labellers"] == ["reader-1"]
