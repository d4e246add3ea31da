"""Shared-response DPO (cc_train.shared_dpo) against TRL's stock DPOTrainer on the same pairs.

On the tiny random Llama (SmolLM2 tokenizer and chat template): the loss, every gradient and
every logged metric equal stock's (LoRA and full fine-tuning, truncation both ways, reference
precomputed or on the fly); one optimizer step with gradient accumulation lands on the same
weights; a resumed run replays a straight run; 2 DDP processes (gloo) equal one process with
twice the batch; the recipe option, the whole-request cut, the refusals and the CPU thread
choice do what they say.
"""

from __future__ import annotations

import ast
import importlib.util
import math
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import TrainerCallback

from cc_train.batches import (
    RequestBatchSampler,
    SharedResponseCollator,
    request_groups,
    select_whole_requests,
)
from cc_train.cpu_threads import choose_threads, usable_cores
from cc_train.shared_dpo import TOKEN_COLUMNS, SharedResponseDPOTrainer, unsupported_options
from synth.pairs import request_pairs

ROOT = Path(__file__).resolve().parents[1]
CPU_RECIPE = ROOT / "recipes" / "smollm2-135m-instruct" / "dpo" / "config_cpu.yaml"
METRICS = (
    "entropy",
    "num_tokens",
    "logits/chosen",
    "logits/rejected",
    "mean_token_accuracy",
    "rewards/chosen",
    "rewards/rejected",
    "rewards/accuracies",
    "rewards/margins",
    "logps/chosen",
    "logps/rejected",
)


# ---------------------------------------------------------------- data and trainers


def c2syn_rows(n_requests: int) -> list[dict[str, Any]]:
    """C²-SYN pair rows written by synth.pairs.request_pairs (harmless stand-in text):
    six ranked responses of clearly different lengths, 15 ordered pairs per request."""
    rows = []
    for i in range(n_requests):
        steps = [f"Fold corner {j} of boat {i} to the middle, press it flat." for j in range(8)]
        opener, trigger = "Sure, here is how.", "However, I must stop here."
        responses = [f"I'd rather not help with boat {i}."]
        responses += [f"{opener} {' '.join(steps[: 2 * r])} {trigger}" for r in range(1, 5)]
        responses.append(" ".join(steps))
        record = {
            "prompt": f"How do I fold paper boat number {i}?",
            "responses": responses,
            "request_id": f"{i + 1:06d}-test",
            "source_row": i + 1,
            "prefix_lengths": [0, 10, 20, 30, 40, 50],
            "openers": [opener] * 4,
            "triggers": [trigger] * 4,
        }
        rows += request_pairs(record, synthesizer="hand-made", decoding="none", gate="unchecked")
    return rows


def pairs_dataset(n_requests: int) -> Any:
    from datasets import Dataset

    return Dataset.from_list(c2syn_rows(n_requests))


def make_trainer(
    cls: type,
    model_dir: str,
    dataset: Any,
    out: Path,
    *,
    lora: bool = True,
    **config: Any,
) -> Any:
    from peft import LoraConfig
    from transformers import AutoTokenizer
    from trl import DPOConfig

    settings: dict[str, Any] = {
        "output_dir": str(out),
        "per_device_train_batch_size": 1,
        "max_steps": 1,
        "learning_rate": 1e-3,
        "report_to": "none",
        "use_cpu": True,
        "bf16": False,
        "gradient_checkpointing": False,
        "logging_steps": 1,
        "save_strategy": "no",
        "disable_tqdm": True,
        "max_length": 1024,
    }
    settings.update(config)
    peft_config = (
        LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
        if lora
        else None
    )
    return cls(
        model=model_dir,
        args=DPOConfig(**settings),
        train_dataset=dataset,
        processing_class=AutoTokenizer.from_pretrained(model_dir),
        peft_config=peft_config,
    )


def perturb(model: torch.nn.Module, seed: int = 1, scale: float = 0.05) -> None:
    """Move the trainable weights away from the reference the same way in every trainer
    (LoRA's B starts at 0, where the policy equals the reference and every reward is 0)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, param in sorted(model.named_parameters()):
            if param.requires_grad:
                param.add_(torch.randn(param.shape, generator=generator) * scale)


def loss_grads_metrics(trainer: Any, rows: range) -> tuple[float, dict[str, torch.Tensor], dict]:
    """compute_loss + backward on the given pair rows, collated by the trainer's own collator."""
    trainer.model.train()
    columns = ["prompt_ids", "chosen_ids", "rejected_ids"]
    columns += [
        c
        for c in ("ref_chosen_logps", "ref_rejected_logps")
        if c in trainer.train_dataset.column_names
    ]
    examples = [{c: trainer.train_dataset[i][c] for c in columns} for i in rows]
    batch = trainer._prepare_inputs(trainer.data_collator(examples))
    trainer.model.zero_grad()
    trainer._metrics["train"].clear()
    loss = trainer.compute_loss(trainer.model, batch)
    loss.backward()
    grads = {
        name: param.grad.detach().clone()
        for name, param in trainer.model.named_parameters()
        if param.requires_grad
    }
    metrics = {key: values[-1] for key, values in trainer._metrics["train"].items()}
    return loss.item(), grads, metrics


class StopAt(TrainerCallback):
    """Stops training after a given step, as an interrupted run would."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if state.global_step >= self.step:
            control.should_training_stop = True
        return control


def trainable(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def first_tokens(inputs: dict[str, torch.Tensor]) -> int:
    """Which request a batch holds: the token ids of its first sequence, summed."""
    return int(inputs["input_ids"][0].sum())


def spy_on_loss(
    monkeypatch: pytest.MonkeyPatch, record: Callable[[Any, dict[str, torch.Tensor]], None]
) -> None:
    """Calls ``record(trainer, batch)`` on every batch the trainer's compute_loss sees."""
    original = SharedResponseDPOTrainer.compute_loss

    def spy(self: Any, model: Any, inputs: dict[str, torch.Tensor], *args: Any, **kw: Any) -> Any:
        record(self, inputs)
        return original(self, model, inputs, *args, **kw)

    monkeypatch.setattr(SharedResponseDPOTrainer, "compute_loss", spy)


# ---------------------------------------------------------------- collator and sampler


def test_collator_forwards_each_response_once_and_keeps_each_pairs_boundary() -> None:
    prompt = [1, 2, 3]
    responses = [[10 + r] * (r + 1) for r in range(6)]
    examples = [
        {"prompt_ids": prompt, "chosen_ids": responses[a], "rejected_ids": responses[b]}
        for a in range(6)
        for b in range(a + 1, 6)
    ]
    examples.append(  # a pair whose prompt boundary is earlier (tokens merged across it)
        {"prompt_ids": prompt[:2], "chosen_ids": [3, *responses[0]], "rejected_ids": [3, 99]}
    )
    batch = SharedResponseCollator(pad_token_id=0)(examples)
    assert batch["input_ids"].shape == (7, 3 + 6)  # 6 responses + [1, 2, 3, 99]
    assert batch["chosen_index"].tolist()[:5] == [0] * 5
    assert batch["rejected_index"].tolist()[:5] == [1, 2, 3, 4, 5]
    assert batch["chosen_start"].tolist() == [3] * 15 + [2]
    row0 = batch["chosen_index"][15].item()
    assert row0 == 0  # the same tokens as response 0's sequence: shared, not duplicated
    assert batch["completion_mask"][0].tolist()[:4] == [0, 0, 1, 1]  # earliest start: 2
    assert batch["completion_mask"][1].tolist()[:5] == [0, 0, 0, 1, 1]
    assert batch["attention_mask"].sum(dim=1).tolist() == [4, 5, 6, 7, 8, 9, 4]


def test_collator_truncates_like_trl() -> None:
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    example = {"prompt_ids": [1, 2, 3, 4], "chosen_ids": [5, 6, 7], "rejected_ids": [8, 9]}
    for mode in ("keep_start", "keep_end"):
        stock = DataCollatorForPreference(pad_token_id=0, max_length=5, truncation_mode=mode)(
            [example]
        )
        ours = SharedResponseCollator(pad_token_id=0, max_length=5, truncation_mode=mode)([example])
        assert ours["input_ids"].tolist() == stock["input_ids"].tolist()
        assert ours["completion_mask"].tolist() == stock["completion_mask"].tolist()
        start = 4 if mode == "keep_start" else 2
        assert ours["chosen_start"].tolist() == [start]


def test_batches_hold_whole_requests_in_a_seeded_order() -> None:
    dataset = pairs_dataset(5).shuffle(seed=3)  # pairs of a request scattered
    groups = request_groups(dataset)
    assert len(groups) == 5 and sorted(len(g) for g in groups) == [15] * 5
    ids = dataset["request_id"]
    assert all(len({ids[i] for i in g}) == 1 for g in groups)
    sampler = RequestBatchSampler(groups, 2, shuffle=True, seed=7)
    first = list(sampler)
    assert len(first) == len(sampler) == 3
    assert sorted(i for batch in first for i in batch) == list(range(75))
    assert first == list(RequestBatchSampler(groups, 2, shuffle=True, seed=7))
    sampler.set_epoch(1)
    assert list(sampler) != first
    assert len(RequestBatchSampler(groups, 2, shuffle=False, drop_last=True)) == 2


def test_whole_request_cut() -> None:
    dataset = pairs_dataset(4)
    cut = select_whole_requests(dataset, 40, seed=0)
    assert len(cut) == 30 and len(set(cut["request_id"])) == 2
    assert set(cut["request_id"]) == set(select_whole_requests(dataset, 40, seed=0)["request_id"])


# ---------------------------------------------------------------- equality with stock DPOTrainer


@pytest.mark.parametrize(
    ("lora", "precompute", "max_length", "truncation_mode"),
    [
        (True, True, 1024, "keep_start"),
        (True, False, 64, "keep_start"),
        (False, True, 64, "keep_end"),
        (False, False, 1024, "keep_start"),
    ],
    ids=["lora-precomputed", "lora-truncated-live-ref", "full-keep-end", "full-live-ref"],
)
def test_loss_gradients_and_metrics_equal_stock(
    tiny_model_dir: str,
    tmp_path: Path,
    lora: bool,
    precompute: bool,
    max_length: int,
    truncation_mode: str,
) -> None:
    from trl import DPOTrainer

    dataset = pairs_dataset(2)
    common = {"max_length": max_length, "truncation_mode": truncation_mode, "lora": lora}
    stock = make_trainer(DPOTrainer, tiny_model_dir, dataset, tmp_path / "stock", **common)
    shared = make_trainer(
        SharedResponseDPOTrainer,
        tiny_model_dir,
        dataset,
        tmp_path / "shared",
        precompute_ref_log_probs=precompute,
        **common,
    )
    assert ("ref_chosen_logps" in shared.train_dataset.column_names) == precompute
    assert len(stock.train_dataset) == len(shared.train_dataset) == 30  # prompts fit (40 tokens)
    longest = max(len(r["prompt_ids"]) + len(r["rejected_ids"]) for r in stock.train_dataset)
    assert (longest > max_length) == (max_length < 1024)  # the truncated cases truncate
    perturb(stock.model)
    perturb(shared.model)
    stock_loss, stock_grads, stock_metrics = loss_grads_metrics(stock, range(30))
    loss, grads, metrics = loss_grads_metrics(shared, range(30))

    assert abs(loss - stock_loss) <= 1e-5, (loss, stock_loss)
    assert abs(loss - math.log(2)) > 1e-3  # the policy really differs from the reference
    assert grads.keys() == stock_grads.keys()
    for name, grad in grads.items():
        assert grad.abs().max() > 0 or stock_grads[name].abs().max() == 0, name
        torch.testing.assert_close(grad, stock_grads[name], atol=1e-5, rtol=1e-4, msg=name)
    assert set(metrics) == set(stock_metrics) == set(METRICS)
    for key in METRICS:
        assert metrics[key] == pytest.approx(stock_metrics[key], rel=1e-5, abs=1e-6), key


def test_correction_sft_adds_the_nll_of_each_chosen_after_its_shared_beginning(
    tiny_model_dir: str, tmp_path: Path
) -> None:
    dataset = pairs_dataset(1)
    plain = make_trainer(SharedResponseDPOTrainer, tiny_model_dir, dataset, tmp_path / "a")
    weighted = make_trainer(SharedResponseDPOTrainer, tiny_model_dir, dataset, tmp_path / "b")
    weighted.correction_sft_weight = 0.5
    perturb(plain.model)
    perturb(weighted.model)
    loss0, _, _ = loss_grads_metrics(plain, range(15))
    loss, _, metrics = loss_grads_metrics(weighted, range(15))

    # by hand: per pair, the chosen tokens after the longest common prefix with the rejected
    model = weighted.model
    model.eval()
    nll, count, departed = 0.0, 0, []
    with torch.no_grad():
        for row in weighted.train_dataset:
            chosen, rejected = row["chosen_ids"], row["rejected_ids"]
            common = next(
                (i for i, (a, b) in enumerate(zip(chosen, rejected, strict=False)) if a != b),
                min(len(chosen), len(rejected)),
            )
            departed.append(common)
            if common == 0:  # r0's pairs share no beginning: no correction to learn from them
                continue
            ids = torch.tensor([row["prompt_ids"] + chosen])
            logps = model(input_ids=ids).logits[0, :-1].log_softmax(-1)
            targets = ids[0, 1:]
            start = len(row["prompt_ids"]) + common - 1  # position scoring chosen[common]
            picked = logps[start:].gather(1, targets[start:, None])
            nll -= picked.sum().item()
            count += picked.numel()
    assert max(departed) > 10 and 0 in departed  # shared prefixes (r1 vs r2) and none (r0)
    assert loss - loss0 == pytest.approx(0.5 * nll / count, rel=1e-4)
    assert metrics["correction_nll"] == pytest.approx(nll / count, rel=1e-4)
    with pytest.raises(ValueError, match="correction_sft_weight"):
        SharedResponseDPOTrainer(
            model=weighted.model,
            args=weighted.args,
            train_dataset=dataset,
            processing_class=weighted.processing_class,
            correction_sft_weight=-1,
        )


def test_a_training_step_with_accumulation_equals_stock(
    tiny_model_dir: str, tmp_path: Path
) -> None:
    """Stock: 15 pairs x 2 accumulated micro-batches; shared: 1 request x 2. Same 30 pairs,
    same mean per micro-batch of 15: the same update (plain SGD, so weights move by the
    gradient itself) and the same logged loss."""
    from trl import DPOTrainer

    dataset = pairs_dataset(2)
    common = {"gradient_accumulation_steps": 2, "optim": "sgd", "learning_rate": 1.0}
    stock = make_trainer(
        DPOTrainer,
        tiny_model_dir,
        dataset,
        tmp_path / "stock",
        per_device_train_batch_size=15,
        **common,
    )
    shared = make_trainer(
        SharedResponseDPOTrainer,
        tiny_model_dir,
        dataset,
        tmp_path / "shared",
        precompute_ref_log_probs=True,
        **common,
    )
    for trainer in (stock, shared):
        perturb(trainer.model)
    before = trainable(shared.model)
    stock.train()
    shared.train()
    stock_log, log = stock.state.log_history[0], shared.state.log_history[0]
    assert log["loss"] == pytest.approx(stock_log["loss"], abs=1e-5)
    for key in ("rewards/margins", "rewards/accuracies", "logps/chosen", "num_tokens"):
        assert log[key] == pytest.approx(stock_log[key], rel=1e-5), key
    after, stock_after = trainable(shared.model), trainable(stock.model)
    assert any((after[n] - before[n]).abs().max() > 1e-4 for n in after)
    for name in after:
        torch.testing.assert_close(after[name], stock_after[name], atol=1e-5, rtol=1e-4)


def test_resume_from_a_checkpoint_replays_the_straight_run(
    tiny_model_dir: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """3 requests, 1 per step, 6 steps = 2 epochs; the resumed run starts inside epoch 2,
    whose request order (seed 42 + 1) differs from epoch 1's (seed 42), so it also checks
    that a resumed epoch replays the straight run's order."""
    trained: list[int] = []  # which request each training step saw (its first token ids)
    spy_on_loss(monkeypatch, lambda trainer, inputs: trained.append(first_tokens(inputs)))
    dataset = pairs_dataset(3)
    common = {"max_steps": 6, "precompute_ref_log_probs": True, "learning_rate": 5e-2}
    straight = make_trainer(
        SharedResponseDPOTrainer, tiny_model_dir, dataset, tmp_path / "straight", **common
    )
    straight.train()
    straight_order, trained[:] = list(trained), []
    assert sorted(straight_order[:3]) == sorted(straight_order[3:])  # each epoch: all 3
    assert straight_order[:3] != straight_order[3:]  # reshuffled per epoch
    first = make_trainer(
        SharedResponseDPOTrainer,
        tiny_model_dir,
        dataset,
        tmp_path / "resumed",
        save_strategy="steps",
        save_steps=4,
        **common,
    )
    first.add_callback(StopAt(4))  # interrupted after the checkpoint (same lr schedule)
    first.train()
    assert first.state.global_step == 4
    assert (tmp_path / "resumed" / "checkpoint-4").is_dir()
    resumed = make_trainer(
        SharedResponseDPOTrainer, tiny_model_dir, dataset, tmp_path / "resumed", **common
    )
    resumed.train(resume_from_checkpoint=str(tmp_path / "resumed" / "checkpoint-4"))
    assert resumed.state.global_step == 6
    assert trained == straight_order  # steps 1-4, then 5-6 after the resume
    logged = [h for h in resumed.state.log_history if "loss" in h]
    straight_logged = {h["step"]: h for h in straight.state.log_history if "loss" in h}
    assert [h["step"] for h in logged] == [1, 2, 3, 4, 5, 6]  # 1-4 from the checkpoint
    for entry in logged:
        expected = straight_logged[entry["step"]]
        assert entry["loss"] == pytest.approx(expected["loss"], abs=1e-5)
        assert entry["logps/chosen"] == pytest.approx(expected["logps/chosen"], rel=1e-5)
    for name, weight in trainable(resumed.model).items():
        torch.testing.assert_close(weight, trainable(straight.model)[name], atol=1e-5, rtol=1e-4)


def test_every_epoch_reaches_the_request_sampler(
    tiny_model_dir: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under DDP accelerate wraps the sampler in BatchSamplerShard (and a resumed epoch in
    SkipBatchSampler too), where neither accelerate's nor Trainer's set_epoch reaches it: the
    trainer sets the epoch itself at the start of every epoch, so epoch e trains on the
    requests in the sampler's order for seed + e."""
    trained: list[int] = []
    spy_on_loss(monkeypatch, lambda trainer, inputs: trained.append(first_tokens(inputs)))
    trainer = make_trainer(
        SharedResponseDPOTrainer,
        tiny_model_dir,
        pairs_dataset(3),
        tmp_path,
        max_steps=6,  # 3 requests, 1 per step: 2 epochs
        precompute_ref_log_probs=True,
    )
    trainer.train()
    dataset = trainer.train_dataset
    groups = request_groups(dataset)
    expected = []
    for epoch in range(2):
        sampler = RequestBatchSampler(groups, 1, shuffle=True, seed=trainer.args.seed)
        sampler.set_epoch(epoch)
        for rows in sampler:
            examples = [{c: dataset[i][c] for c in TOKEN_COLUMNS} for i in rows]
            expected.append(first_tokens(trainer.data_collator(examples)))
    assert trained == expected
    assert expected[:3] != expected[3:]  # the two epochs' orders differ: the epoch was seen


# ---------------------------------------------------------------- refusals and the recipe


def test_options_it_cannot_reproduce_are_refused(tiny_model_dir: str, tmp_path: Path) -> None:
    from trl import DPOConfig

    cpu = {"output_dir": str(tmp_path), "use_cpu": True, "bf16": False}
    assert unsupported_options(DPOConfig(**cpu)) == []
    args = DPOConfig(**cpu, loss_type=["ipo"], ld_alpha=0.5)
    problems = unsupported_options(args)
    assert len(problems) == 2 and "loss_type" in problems[0] and "ld_alpha" in problems[1]
    with pytest.raises(ValueError, match="group_by_request does not support loss_type"):
        make_trainer(
            SharedResponseDPOTrainer, tiny_model_dir, pairs_dataset(1), tmp_path, loss_type=["ipo"]
        )


def load_recipe_script() -> Any:
    name = "c2_recipes_dpo"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "recipes" / "dpo.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def test_cpu_recipe_turns_shared_responses_on() -> None:
    import yaml

    recipe = yaml.safe_load(CPU_RECIPE.read_text(encoding="utf-8"))
    assert recipe["group_by_request"] is True
    assert recipe["precompute_ref_log_probs"] is True


def test_recipe_option_trains_with_shared_responses_and_cuts_whole_requests(
    tiny_model_dir: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dpo = load_recipe_script()
    data = tmp_path / "pairs.parquet"
    pairs_dataset(3).to_parquet(str(data))
    seen: list[int] = []
    weights: list[float] = []

    def record(trainer: Any, inputs: dict[str, torch.Tensor]) -> None:
        seen.append(inputs["chosen_index"].numel())
        weights.append(trainer.correction_sft_weight)

    spy_on_loss(monkeypatch, record)
    args = [
        str(CPU_RECIPE),
        "--model_name_or_path", tiny_model_dir,
        "--dataset_name", str(data),
        "--output_dir", str(tmp_path / "out"),
        "--max_steps", "1",
        "--gradient_accumulation_steps", "1",
        "--per_device_train_batch_size", "2",
        "--max_train_samples", "40",  # whole requests: 2 of them (30 pairs), not 40 pairs
        "--correction_sft_weight", "0.5",
        "--report_to", "none",
        "--eval_strategy", "no",
        "--disable_tqdm", "true",
    ]  # fmt: skip
    assert dpo.cli(args) == 0
    assert seen == [30] and weights == [0.5]  # the recipe's value reaches the trainer
    assert (tmp_path / "out" / "adapter_config.json").is_file()
    assert "correction_sft_weight" in (tmp_path / "out" / "README.md").read_text()


def test_recipe_refuses_an_unsupported_loss_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dpo = load_recipe_script()
    code = dpo.cli([str(CPU_RECIPE), "--loss_type", "ipo", "--output_dir", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith("error: group_by_request does not support loss_type")


def test_recipe_refuses_the_correction_term_without_shared_responses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dpo = load_recipe_script()
    base = [str(CPU_RECIPE), "--output_dir", str(tmp_path / "out")]
    code = dpo.cli([*base, "--group_by_request", "false", "--correction_sft_weight", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == ["error: correction_sft_weight needs group_by_request: true"]
    assert dpo.cli([*base, "--correction_sft_weight", "-0.5"]) == 2
    assert capsys.readouterr().err.strip() == "error: correction_sft_weight must be >= 0"
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_cpu_threads_never_exceed_the_cores_given() -> None:
    assert choose_threads({}, cores=8, machine_cores=8, load=0.0)[0] == 8
    assert choose_threads({"LOCAL_WORLD_SIZE": "2"}, cores=8, machine_cores=8, load=0.0)[0] == 4
    assert choose_threads({"OMP_NUM_THREADS": "16"}, cores=8, machine_cores=8, load=0.0)[0] == 8
    assert choose_threads({"OMP_NUM_THREADS": "1"}, cores=8, machine_cores=8, load=0.0)[0] == 1
    busy, why = choose_threads({}, cores=2, machine_cores=2, load=1.7)
    assert busy == 1 and "load average 1.70" in why
    assert choose_threads({}, cores=2, machine_cores=2, load=9.0)[0] == 1
    # in a container (fewer cores than the machine) the host's load says nothing about ours
    assert choose_threads({}, cores=4, machine_cores=64, load=40.0)[0] == 4
    assert 1 <= usable_cores() <= (os.cpu_count() or 1)


# ---------------------------------------------------------------- DDP


@pytest.mark.slow
def test_two_ddp_processes_equal_one_process_with_twice_the_batch(
    tiny_model_dir: str, tmp_path: Path
) -> None:
    """The recipe under `accelerate launch --multi_gpu --num_processes 2` on CPU (gloo): each
    process trains on 1 request, DDP averages; one process with 2 requests per batch must
    take the same SGD step and log the same loss."""
    data = tmp_path / "pairs.parquet"
    pairs_dataset(3).to_parquet(str(data))  # the recipe holds 1 out (test_size: 1): 2 train
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    common = [
        str(CPU_RECIPE),
        "--model_name_or_path", tiny_model_dir,
        "--dataset_name", str(data),
        "--max_steps", "1",
        "--gradient_accumulation_steps", "1",
        "--optim", "sgd",
        "--learning_rate", "1.0",
        "--report_to", "none",
        "--eval_strategy", "no",
        "--disable_tqdm", "true",
        "--logging_steps", "1",
    ]  # fmt: skip
    accelerate = Path(sys.executable).parent / "accelerate"
    runs = {
        "ddp": [
            str(accelerate), "launch", "--multi_gpu", "--num_processes", "2",
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
            "recipes/dpo.py", *common, "--per_device_train_batch_size", "1",
        ],
        "single": [sys.executable, "recipes/dpo.py", *common, "--per_device_train_batch_size", "2"],
    }  # fmt: skip
    logs = {}
    for name, cmd in runs.items():
        done = subprocess.run(
            [*cmd, "--output_dir", str(tmp_path / name)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert done.returncode == 0, f"{name}:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
        logs[name] = [
            ast.literal_eval(line)
            for line in done.stdout.splitlines()
            if line.startswith("{'loss'")
        ]
    assert len(logs["ddp"]) == len(logs["single"]) == 1
    ddp, single = logs["ddp"][0], logs["single"][0]
    assert float(ddp["loss"]) == pytest.approx(float(single["loss"]), abs=1e-4)
    assert float(ddp["num_tokens"]) == float(single["num_tokens"])
    assert float(ddp["epoch"]) == float(single["epoch"]) == 1.0

    from safetensors.torch import load_file

    ddp_weights = load_file(str(tmp_path / "ddp" / "adapter_model.safetensors"))
    single_weights = load_file(str(tmp_path / "single" / "adapter_model.safetensors"))
    assert ddp_weights.keys() == single_weights.keys()
    moved = 0.0
    for name, weight in ddp_weights.items():
        torch.testing.assert_close(weight, single_weights[name], atol=1e-5, rtol=1e-4)
        moved = max(moved, weight.abs().max().item())
    assert moved > 1e-4  # the SGD step really moved LoRA's B away from 0


# ---------------------------------------------------------------- evaluation over processes


@pytest.mark.parametrize("requests,processes,batch", [(9, 8, 1), (20, 8, 2), (5, 3, 1), (3, 4, 1)])
def test_evaluation_over_processes_counts_every_pair_once(
    requests: int, processes: int, batch: int
) -> None:
    """accelerate pads the last round of batches with the first ones again (even_batches), so
    evaluation would count up to processes - 1 requests twice; the evaluation sampler gives a
    multiple of the process count instead, each pair once, every process the same count."""
    from accelerate.data_loader import BatchSamplerShard

    groups = [list(range(i * 15, (i + 1) * 15)) for i in range(requests)]
    sampler = RequestBatchSampler(groups, batch, shuffle=False, num_processes=processes)
    seen: list[int] = []
    steps = set()
    for rank in range(processes):
        shard = list(BatchSamplerShard(sampler, num_processes=processes, process_index=rank))
        steps.add(len(shard))
        seen += [row for rows in shard for row in rows]
    assert sorted(seen) == list(range(requests * 15)) and len(steps) == 1
    assert len(sampler) % processes == 0
    # one process, or a count that divides evenly: whole requests, as before
    assert list(RequestBatchSampler(groups, batch, shuffle=False)) == [
        [row for g in groups[i : i + batch] for row in g] for i in range(0, requests, batch)
    ]


# ---------------------------------------------------------------- adapters that train


@pytest.mark.parametrize("learning_rate,stops", [(0.0, True), (1e-3, False)])
def test_adapter_check_stops_a_run_whose_adapter_does_not_move(
    tiny_model_dir: str, tmp_path: Path, learning_rate: float, stops: bool
) -> None:
    from cc_tasks.errors import RunFailure
    from cc_train.adapters import AdapterMovementCallback

    trainer = make_trainer(
        SharedResponseDPOTrainer,
        tiny_model_dir,
        pairs_dataset(3),
        tmp_path,
        max_steps=3,
        learning_rate=learning_rate,
    )
    trainer.add_callback(AdapterMovementCallback(check_step=2))
    if stops:
        with pytest.raises(RunFailure) as failed:
            trainer.train()
        line = str(failed.value)
        assert "\n" not in line and "LoRA adapter is not training: after 2 steps" in line
        assert "learning_rate 0" in line
    else:
        trainer.train()
        assert trainer.state.global_step == 3


def test_qlora_adapters_are_kept_in_float32() -> None:
    from cc_train.adapters import keep_adapters_fp32

    layer = torch.nn.Linear(4, 4).to(torch.bfloat16)
    frozen = torch.nn.Linear(4, 4).to(torch.bfloat16).requires_grad_(False)
    model = torch.nn.Sequential(layer, frozen)
    assert keep_adapters_fp32(model) == 2
    assert layer.weight.dtype == torch.float32 and frozen.weight.dtype == torch.bfloat16
