"""Diverse (group) beam search as a ``custom_generate`` callable for transformers >= 5.

The reference synthesiser decodes with diverse beam search (Vijayakumar et al.,
2016): ``num_beams=2, num_beam_groups=2, diversity_penalty=0.5, do_sample=False``.
transformers 5 moved that mode out of the library into the Hub repository
``transformers-community/group-beam-search``, which needs network access and
``trust_remote_code``; our machines (and many clusters) have neither. This module
re-implements the same algorithm, following transformers 4.4x
``_group_beam_search`` + ``BeamSearchScorer`` + ``HammingDiversityLogitsProcessor``
step by step, and plugs into ``model.generate(custom_generate=...)`` so input
preparation, the KV cache, logits processors and stopping criteria stay
transformers' own.

With ``num_beam_groups=1`` it is ordinary beam search, which the tests compare
token for token with transformers' built-in beam search.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class _Hypotheses:
    """Finished hypotheses of one (batch item, beam group); as transformers 4.4x ``BeamHypotheses``."""

    def __init__(self, num_beams: int, length_penalty: float, early_stopping: bool | str) -> None:
        self.num_beams = num_beams
        self.length_penalty = length_penalty
        self.early_stopping = early_stopping
        self.beams: list[tuple[float, torch.Tensor]] = []
        self.worst_score = 1e9

    def __len__(self) -> int:
        return len(self.beams)

    def add(self, hyp: torch.Tensor, sum_logprobs: float, generated_len: int) -> None:
        score = sum_logprobs / (max(generated_len, 1) ** self.length_penalty)
        if len(self) < self.num_beams or score > self.worst_score:
            self.beams.append((score, hyp))
            if len(self) > self.num_beams:
                ranked = sorted((s, i) for i, (s, _) in enumerate(self.beams))
                del self.beams[ranked[0][1]]
                self.worst_score = ranked[1][0]
            else:
                self.worst_score = min(score, self.worst_score)

    def is_done(self, best_sum_logprobs: float, generated_len: int) -> bool:
        if len(self) < self.num_beams:
            return False
        if self.early_stopping is True:
            return True
        if self.early_stopping is False:
            highest = best_sum_logprobs / (max(generated_len, 1) ** self.length_penalty)
            return self.worst_score >= highest
        return False  # "never": keep going until max_length


def diverse_beam_search(
    model: Any,
    input_ids: torch.LongTensor,
    logits_processor: Any,
    stopping_criteria: Any,
    generation_config: Any,
    **model_kwargs: Any,
) -> torch.LongTensor:
    """Group beam search with a Hamming diversity penalty between groups.

    ``input_ids`` arrive expanded to ``batch * num_beams`` rows (transformers
    does that). Returns ``batch * num_return_sequences`` rows: prompt followed by
    the best hypotheses, padded with the pad token, like ``generate`` does.
    """
    num_beams = int(generation_config.num_beams or 1)
    num_groups = int(generation_config.num_beam_groups or 1)
    penalty = float(generation_config.diversity_penalty or 0.0)
    if num_beams % num_groups:
        raise ValueError(
            f"num_beams ({num_beams}) must be divisible by num_beam_groups ({num_groups})"
        )
    if generation_config.do_sample:
        raise ValueError("diverse beam search does not sample; set do_sample=False")
    group_size = num_beams // num_groups
    keep = int(generation_config.num_return_sequences or 1)
    if keep > num_beams:
        raise ValueError("num_return_sequences must be <= num_beams")
    length_penalty = float(
        1.0 if generation_config.length_penalty is None else generation_config.length_penalty
    )
    early_stopping = generation_config.early_stopping or False
    pad = generation_config._pad_token_tensor
    eos = generation_config._eos_token_tensor
    eos_ids = set() if eos is None else {int(x) for x in eos.reshape(-1).tolist()}
    pad_id = int(pad) if pad is not None else (min(eos_ids) if eos_ids else 0)
    max_length = int(stopping_criteria.max_length or generation_config.max_length)

    rows, prompt_len = input_ids.shape
    batch = rows // num_beams
    device = input_ids.device
    hyps = [
        _Hypotheses(group_size, length_penalty, early_stopping) for _ in range(batch * num_groups)
    ]
    done = [False] * (batch * num_groups)
    # the first beam of each group starts at 0, the others at -1e9: no duplicate starts
    beam_scores = torch.full((batch, num_beams), -1e9, dtype=torch.float, device=device)
    beam_scores[:, ::group_size] = 0.0
    beam_scores = beam_scores.view(-1)

    outputs = model._prefill(input_ids, generation_config, model_kwargs)
    first = True
    cur_len = prompt_len
    group_rows = [
        torch.tensor(
            [
                b * num_beams + i
                for b in range(batch)
                for i in range(g * group_size, (g + 1) * group_size)
            ],
            device=device,
        )
        for g in range(num_groups)
    ]
    n_keep = max(2, 1 + len(eos_ids)) * group_size
    while True:
        if not first:
            inputs = model.prepare_inputs_for_generation(
                input_ids,
                next_sequence_length=1 if model_kwargs.get("use_cache", True) else None,
                **model_kwargs,
            )
            outputs = model(**inputs, return_dict=True)
        first = False
        model_kwargs = model._update_model_kwargs_for_generation(
            outputs, model_kwargs, is_encoder_decoder=model.config.is_encoder_decoder
        )
        logits = outputs.logits[:, -1, :].to(dtype=torch.float32, device=device)
        del outputs
        vocab = logits.shape[-1]
        current_tokens = torch.zeros(rows, dtype=torch.long, device=device)
        reorder = torch.zeros(rows, dtype=torch.long, device=device)
        new_input_ids = input_ids.clone()

        for g in range(num_groups):
            idx = group_rows[g]
            start = g * group_size
            group_ids = input_ids[idx]
            scores = nn.functional.log_softmax(logits[idx], dim=-1)
            if start > 0 and penalty:  # Hamming diversity: tokens this step of earlier groups
                scores = scores.clone()
                for b in range(batch):
                    prev = current_tokens[b * num_beams : b * num_beams + start]
                    freq = torch.bincount(prev, minlength=vocab).to(scores.dtype)
                    scores[b * group_size : (b + 1) * group_size] -= penalty * freq
            scores = logits_processor(group_ids, scores)
            scores = scores + beam_scores[idx].unsqueeze(-1)
            top_scores, top = torch.topk(
                scores.view(batch, group_size * vocab), n_keep, dim=1, largest=True, sorted=True
            )
            top_beam = torch.div(top, vocab, rounding_mode="floor")
            top_token = top % vocab

            next_scores = torch.zeros(batch, group_size, dtype=torch.float, device=device)
            next_tokens = torch.full((batch, group_size), pad_id, dtype=torch.long, device=device)
            next_beams = torch.zeros(batch, group_size, dtype=torch.long, device=device)
            ts, tt, tb = top_scores.tolist(), top_token.tolist(), top_beam.tolist()
            for b in range(batch):
                bg = b * num_groups + g
                if done[bg]:  # scores 0 and pad tokens, as the reference scorer does
                    next_beams[b] = b * group_size  # (it copied row 0; junk either way)
                    continue
                filled = 0
                for rank, (score, token, beam) in enumerate(zip(ts[b], tt[b], tb[b], strict=True)):
                    row = b * group_size + beam
                    if token in eos_ids:
                        if rank >= group_size:
                            continue
                        hyps[bg].add(group_ids[row].clone(), score, cur_len + 1 - prompt_len)
                    else:
                        next_scores[b, filled] = score
                        next_tokens[b, filled] = token
                        next_beams[b, filled] = row
                        filled += 1
                    if filled == group_size:
                        break
                done[bg] = done[bg] or hyps[bg].is_done(max(ts[b]), cur_len + 1 - prompt_len)

            beam_idx = next_beams.view(-1)
            beam_scores[idx] = next_scores.view(-1)
            new_input_ids[idx] = group_ids[beam_idx]
            current_tokens[idx] = next_tokens.view(-1)
            reorder[idx] = (
                num_beams * torch.div(beam_idx, group_size, rounding_mode="floor")
                + start
                + beam_idx % group_size
            )

        input_ids = torch.cat([new_input_ids, current_tokens.unsqueeze(-1)], dim=-1)
        cache = model_kwargs.get("cache")
        if cache is not None and not torch.equal(reorder, torch.arange(rows, device=device)):
            if hasattr(model, "_reorder_cache"):
                model_kwargs["cache"] = model._reorder_cache(cache, reorder)
            else:
                cache.reorder_cache(reorder)
        cur_len += 1
        if all(done) or bool(stopping_criteria(input_ids, None).all()):
            break

    # finalize: unfinished groups contribute their running beams
    for bg in range(batch * num_groups):
        if done[bg]:
            continue
        b, g = divmod(bg, num_groups)
        for j in range(group_size):
            row = b * num_beams + g * group_size + j
            hyps[bg].add(input_ids[row], float(beam_scores[row]), input_ids.shape[-1] - prompt_len)

    best: list[torch.Tensor] = []
    for b in range(batch):
        candidates = [
            h for bg in range(b * num_groups, (b + 1) * num_groups) for h in hyps[bg].beams
        ]
        candidates.sort(key=lambda x: x[0])
        best.extend(candidates.pop()[1] for _ in range(keep))
    lengths = [len(h) for h in best]
    width = min(max(lengths) + 1, max_length)
    out = torch.full((len(best), width), pad_id, dtype=torch.long, device=device)
    for i, h in enumerate(best):
        out[i, : len(h)] = h[:width]
        if len(h) < width and eos is not None:
            out[i, len(h)] = int(eos.reshape(-1)[0])
    return out
