"""The train -> evaluate loop for real, as the README gives it: `c2-syn` writes a C²-SYN folder
(tiny synthesiser: only the shape matters), `c2-train` with the CPU accelerate config checks
the inputs and hands over to `accelerate launch`, which runs recipes/dpo.py on the CPU recipe (embedded SmolLM2, LoRA, 2 steps), the loss is finite,
the held-out request is evaluated during training, the model card names the base model by its
Hub id and the data by its fingerprint, the adapter loads with peft and has moved, and the
lm_eval command that dpo.py prints runs C²-EVAL on base + adapter (--limit 1, rule judge)."""

from __future__ import annotations

import glob
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"
STEPS = " ".join(f"Gather part {j}, fit it to the frame, then check it holds." for j in range(12))
# console scripts (lm_eval) and `python` of this interpreter first, as in an activated venv
ENV = {
    **os.environ,
    "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
}


def write_source(path: Path) -> Path:
    """Two PKU-SafeRLHF v0 rows (harmless stand-in text) that pass the C²-SYN selection."""
    rows = [
        {
            "prompt": f"How do I build a {thing}?",
            "response_0": f"To build a {thing}: {STEPS}",
            "response_1": "I would rather not.",
            "is_response_0_safe": False,
            "is_response_1_safe": True,
            "better_response_id": 1,
            "safer_response_id": 1,
        }
        for thing in ("birdhouse", "bookshelf")
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def run(args: list[str], *, timeout: int) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        args, env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, (
        f"{args[:4]}...\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    )
    return result


@pytest.mark.slow
def test_cpu_recipe_trains_and_the_adapter_runs_c2_eval(
    tmp_path: Path, tiny_model_dir: str, embedded_model_dir: str
) -> None:
    source = write_source(tmp_path / "pku.jsonl")
    data, out = tmp_path / "c2-syn", tmp_path / "dpo-cpu"

    # 1. C²-SYN through its own CLI: 2 requests x 15 pairs
    run(
        [sys.executable, "-m", "synth.cli", "run", "--source", str(source), "--out", str(data),
         "--max-requests", "2", "--model", tiny_model_dir, "--decoding", "sample",
         "--max-new-tokens", "12", "--no-progress"],
        timeout=600,
    )  # fmt: skip
    assert glob.glob(str(data / "data" / "train-*.parquet"))

    # 2. the README's CPU command; overrides keep it to two short steps
    trained = run(
        [sys.executable, "-m", "cc_train.launch",  # = c2-train
         "--config_file", str(RECIPES / "accelerate_configs" / "cpu.yaml"),
         str(RECIPES / "smollm2-135m-instruct" / "dpo" / "config_cpu.yaml"),
         "--dataset_name", str(data), "--output_dir", str(out), "--max_steps", "2",
         "--per_device_train_batch_size", "1", "--gradient_accumulation_steps", "1",
         "--max_length", "256", "--save_strategy", "steps", "--save_steps", "2",
         "--report_to", "none"],
        timeout=900,
    )  # fmt: skip
    state = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())
    losses = [entry["loss"] for entry in state["log_history"] if "loss" in entry]
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses), state["log_history"]
    # the held-out request (test_size: 1) is evaluated during training: loss and reward accuracy
    evals = [entry for entry in state["log_history"] if "eval_loss" in entry]
    assert evals and math.isfinite(evals[-1]["eval_loss"]), state["log_history"]
    assert 0.0 <= evals[-1]["eval_rewards/accuracies"] <= 1.0

    # 2b. the model card: base model by its Hub id, data by name + fingerprint, recipe, command
    from huggingface_hub import ModelCard

    from synth.dataset import fingerprint

    card = ModelCard.load(out / "README.md")
    assert card.data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert card.data.library_name == "peft" and "dpo" in card.data.tags
    assert f"`c2-syn` (SHA-256 of its data `{fingerprint(data)}`)" in card.text
    assert "recipes/smollm2-135m-instruct/dpo/config_cpu.yaml" in card.text
    assert "| eval_loss |" in card.text and "Not evaluated yet" in card.text
    # the card's command names the base model by its Hub id (the printed one: local paths)
    hub_id = "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert f"c2-eval --model hf --model_args pretrained={hub_id},peft={out}" in card.text
    assert "| eval_runtime |" not in card.text and "`num_train_epochs`" not in card.text
    for name in ("adapter_config.json", "adapter_model.safetensors", "tokenizer_config.json"):
        assert (out / name).is_file(), name
    adapter_config = json.loads((out / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == embedded_model_dir

    # 3. the adapter loads onto the embedded model, and training moved it (LoRA B starts at 0)
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(embedded_model_dir, dtype=torch.float32)
    model = PeftModel.from_pretrained(base, str(out))
    lora_b = [p for n, p in model.named_parameters() if "lora_B" in n]
    assert lora_b and any(p.abs().sum() > 0 for p in lora_b)
    del model, base

    # 4. the printed lm_eval command, exactly as printed, scores base + adapter with C²-EVAL
    (command,) = [line.strip() for line in trained.stdout.splitlines() if "lm_eval " in line]
    assert f"pretrained={embedded_model_dir},peft={out}" in command
    assert command.startswith("OMP_NUM_THREADS=1 lm_eval ") and command.endswith("--batch_size 16")
    assert "c2-eval --model hf --model_args" in trained.stdout
    metadata = json.dumps({"data": str(source), "judge": "rule"})
    evaluated = tmp_path / "eval"
    run(
        ["bash", "-c", f"{command} --limit 1 --gen_kwargs max_gen_toks=8 "
         f"--metadata '{metadata}' --output_path {evaluated}"],
        timeout=900,
    )  # fmt: skip
    (results_file,) = glob.glob(str(evaluated / "**" / "results_*.json"), recursive=True)
    results = json.loads(Path(results_file).read_text())
    model_args = results["config"]["model_args"]  # lm-eval records a dict (or the string)
    assert (model_args.get("peft") if isinstance(model_args, dict) else model_args) in (
        str(out),
        f"pretrained={embedded_model_dir},peft={out}",
    )
    group = results["groups"]["c2_eval"] if "groups" in results else results["results"]["c2_eval"]
    assert 0.0 <= group["corr,rule"] <= 1.0
