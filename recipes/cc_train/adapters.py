"""LoRA/QLoRA adapters that train: fp32 adapters under a 4-bit base, and a fail-fast check.

TRL casts a quantized model's trainable adapter weights to bf16 (``DPOTrainer.__init__``, after
``get_peft_model``), and the optimizer then keeps no fp32 master copy: each Adam step (about
the learning rate in size) is added in bf16, whose resolution is
``torch.finfo(torch.bfloat16).eps`` = 2^-7 of the value. A ``lora_A`` entry of size ``|x|``
moves only when the step exceeds half its spacing, ``|x| * eps / 2``; at lr 5e-6 that is
``|x| < 1.3e-3``, under 10% of a Qwen2/Llama-7B ``lora_A`` (kaiming-uniform init, bound
``1/sqrt(fan_in)`` ~ 0.017). :func:`keep_adapters_fp32` undoes the cast before the optimizer
is built, so QLoRA trains like LoRA at the same rate (+~4 bytes x 40M adapter parameters).
:class:`AdapterMovementCallback` stops a run whose adapter did not move in its first steps.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import TrainerCallback

from cc_tasks.errors import RunFailure

GROUPS = ("lora_A", "lora_B")  # the adapter halves checked apart: B starts at 0, A does not


def keep_adapters_fp32(model: Any) -> int:
    """Cast every trainable floating-point parameter to float32 (count returned).

    Call after the trainer is built and before ``train()``: the optimizer is created from
    the parameters as they are then, so its steps land in fp32.
    """
    count = 0
    for param in model.parameters():
        if param.requires_grad and param.is_floating_point() and param.dtype != torch.float32:
            param.data = param.data.float()
            count += 1
    return count


def smallest_step_that_moves(value: float, dtype: torch.dtype) -> float:
    """The smallest update that changes ``value`` when added in ``dtype``: half its spacing,
    ``|value| * eps / 2`` within a factor of 2 (``eps`` = ``torch.finfo(dtype).eps``)."""
    return abs(value) * torch.finfo(dtype).eps / 2


def moved_share(before: torch.Tensor, after: torch.Tensor) -> float:
    """Share of the entries whose value changed."""
    return (before != after).float().mean().item() if before.numel() else 1.0


class AdapterMovementCallback(TrainerCallback):
    """Stop with one line when the adapter has not moved after ``check_step`` optimizer steps.

    At the start it copies every trainable ``lora_A``/``lora_B`` weight (~40M values for a 7B
    model at rank 16: one copy on the CPU); at ``check_step`` (>= 2: ``lora_B`` starts at 0,
    so ``lora_A`` gets its first gradient in step 2; a shorter run is not checked) it raises :class:`~cc_tasks.errors.RunFailure` when either half changed in fewer than
    ``min_share`` of its entries: a learning rate of 0, steps below the adapter dtype's
    resolution, frozen parameters. Every process computes the same (the weights are synced).
    """

    def __init__(self, check_step: int = 10, min_share: float = 0.01) -> None:
        if check_step < 2:
            raise ValueError(f"check_step must be >= 2 (lora_A's first gradient), got {check_step}")
        self.check_step = check_step
        self.min_share = min_share
        self._start: dict[str, torch.Tensor] = {}

    @staticmethod
    def _adapter(model: Any) -> dict[str, torch.Tensor]:
        return {
            name: param
            for name, param in model.named_parameters()
            if param.requires_grad and any(g in name for g in GROUPS)
        }

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        model = kwargs.get("model")
        if model is None or state.global_step >= self.check_step:  # resumed past the check
            return
        self._start = {n: p.detach().to("cpu", copy=True) for n, p in self._adapter(model).items()}

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        model = kwargs.get("model")
        if not self._start or model is None:
            return
        if state.global_step < self.check_step:
            return
        now = self._adapter(model)
        for group in GROUPS:
            names = [n for n in self._start if group in n and n in now]
            if not names:
                continue
            before = torch.cat([self._start[n].flatten().float() for n in names])
            after = torch.cat([now[n].detach().flatten().float().cpu() for n in names])
            share = moved_share(before, after)
            if share < self.min_share:
                dtype = str(now[names[0]].dtype).removeprefix("torch.")
                self._start = {}
                raise RunFailure(
                    f"the LoRA adapter is not training: after {state.global_step} steps only "
                    f"{share:.2%} of its {group} entries changed ({dtype} adapter, "
                    f"learning_rate {args.learning_rate:g}); raise learning_rate, keep "
                    "the adapter in float32 (adapter_fp32: true), or check what is frozen"
                )
        self._start = {}  # checked once: free the copy


__all__ = [
    "AdapterMovementCallback",
    "keep_adapters_fp32",
    "moved_share",
    "smallest_step_that_moves",
]
