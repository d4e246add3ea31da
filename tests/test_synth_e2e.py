"""C²-SYN end to end: `c2-syn run` on the embedded SmolLM2 and the real rows, then TRL DPO on it."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from cc_tasks.pku import load_rows, select_syn
from cc_tasks.prefill import OPENERS
from synth.dataset import load_c2syn
from synth.truncate import TRIGGERS


@pytest.mark.slow
def test_run_on_smollm2_gives_pairs_that_dpo_trains_on(
    c2_eval_rows_path: Path, tiny_model_dir: str, tmp_path: Path
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    out = tmp_path / "c2syn"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "synth.cli",
            "run",
            "--source",
            str(c2_eval_rows_path),
            "--max-requests",
            "1",
            "--max-new-tokens",
            "16",
            "--out",
            str(out),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "pairs:     15 (train 15, test 0)" in proc.stdout
    assert "tokens/s" in proc.stdout

    ds = load_c2syn(out)  # exactly this folder's files, whatever the datasets cache holds
    train = ds["train"]
    assert train.num_rows == 15 and set(ds) == {"train"}
    row = train[0]
    assert row["synthesizer"] == "HuggingFaceTB/SmolLM2-135M-Instruct (embedded)"
    assert row["decoding"].startswith("diverse-beam(num_beams=2,num_beam_groups=2,")
    ranked = {r["chosen_rank"]: r["chosen"][0]["content"] for r in train}
    ranked[5] = next(r["rejected"][0]["content"] for r in train if r["rejected_rank"] == 5)
    for i in range(1, 5):  # r1..r4: opener + prefix + trigger, continued by SmolLM2
        text, opener, trigger = ranked[i], row["opener"][i - 1], row["trigger"][i - 1]
        assert opener in OPENERS and trigger in TRIGGERS
        assert text.startswith(opener) and trigger in text
        assert len(text.split(trigger, 1)[1].strip()) > 0  # the model wrote something after it
    rows, _ = load_rows(c2_eval_rows_path, split="train", need_unsafe=False)
    (_, first, harmful), *_ = select_syn(rows, limit=1)
    assert row["prompt"] == [{"role": "user", "content": first["prompt"]}]
    assert ranked[5] == harmful  # r5 is y itself
    assert "C²-SYN" in (out / "README.md").read_text()

    # TRL's DPOTrainer takes the train split as it is (the tiny model keeps this fast)
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    config = DPOConfig(
        output_dir=str(tmp_path / "dpo"),
        max_steps=1,
        per_device_train_batch_size=2,
        learning_rate=1e-4,
        max_length=384,
        bf16=False,
        gradient_checkpointing=False,
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
    )
    trainer = DPOTrainer(model=model, args=config, train_dataset=train, processing_class=tok)
    result = trainer.train()
    assert result.global_step == 1 and math.isfinite(result.training_loss)
