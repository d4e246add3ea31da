"""Where the model's weights go: one device per process, never spread by ``device_map="auto"``.

transformers' ``device_map="auto"`` spreads a model over every visible GPU, which then run
one after another (naive pipeline, no speed-up). TRL resets ``device_map`` only for
multi-GPU DDP and DeepSpeed, so an FSDP run, or ``accelerate launch --num_processes 1`` on a
multi-GPU host, would load that way. :func:`device_map` makes the choice explicit.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any


def is_distributed(training_args: Any, env: Mapping[str, str] | None = None) -> bool:
    """More than one process (``WORLD_SIZE``), or any accelerate distributed mode (FSDP,
    DeepSpeed, DDP, ... even with one process: the wrapper places the weights)."""
    env = os.environ if env is None else env
    if int(env.get("WORLD_SIZE", "1") or 1) > 1:
        return True
    kind = getattr(training_args.distributed_state, "distributed_type", "NO")
    return str(getattr(kind, "value", kind)) != "NO"


def device_map(training_args: Any, env: Mapping[str, str] | None = None) -> dict[str, str] | None:
    """``None`` when distributed (DDP/ZeRO-3/FSDP place the weights themselves); otherwise
    the whole model on this process's one device (``{"": "cuda:0"}``, ``{"": "cpu"}``)."""
    if is_distributed(training_args, env):
        return None
    return {"": str(training_args.device)}


__all__ = ["device_map", "is_distributed"]
