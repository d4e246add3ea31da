"""The correction term of shared-response DPO: the NLL of each chosen response's tokens after
the beginning it shares with the rejected one (``correction_sft_weight`` in the recipes).

DPO alone raises the margin between chosen and rejected; on C²-SYN it can do so by pushing the
harmful text down without making the correction likely. This term makes the correction itself
the target; ``recipes/README.md`` ("The correction term") says why these tokens.
"""

from __future__ import annotations

import torch

from .batches import pair_sums


def divergent_mask(inputs: dict[str, torch.Tensor], chosen_mask: torch.Tensor) -> torch.Tensor:
    """Per pair, the chosen side's completion positions after the beginning it shares with the
    rejected side; nothing for a pair that differs from its first completion token.

    In C²-SYN with a shared opener (``c2-syn --openers shared``) r_i and r_j (i < j, r_j may be
    r5) share ``opener + p_i``, so this is r_i's trigger and correction: what course-correction
    is. r0 (the plain reply) shares no beginning with any other rank, so its pairs add nothing:
    the term teaches turning away, not the synthesiser's plain replies. Same prompt, right
    padding: positions line up.
    """
    ids = inputs["input_ids"][:, 1:]  # position j scores token j + 1, as the masks do
    chosen, rejected = ids[inputs["chosen_index"]], ids[inputs["rejected_index"]]
    rejected_live = inputs["attention_mask"][:, 1:].bool()[inputs["rejected_index"]]
    departs = chosen_mask & ((chosen != rejected) | ~rejected_live)
    after = departs.long().cumsum(dim=1) > 0
    shares_a_beginning = (chosen_mask & ~after).any(dim=1, keepdim=True)
    return chosen_mask & after & shares_a_beginning


def correction_nll(
    per_token_logps: torch.Tensor, inputs: dict[str, torch.Tensor], chosen_mask: torch.Tensor
) -> torch.Tensor:
    """Mean NLL over the micro-batch's :func:`divergent_mask` tokens (TRL's ``sft`` loss on them).

    TRL's "sft" loss (mean NLL over the micro-batch's chosen tokens) restricted to the chosen
    tokens after the beginning a pair shares: the tokens DPO's log-ratio compares. Stock's
    ``["sigmoid", "sft"]`` would compute this on pairs whose shared beginning is part of the
    prompt, if TRL could continue an assistant turn.
    """
    mask = divergent_mask(inputs, chosen_mask)
    nll = -pair_sums(per_token_logps, inputs["chosen_index"], mask).sum()
    return nll / mask.sum().clamp(min=1)


__all__ = ["correction_nll", "divergent_mask"]
