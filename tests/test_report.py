"""c2-report: lm-eval-shaped result files -> side-by-side table, CSV/JSON, and a Corr@k plot."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from cc_tasks.cli.report import main
from cc_tasks.report import ReportError, load_reports

KS = (10, 20, 30, 40, 50, 60, 70, 80)


def fake_results(values: list[float], judge: str, pretrained: str, peft: str | None = None) -> dict:
    """The shape lm-eval 0.4.13 writes for our tasks (results, n-samples, config)."""
    results: dict = {}
    for k, v in zip(KS, values, strict=True):
        results[f"c2_eval_k{k}"] = {
            "alias": f" - c2_eval_k{k}",
            f"corr,{judge}": v,
            f"corr_stderr,{judge}": 0.01,
            f"invalid,{judge}": 1,
            f"errors,{judge}": 0,
            f"corr_pos,{judge}": 5.0,
            f"corr_pos_stderr,{judge}": "N/A",
        }
    results["c2_eval"] = {f"corr,{judge}": sum(values) / 8, f"corr_stderr,{judge}": 0.004}
    args = f"pretrained={pretrained}" + (f",peft={peft}" if peft else "")
    return {
        "results": results,
        "n-samples": {f"c2_eval_k{k}": {"original": 500, "effective": 20} for k in KS},
        "config": {"model": "hf", "model_args": args},
    }


def write(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def test_two_runs_side_by_side(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
    after = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2]
    write(
        tmp_path / "before" / "smol" / "results_2026.json",
        fake_results(before, "rule", "/m/SmolLM2"),
    )
    write(
        tmp_path / "after" / "smol" / "results_2026.json",
        fake_results(after, "openai:gpt-4o", "/m/SmolLM2", peft="/runs/adapter"),
    )
    out = tmp_path / "report"
    rc = main(
        [
            str(tmp_path / "before"),
            str(tmp_path / "after"),
            "--label",
            "before",
            "--label",
            "after",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "| before | rule | 0.100 ± 0.010 |" in text
    assert "| after | openai:gpt-4o | 0.900 ± 0.010 |" in text
    assert "0.450 ± 0.004" in text  # Corr_mean from the group, with its stderr
    assert "before: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.45]" in text
    rows = list(csv.DictReader((out / "report.csv").open()))
    assert [r["run"] for r in rows] == ["before", "after"]
    assert float(rows[1]["corr@10"]) == 0.9 and rows[1]["n"] == "160" and rows[1]["invalid"] == "8"
    data = json.loads((out / "report.json").read_text())
    assert data[1]["model"] == "SmolLM2 + adapter"
    png = (out / "corr_at_k.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


def test_mean_is_computed_when_the_group_is_missing(tmp_path: Path) -> None:
    data = fake_results([0.5] * 4 + [1.0] * 4, "rule", "m")
    del data["results"]["c2_eval"]
    (run,) = load_reports([write(tmp_path / "results_x.json", data)])
    assert run.corr_mean == pytest.approx(0.75) and run.corr_mean_stderr is None


def test_not_a_result_file_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = write(tmp_path / "results_bad.json", {"results": {"arc_easy": {"acc,none": 0.5}}})
    assert main([str(bad)]) == 2
    assert "no c2_eval_k* 'corr' results" in capsys.readouterr().err
    with pytest.raises(ReportError, match="no such file or folder"):
        load_reports([tmp_path / "missing"])
