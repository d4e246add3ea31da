"""Stock ``DPOTrainer``'s metrics for shared-response DPO, from sums and counts.

Stock gathers each per-pair tensor and averages; with varying pairs per process a per-pair
gather would not line up, so :func:`pair_metric_sums` adds up each metric's numerator and
denominator on this process, the trainer gathers and sums them over processes once, and
:func:`record_pair_metrics` divides: every metric is a global sum over a global count (equal to
stock's mean whenever stock's own batches are equal in size), under stock's names.
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from typing import Any

import torch

from .batches import pair_sums

SUMS = (  # the order of pair_metric_sums' entries
    "entropy_sum",
    "tokens",
    "chosen_logits",
    "chosen_count",
    "rejected_logits",
    "rejected_count",
    "top1",
    "rewards_chosen",
    "rewards_rejected",
    "accurate",
    "margins",
    "logps_chosen",
    "logps_rejected",
    "pairs",
    "pair_tokens",
)
PAIR_TOKENS = SUMS.index("pair_tokens")  # the pair sequences' tokens stock would have forwarded


def pair_metric_sums(
    outputs: Any,
    seq_len: int,
    attention_mask: torch.Tensor,
    chosen_index: torch.Tensor,
    rejected_index: torch.Tensor,
    chosen_mask: torch.Tensor,
    rejected_mask: torch.Tensor,
    chosen_logps: torch.Tensor,
    rejected_logps: torch.Tensor,
    chosen_logratios: torch.Tensor,
    rejected_logratios: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    """This process's sums and counts (float, in :data:`SUMS` order) over the batch's pairs."""
    with torch.no_grad():
        entropy = outputs.entropy[:, -seq_len:].detach()
        mean_logits = outputs.mean_logits[:, -seq_len:].detach()
        is_top1 = outputs.is_top1[:, -seq_len:]
        lengths = attention_mask.sum(dim=1)
        chosen_rewards = beta * chosen_logratios.detach()
        rejected_rewards = beta * rejected_logratios.detach()
        chosen_tokens = chosen_mask.sum()
        rejected_tokens = rejected_mask.sum()
        return torch.stack(
            [
                pair_sums(entropy, chosen_index, chosen_mask).sum()
                + pair_sums(entropy, rejected_index, rejected_mask).sum(),
                (chosen_tokens + rejected_tokens).float(),
                pair_sums(mean_logits, chosen_index, chosen_mask).sum(),
                chosen_tokens.float(),
                pair_sums(mean_logits, rejected_index, rejected_mask).sum(),
                rejected_tokens.float(),
                (is_top1[chosen_index] & chosen_mask).sum().float(),
                chosen_rewards.sum(),
                rejected_rewards.sum(),
                (chosen_rewards > rejected_rewards).float().sum(),
                (chosen_rewards - rejected_rewards).sum(),
                chosen_logps.detach().sum(),
                rejected_logps.detach().sum(),
                torch.tensor(float(chosen_index.numel()), device=chosen_logps.device),
                (lengths[chosen_index].sum() + lengths[rejected_index].sum()).float(),
            ]
        ).float()


def record_pair_metrics(
    metrics: MutableMapping[str, list[float]], total: Sequence[float], *, num_tokens: int
) -> None:
    """Append stock's metrics (global sums / global counts) to TRL's ``_metrics[mode]``."""
    (
        entropy_sum,
        tokens,
        chosen_logits,
        chosen_count,
        rejected_logits,
        rejected_count,
        top1,
        rewards_chosen,
        rewards_rejected,
        accurate,
        margins,
        logps_chosen,
        logps_rejected,
        pairs,
        _pair_tokens,
    ) = total
    metrics["entropy"].append(entropy_sum / tokens if tokens > 0 else 0.0)
    metrics["num_tokens"] = [num_tokens]
    metrics["logits/chosen"].append(chosen_logits / chosen_count if chosen_count > 0 else 0.0)
    metrics["logits/rejected"].append(
        rejected_logits / rejected_count if rejected_count > 0 else 0.0
    )
    metrics["mean_token_accuracy"].append(top1 / chosen_count if chosen_count > 0 else 0.0)
    metrics["rewards/chosen"].append(rewards_chosen / pairs)
    metrics["rewards/rejected"].append(rewards_rejected / pairs)
    metrics["rewards/accuracies"].append(accurate / pairs)
    metrics["rewards/margins"].append(margins / pairs)
    metrics["logps/chosen"].append(logps_chosen / pairs)
    metrics["logps/rejected"].append(logps_rejected / pairs)


__all__ = ["PAIR_TOKENS", "SUMS", "pair_metric_sums", "record_pair_metrics"]
