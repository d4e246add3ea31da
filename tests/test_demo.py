"""The end-to-end demo in --quick mode: evaluate -> synthesise -> DPO -> evaluate -> report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_quick_demo_runs_every_step(c2_eval_rows_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "demo"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "demo/run_demo.py",
            "--quick",
            "--data",
            str(c2_eval_rows_path),
            "--out",
            str(out),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "demo_summary.json").read_text())
    assert set(summary["timings_s"]) >= {
        "eval before",
        "synthesise C²-SYN",
        "train DPO (LoRA, CPU)",
        "eval after",
        "report",
    }
    # the two halves are disjoint by request and cover all 500 rows
    eval_prompts = {
        json.loads(x)["prompt"] for x in (out / "eval_half.jsonl").read_text().splitlines()
    }
    syn_prompts = {
        json.loads(x)["prompt"] for x in (out / "syn_half.jsonl").read_text().splitlines()
    }
    assert not eval_prompts & syn_prompts
    assert summary["eval_half_rows"] + summary["syn_half_rows"] == 500
    # the adapter was trained and evaluated; the report compares both runs
    assert (out / "dpo-adapter" / "adapter_config.json").is_file()
    report = json.loads((out / "report" / "report.json").read_text())
    assert [r["label"] for r in report] == ["SmolLM2 before DPO", "SmolLM2 + C²-SYN DPO adapter"]
    assert all(sum(r["n"].values()) == 8 * 2 for r in report)  # 2 rows x 8 prefill lengths
    assert (out / "report" / "corr_at_k.png").stat().st_size > 10_000
    # the synthetic data is a loadable Hub folder with 15 pairs per kept request
    import datasets

    ds = datasets.load_dataset(str(out / "c2syn"), split="train")
    assert len(ds) % 15 == 0 and len(ds) > 0
