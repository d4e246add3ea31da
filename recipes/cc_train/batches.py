"""Whole requests in a batch, each distinct prompt+response once: the data side of
shared-response DPO (:mod:`cc_train.shared_dpo`).

C²-SYN gives every request 6 ranked responses and all 15 ordered pairs of them.
:func:`request_groups` finds the pairs of each request, :class:`RequestBatchSampler` batches
whole requests, and :class:`SharedResponseCollator` turns a batch of pair rows into the distinct
prompt+response sequences plus, per pair, which row holds its chosen and rejected side and where
its completion starts (:func:`pair_masks`, :func:`pair_sums` read that layout back).
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from datasets import Dataset
from trl.trainer.utils import pad

GROUP_KEY_COLUMNS = ("prompt", "chat_template_kwargs", "tools")  # what makes one request
REF_COLUMNS = ("ref_chosen_logps", "ref_rejected_logps")

# ---------------------------------------------------------------- requests and batches


def request_groups(dataset: Dataset, *, chunk: int = 4096) -> list[list[int]]:
    """Row indices of the dataset grouped by request, groups in order of first appearance.

    A request is its prompt (plus ``chat_template_kwargs``/``tools`` where present): two
    C²-SYN ids with the same request text share their responses' prompt, so grouping them
    only adds sharing; the loss never depends on grouping (responses are matched by their
    token ids). Reads the key columns in chunks, so a large dataset is not loaded at once.
    """
    columns = [c for c in GROUP_KEY_COLUMNS if c in dataset.column_names] or ["prompt_ids"]
    index: dict[bytes, int] = {}
    groups: list[list[int]] = []
    row = 0
    for batch in dataset.select_columns(columns).iter(batch_size=chunk):
        for values in zip(*(batch[c] for c in columns), strict=True):
            key = hashlib.sha1(
                json.dumps(values, sort_keys=True, default=str).encode("utf-8")
            ).digest()
            group = index.setdefault(key, len(groups))
            if group == len(groups):
                groups.append([])
            groups[group].append(row)
            row += 1
    return groups


def select_whole_requests(dataset: Dataset, max_pairs: int, seed: int) -> Dataset:
    """At most ``max_pairs`` pairs made of whole requests, the requests in a seeded order.

    The shared-response counterpart of the recipes' ``max_train_samples`` (a seeded shuffle
    of pairs): cutting single pairs would scatter each request over many batches and share
    nothing.
    """
    groups = request_groups(dataset)
    order = torch.randperm(len(groups), generator=torch.Generator().manual_seed(seed)).tolist()
    rows: list[int] = []
    for g in order:
        if len(rows) + len(groups[g]) > max_pairs:
            continue
        rows.extend(groups[g])
    return dataset.select(sorted(rows))


class RequestBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Batches of ``requests_per_batch`` whole requests (the row indices of their pairs).

    Shuffled by request with ``seed + epoch`` (the same order on every process before
    accelerate's ``BatchSamplerShard`` deals the batches out), so a resumed run sees the same
    batches; the trainer sets the epoch at the start of each (``_run_epoch``). ``batch_size = None`` tells accelerate that batch sizes vary (requests need not
    all have 15 pairs).
    """

    batch_size = None

    def __init__(
        self,
        groups: Sequence[Sequence[int]],
        requests_per_batch: int,
        *,
        shuffle: bool,
        seed: int = 0,
        drop_last: bool = False,
        num_processes: int = 1,
    ) -> None:
        if requests_per_batch < 1:
            raise ValueError(f"requests per batch must be >= 1, got {requests_per_batch}")
        self.groups = [list(g) for g in groups]
        self.requests_per_batch = requests_per_batch
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.num_processes = num_processes
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self._evened()) if self._evens() else self._count()

    def _count(self) -> int:
        full, rest = divmod(len(self.groups), self.requests_per_batch)
        return full + (1 if rest and not self.drop_last else 0)

    def _evens(self) -> bool:
        """Evaluation over several processes whose batch count does not divide evenly."""
        return bool(
            not self.shuffle and self.num_processes > 1 and self._count() % self.num_processes
        )

    def _evened(self) -> list[list[int]]:
        """Every row once, in a multiple of ``num_processes`` batches (see ``__iter__``)."""
        rows = [row for group in self.groups for row in group]
        processes = self.num_processes
        count = min(-(-self._count() // processes) * processes, len(rows) // processes * processes)
        if count == 0:  # fewer pairs than processes: accelerate's wrap-around cannot be avoided
            return list(self._whole())
        size, extra = divmod(len(rows), count)
        cuts = [i * size + min(i, extra) for i in range(count + 1)]
        return [rows[a:b] for a, b in itertools.pairwise(cuts)]

    def __iter__(self) -> Iterator[list[int]]:
        """Batches of whole requests. Evaluation (``shuffle=False``) over ``num_processes``
        > 1 whose batch count is not a multiple of it is cut instead into that multiple of
        near-equal contiguous runs of rows (requests stay whole where the cuts allow): accelerate
        would otherwise pad the last round with the first batches again, and those requests'
        pairs would count twice in the held-out loss and metrics."""
        if self._evens():
            yield from self._evened()
            return
        yield from self._whole()

    def _whole(self) -> Iterator[list[int]]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(len(self.groups), generator=generator).tolist()
        else:
            order = list(range(len(self.groups)))
        for start in range(0, len(order), self.requests_per_batch):
            chunk = order[start : start + self.requests_per_batch]
            if self.drop_last and len(chunk) < self.requests_per_batch:
                return
            yield [row for g in chunk for row in self.groups[g]]


# ---------------------------------------------------------------- collator


@dataclass
class SharedResponseCollator:
    """Pair rows (TRL's ``prompt_ids``/``chosen_ids``/``rejected_ids``) -> unique sequences.

    Returns ``input_ids``/``attention_mask``/``completion_mask`` of the distinct
    prompt+completion sequences of the batch (right-padded, truncated per sequence exactly as
    ``DataCollatorForPreference`` does), and per pair the row of its chosen and rejected
    sequence (``chosen_index``/``rejected_index``) and where the pair's completion starts in
    that row (``chosen_start``/``rejected_start``). Stock starts a pair's completion at the
    shorter common prefix of the prompt with either side, so one sequence can start at
    different places in different pairs; the unique row's ``completion_mask`` covers the
    earliest start and the loss masks each pair from its own start.
    """

    pad_token_id: int
    max_length: int | None = None
    truncation_mode: str = "keep_start"
    pad_to_multiple_of: int | None = None

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        if self.truncation_mode not in ("keep_start", "keep_end"):
            raise ValueError(
                f"Unsupported truncation mode: {self.truncation_mode}, expected 'keep_start' or "
                "'keep_end'"
            )
        rows: dict[tuple[int, ...], int] = {}
        sequences: list[list[int]] = []
        earliest: list[int] = []
        index: dict[str, list[int]] = {"chosen": [], "rejected": []}
        start: dict[str, list[int]] = {"chosen": [], "rejected": []}
        for example in examples:
            prompt = list(example["prompt_ids"])
            for side in ("chosen", "rejected"):
                full = prompt + list(example[f"{side}_ids"])
                row = rows.setdefault(tuple(full), len(sequences))
                if row == len(sequences):
                    sequences.append(full)
                    earliest.append(len(prompt))
                else:
                    earliest[row] = min(earliest[row], len(prompt))
                index[side].append(row)
                start[side].append(len(prompt))

        offsets = []
        input_ids, completion_mask = [], []
        for full, first in zip(sequences, earliest, strict=True):
            mask = [0] * first + [1] * (len(full) - first)
            offset = 0
            if self.max_length is not None and len(full) > self.max_length:
                if self.truncation_mode == "keep_start":
                    full, mask = full[: self.max_length], mask[: self.max_length]
                else:
                    offset = len(full) - self.max_length
                    full, mask = full[offset:], mask[offset:]
            offsets.append(offset)
            input_ids.append(torch.tensor(full))
            completion_mask.append(torch.tensor(mask, dtype=torch.long))

        def pad_right(tensors: list[torch.Tensor], value: int) -> torch.Tensor:
            return pad(
                tensors,
                padding_value=value,
                padding_side="right",
                pad_to_multiple_of=self.pad_to_multiple_of,
            )

        output = {
            "input_ids": pad_right(input_ids, self.pad_token_id),
            "attention_mask": pad_right([torch.ones_like(t) for t in input_ids], 0),
            "completion_mask": pad_right(completion_mask, 0),
        }
        for side in ("chosen", "rejected"):
            output[f"{side}_index"] = torch.tensor(index[side], dtype=torch.long)
            output[f"{side}_start"] = torch.tensor(
                [max(s - offsets[r], 0) for s, r in zip(start[side], index[side], strict=True)],
                dtype=torch.long,
            )
        for column in REF_COLUMNS:
            if column in examples[0]:
                output[column] = torch.tensor([example[column] for example in examples])
        return output


def pair_masks(inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per pair, which next-token positions of its chosen / rejected row are its completion.

    Position ``j`` of the shifted (``[:, 1:]``) tensors scores token ``j + 1``, as in TRL.
    """
    shifted = inputs["completion_mask"][:, 1:].bool()
    positions = torch.arange(1, shifted.size(1) + 1, device=shifted.device)
    return tuple(  # type: ignore[return-value]
        shifted[inputs[f"{side}_index"]] & (positions >= inputs[f"{side}_start"][:, None])
        for side in ("chosen", "rejected")
    )


def pair_sums(per_token: torch.Tensor, rows: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sum of ``per_token`` (unique rows x positions) over each pair's masked positions."""
    return per_token[rows].masked_fill(~mask, 0).sum(dim=1)


__all__ = [
    "GROUP_KEY_COLUMNS",
    "REF_COLUMNS",
    "RequestBatchSampler",
    "SharedResponseCollator",
    "pair_masks",
    "pair_sums",
    "request_groups",
    "select_whole_requests",
]
