"""What the shared-response loss can reproduce: checked before any model loads.

Kept apart from :mod:`cc_train.shared_dpo` (which imports TRL's private internals) so the
recipe checks and stock DPO never import the shared trainer.
"""

from __future__ import annotations

from typing import Any


def unsupported_options(args: Any) -> list[str]:
    """DPOConfig settings the shared-response loss cannot reproduce (empty: all fine).

    Only DPO's sigmoid loss on reverse-KL rewards decomposes into per-response
    log-probabilities; LD-DPO and WPO weights depend on both sides of each pair.
    """
    problems = []
    if list(args.loss_type) != ["sigmoid"]:
        problems.append(f"loss_type={args.loss_type} (only 'sigmoid', DPO's loss)")
    if args.f_divergence_type != "reverse_kl":
        problems.append(f"f_divergence_type={args.f_divergence_type!r}")
    if args.ld_alpha is not None:
        problems.append("ld_alpha (its weights depend on both sides of a pair)")
    if args.use_weighting:
        problems.append("use_weighting (its weights depend on both sides of a pair)")
    strategy = getattr(args, "train_sampling_strategy", "random")
    if strategy != "random":
        problems.append(f"train_sampling_strategy={strategy!r} (batches are whole requests)")
    return problems


__all__ = ["unsupported_options"]
