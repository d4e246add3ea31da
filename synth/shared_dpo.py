"""Shared-response DPO: TRL's DPOTrainer with each unique response forwarded once per batch.

C²-SYN gives every request 6 ranked responses and all 15 ordered pairs of them, so each
response sits in 5 pairs. Stock ``DPOTrainer`` forwards prompt+chosen and prompt+rejected per
pair: 30 policy and 30 reference sequences per request. :class:`SharedResponseDPOTrainer`
keeps requests whole in a batch (:class:`RequestBatchSampler`), forwards each distinct
prompt+response sequence once (:class:`SharedResponseCollator`), and forms every pair's
log-probability from those forwards: 6 + 6 sequences per request, and the reference half is
computed once per unique response in a precompute pass when ``precompute_ref_log_probs`` is on
(stored as TRL's own ``ref_chosen_logps``/``ref_rejected_logps`` columns, so they last across
epochs and resumes).

Why a subclass and not a training loop: the optimizer, gradient accumulation, DDP/ZeRO-3/FSDP
wrapping, checkpoints, LoRA/QLoRA (the reference is the policy with the adapter disabled) all
stay TRL's and transformers'. Only four things change: the collator, the batch sampler, the
loss (``_compute_loss``) and the reference precompute. Tokenisation is TRL's own
``_prepare_dataset``, run per pair as stock does, so the sequences, ``max_length`` truncation
and the completion boundary of every pair are exactly stock's.

The loss is DPO's sigmoid loss, ``-logsigmoid(beta * (chosen_logratio - rejected_logratio))``,
averaged over the pairs of the micro-batch (stock's reduction), and the logged metrics have
stock's names and meaning (rewards/*, logps/*, logits/*, entropy, mean_token_accuracy,
num_tokens counted as the pair sequences stock would have forwarded). In a group-by-request
run ``per_device_train_batch_size`` / ``per_device_eval_batch_size`` /
``precompute_ref_batch_size`` count **requests** (15 pairs each in C²-SYN), not pairs (and so
does transformers' ``train_samples_per_second``; ``num_tokens`` counts pair tokens).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from accelerate.utils import broadcast_object_list, gather_object, is_peft_model, tqdm
from datasets import Dataset, IterableDataset, concatenate_datasets, is_caching_enabled
from datasets.fingerprint import Hasher
from torch.utils.data import DataLoader
from transformers.trainer_utils import seed_worker
from trl import DPOTrainer
from trl.models.utils import disable_gradient_checkpointing
from trl.trainer.utils import pad, use_adapter

GROUP_KEY_COLUMNS = ("prompt", "chat_template_kwargs", "tools")  # what makes one request
TOKEN_COLUMNS = ("prompt_ids", "chosen_ids", "rejected_ids")
REF_COLUMNS = ("ref_chosen_logps", "ref_rejected_logps")
CACHE_TAG = "c2-shared-response-ref-logps/1"  # in the cache fingerprint: never stock's file


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
    ) -> None:
        if requests_per_batch < 1:
            raise ValueError(f"requests per batch must be >= 1, got {requests_per_batch}")
        self.groups = [list(g) for g in groups]
        self.requests_per_batch = requests_per_batch
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        full, rest = divmod(len(self.groups), self.requests_per_batch)
        return full + (1 if rest and not self.drop_last else 0)

    def __iter__(self) -> Iterator[list[int]]:
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


# ---------------------------------------------------------------- trainer


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


class SharedResponseDPOTrainer(DPOTrainer):
    """``DPOTrainer`` that forwards each unique response once per batch (see the module doc).

    Takes the same arguments as ``DPOTrainer`` and the same datasets (TRL preference pairs;
    C²-SYN's layout). Options whose loss does not decompose over unique responses, or that
    need per-pair logits, are refused up front with one clear message.
    """

    def __init__(self, *args: Any, correction_sft_weight: float = 0.0, **kwargs: Any) -> None:
        if correction_sft_weight < 0:
            raise ValueError(f"correction_sft_weight must be >= 0, got {correction_sft_weight}")
        # weight of the NLL of each chosen response's tokens after the beginning it shares with
        # the rejected one (:func:`divergent_mask`), added to DPO's loss; 0 = DPO alone (stock's)
        self.correction_sft_weight = correction_sft_weight
        names = (
            "model",
            "ref_model",
            "args",
            "data_collator",
            "train_dataset",
            "eval_dataset",
            "processing_class",
            "compute_metrics",
        )
        given = dict(zip(names, args, strict=False)) | kwargs
        self._check_supported(given)
        self._groups_cache: dict[str, list[list[int]]] = {}
        self._train_request_sampler: RequestBatchSampler | None = None
        self.precompute_seconds = 0.0  # wall and CPU time of the reference precompute
        self.precompute_cpu_seconds = 0.0
        super().__init__(*args, **kwargs)
        if self.aux_loss_enabled:
            raise ValueError(
                "group_by_request: the MoE router auxiliary loss is not supported (it is not a "
                "sum over pairs); set router_aux_loss_coef: 0 or group_by_request: false"
            )
        self.data_collator = self._shared_collator()

    # -- checks

    @staticmethod
    def _check_supported(given: dict[str, Any]) -> None:
        problems = unsupported_options(given["args"]) if given.get("args") is not None else []
        if given.get("data_collator") is not None:
            problems.append("a custom data_collator (the shared-response collator is required)")
        if given.get("compute_metrics") is not None:
            problems.append("compute_metrics (it needs per-pair logits)")
        dataset = given.get("train_dataset")
        if isinstance(dataset, IterableDataset):
            problems.append("an IterableDataset (requests are grouped over the whole dataset)")
        elif isinstance(dataset, Dataset) and {"image", "images"} & set(dataset.column_names):
            problems.append("vision datasets")
        if problems:
            raise ValueError("group_by_request does not support " + "; ".join(problems))

    # -- data

    def _shared_collator(self) -> SharedResponseCollator:
        return SharedResponseCollator(
            pad_token_id=self._tokenizer.pad_token_id,
            max_length=self.args.max_length,
            truncation_mode=self.args.truncation_mode,
            pad_to_multiple_of=self.args.pad_to_multiple_of,
        )

    def _request_groups(self, dataset: Dataset) -> list[list[int]]:
        key = dataset._fingerprint
        if key not in self._groups_cache:
            self._groups_cache[key] = request_groups(dataset)
        return self._groups_cache[key]

    def _get_dataloader(
        self,
        dataset: Dataset,
        description: str,
        batch_size: int,
        sampler_fn: Any = None,
        is_training: bool = False,
        dataloader_key: str | None = None,
    ) -> DataLoader:
        """Trainer's dataloader with a :class:`RequestBatchSampler` (``batch_size`` requests)."""
        if not isinstance(dataset, Dataset):
            raise ValueError("group_by_request needs a map-style datasets.Dataset")
        groups = self._request_groups(dataset)
        dataset = self._remove_unused_columns(dataset, description=description)
        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        sampler = RequestBatchSampler(
            groups,
            batch_size,
            shuffle=is_training,
            seed=seed,
            drop_last=self.args.dataloader_drop_last,
        )
        params: dict[str, Any] = {
            "batch_sampler": sampler,
            "collate_fn": self.data_collator,
            "num_workers": self.args.dataloader_num_workers,
            "pin_memory": self.args.dataloader_pin_memory,
            "persistent_workers": self.args.dataloader_persistent_workers,
            "multiprocessing_context": self.args.dataloader_multiprocessing_context,
            "prefetch_factor": self.args.dataloader_prefetch_factor,
            "in_order": self.args.dataloader_in_order,
        }
        if is_training:
            self._train_request_sampler = sampler
            params["worker_init_fn"] = partial(
                seed_worker,
                num_workers=self.args.dataloader_num_workers,
                rank=self.args.process_index,
            )
        dataloader = self.accelerator.prepare(DataLoader(dataset, **params))
        if dataloader_key is not None and self.args.dataloader_persistent_workers:
            if not hasattr(self, "_eval_dataloaders"):
                self._eval_dataloaders = {}
            self._eval_dataloaders[dataloader_key] = dataloader
        return dataloader

    def _run_epoch(self, *args: Any, **kwargs: Any) -> Any:
        # accelerate's set_epoch does not reach a batch sampler behind BatchSamplerShard or
        # skip_first_batches (a resumed epoch), so tell ours the epoch here, every epoch
        if self._train_request_sampler is not None and "epoch" in kwargs:
            self._train_request_sampler.set_epoch(kwargs["epoch"])
        return super()._run_epoch(*args, **kwargs)

    # -- reference log-probabilities

    def _reference_pair_logps(
        self, model: Any, inputs: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Reference log-probs of every pair's chosen/rejected side, one forward per unique row.

        As stock's ``compute_ref_log_probs``: no grad, no gradient checkpointing, the adapter
        disabled (or the "ref" adapter) when the policy is a PEFT model without ``ref_model``.
        """
        labels = inputs["input_ids"].masked_fill(inputs["completion_mask"] == 0, -100)
        adapter_context: Any = contextlib.nullcontext()
        if self.ref_model is None and is_peft_model(self.model):
            unwrapped = self.accelerator.unwrap_model(self.model)
            adapter_context = use_adapter(
                unwrapped, adapter_name="ref" if "ref" in unwrapped.peft_config else None
            )
        with (
            torch.no_grad(),
            disable_gradient_checkpointing(self.model, self.args.gradient_checkpointing_kwargs),
            adapter_context,
            self.accelerator.autocast(),
        ):
            outputs = model(
                input_ids=inputs["input_ids"],
                attention_mask=inputs["attention_mask"],
                use_cache=False,
                labels=labels,
                fused_lm_head=True,
            )
        seq_len = inputs["input_ids"].size(1) - 1
        per_token = outputs.log_probs[:, -seq_len:]
        chosen_mask, rejected_mask = pair_masks(inputs)
        return (
            pair_sums(per_token, inputs["chosen_index"], chosen_mask),
            pair_sums(per_token, inputs["rejected_index"], rejected_mask),
        )

    def _precompute_ref_logps(self, dataset: Dataset, name: str, batch_size: int) -> Dataset:
        """TRL's precompute pass, but one reference forward per unique response.

        Writes TRL's ``ref_chosen_logps``/``ref_rejected_logps`` columns (per pair), cached
        beside the dataset under a fingerprint of (dataset, reference model), so later epochs
        and a resumed run reuse them. Every process computes an equal number of batches (ZeRO-3
        needs every rank in every forward) and all processes receive all values.
        """
        if isinstance(dataset, IterableDataset):
            raise ValueError("precompute_ref_log_probs needs a map-style datasets.Dataset")
        started, started_cpu = time.perf_counter(), time.process_time()
        fingerprint = [Hasher.hash((CACHE_TAG, dataset._fingerprint, self._precompute_model_hash))]
        broadcast_object_list(fingerprint, from_process=0)
        on_disk = bool(is_caching_enabled() and dataset.cache_files)
        cache_file = dataset._get_cache_file_path(fingerprint[0]) if on_disk else None
        if cache_file is not None and os.path.exists(cache_file):
            return concatenate_datasets([dataset, Dataset.from_file(cache_file)], axis=1)

        batches = list(
            RequestBatchSampler(self._request_groups(dataset), batch_size, shuffle=False)
        )
        processes, rank = self.accelerator.num_processes, self.accelerator.process_index
        per_process = math.ceil(len(batches) / processes)
        batches = list(itertools.islice(itertools.cycle(batches), per_process * processes))
        if self.ref_model is None and self.is_deepspeed_enabled:
            if self._precompute_engine is None:
                from trl.models import prepare_deepspeed

                self._precompute_engine = prepare_deepspeed(self.model, self.accelerator)
            model = self._precompute_engine
        else:
            model = self.ref_model or self.model
        collator = self._shared_collator()
        tokens = dataset.select_columns(list(TOKEN_COLUMNS))
        device = self.accelerator.device
        local: list[tuple[int, float, float]] = []
        for rows in tqdm(
            batches[rank::processes],
            desc=f"Computing reference log probs per unique response ({name})",
            disable=bool(os.environ.get("TQDM_DISABLE", "")) or self.args.disable_tqdm,
        ):
            columns = tokens[rows]
            examples = [
                dict(zip(TOKEN_COLUMNS, values, strict=True))
                for values in zip(*(columns[c] for c in TOKEN_COLUMNS), strict=True)
            ]
            batch = {k: v.to(device) for k, v in collator(examples).items()}
            chosen, rejected = self._reference_pair_logps(model, batch)
            local.extend(
                zip(
                    rows,
                    chosen.float().cpu().tolist(),
                    rejected.float().cpu().tolist(),
                    strict=True,
                )
            )
        results = gather_object(local) if processes > 1 else local
        ref_chosen = [math.nan] * len(dataset)
        ref_rejected = [math.nan] * len(dataset)
        for row, chosen_value, rejected_value in results:
            ref_chosen[row], ref_rejected[row] = chosen_value, rejected_value
        missing = sum(math.isnan(v) for v in ref_chosen)
        if missing:
            raise RuntimeError(f"reference log-probs missing for {missing} of {len(dataset)} pairs")
        values = {"ref_chosen_logps": ref_chosen, "ref_rejected_logps": ref_rejected}
        if cache_file is None:
            columns_ds = Dataset.from_dict(values)
        else:
            if self.accelerator.is_local_main_process:

                def add(_: Any, indices: list[int]) -> dict[str, list[float]]:
                    return {k: [v[i] for i in indices] for k, v in values.items()}

                dataset.map(
                    add,
                    with_indices=True,
                    batched=True,
                    remove_columns=dataset.column_names,
                    new_fingerprint=fingerprint[0],
                    cache_file_name=cache_file,
                    desc=f"Caching reference log probs for {name} dataset",
                )
            self.accelerator.wait_for_everyone()
            columns_ds = Dataset.from_file(cache_file)
        self.precompute_seconds += time.perf_counter() - started
        self.precompute_cpu_seconds += time.process_time() - started_cpu
        return concatenate_datasets([dataset, columns_ds], axis=1)

    # -- loss and metrics

    def _compute_loss(
        self, model: Any, inputs: dict[str, torch.Tensor], return_outputs: bool
    ) -> Any:
        mode = "train" if self.model.training else "eval"
        input_ids, attention_mask = inputs["input_ids"], inputs["attention_mask"]
        labels = input_ids.masked_fill(inputs["completion_mask"] == 0, -100)
        model_kwargs = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "use_cache": False,
        }
        outputs = model(**model_kwargs, labels=labels, fused_lm_head=True)
        seq_len = input_ids.size(1) - 1
        per_token_logps = outputs.log_probs[:, -seq_len:]
        chosen_index, rejected_index = inputs["chosen_index"], inputs["rejected_index"]
        chosen_mask, rejected_mask = pair_masks(inputs)
        chosen_logps = pair_sums(per_token_logps, chosen_index, chosen_mask)
        rejected_logps = pair_sums(per_token_logps, rejected_index, rejected_mask)

        if self.precompute_ref_logps:
            ref_chosen_logps = inputs["ref_chosen_logps"]
            ref_rejected_logps = inputs["ref_rejected_logps"]
        else:
            ref_model = self.ref_model if self.ref_model is not None else self.model
            ref_chosen_logps, ref_rejected_logps = self._reference_pair_logps(ref_model, inputs)

        chosen_logratios = chosen_logps - ref_chosen_logps
        rejected_logratios = rejected_logps - ref_rejected_logps
        delta_score = chosen_logratios - rejected_logratios
        loss = 0.0
        for _loss_type, loss_weight in zip(self.loss_types, self.loss_weights, strict=True):
            per_sequence_loss = -F.logsigmoid(self.beta * delta_score)  # "sigmoid", checked
            loss += per_sequence_loss.mean() * loss_weight
        if self.correction_sft_weight:
            # TRL's "sft" loss (mean NLL over the micro-batch's chosen tokens) restricted to the
            # chosen tokens after the beginning a pair shares (divergent_mask): the tokens DPO's
            # log-ratio compares. Stock's ["sigmoid", "sft"] would compute this on pairs whose
            # shared beginning is part of the prompt, if TRL could continue an assistant turn.
            mask = divergent_mask(inputs, chosen_mask)
            nll = -pair_sums(per_token_logps, chosen_index, mask).sum()
            correction_nll = nll / mask.sum().clamp(min=1)
            loss = loss + self.correction_sft_weight * correction_nll
            self._metrics[mode]["correction_nll"].append(
                self.accelerator.gather(correction_nll.detach()[None]).mean().item()
            )

        self._log_metrics(
            mode,
            outputs,
            seq_len,
            attention_mask,
            chosen_index,
            rejected_index,
            chosen_mask,
            rejected_mask,
            chosen_logps,
            rejected_logps,
            chosen_logratios,
            rejected_logratios,
        )
        return (loss, outputs) if return_outputs else loss

    def _log_metrics(
        self,
        mode: str,
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
    ) -> None:
        """Stock's metrics over the batch's pairs, from one gather of their sums and counts.

        Stock gathers each per-pair tensor and averages; with varying pairs per process a
        per-pair gather would not line up, so every metric is a global sum over a global
        count (equal to stock's mean whenever stock's own batches are equal in size).
        """
        with torch.no_grad():
            entropy = outputs.entropy[:, -seq_len:].detach()
            mean_logits = outputs.mean_logits[:, -seq_len:].detach()
            is_top1 = outputs.is_top1[:, -seq_len:]
            lengths = attention_mask.sum(dim=1)
            chosen_rewards = self.beta * chosen_logratios.detach()
            rejected_rewards = self.beta * rejected_logratios.detach()
            chosen_tokens = chosen_mask.sum()
            rejected_tokens = rejected_mask.sum()
            stats = torch.stack(
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
            total = self.accelerator.gather(stats[None]).sum(dim=0).tolist()
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
            pair_tokens,
        ) = total
        metrics = self._metrics[mode]
        metrics["entropy"].append(entropy_sum / tokens if tokens > 0 else 0.0)
        if mode == "train":
            self._total_train_tokens += int(pair_tokens) // self._tp_size
        metrics["num_tokens"] = [self._total_train_tokens]
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

    def prediction_step(
        self,
        model: Any,
        inputs: dict[str, torch.Tensor],
        prediction_loss_only: bool,
        ignore_keys: list[str] | None = None,
    ) -> tuple[torch.Tensor, None, None]:
        """Loss (and metrics) only: stock's extra logits forward serves compute_metrics,
        which this trainer refuses."""
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            loss = self.compute_loss(model, inputs, return_outputs=False)
        return loss.detach(), None, None
