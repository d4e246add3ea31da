"""Shared-response DPO: TRL's DPOTrainer with each unique response forwarded once per batch.

C²-SYN gives every request 6 ranked responses and all 15 ordered pairs of them, so each
response sits in 5 pairs. Stock ``DPOTrainer`` forwards prompt+chosen and prompt+rejected per
pair: 30 policy and 30 reference sequences per request. :class:`SharedResponseDPOTrainer`
keeps requests whole in a batch and forwards each distinct prompt+response sequence once
(:mod:`cc_train.batches`), and forms every pair's log-probability from those forwards: 6 + 6
sequences per request, and the reference half is computed once per unique response in a
precompute pass when ``precompute_ref_log_probs`` is on (stored as TRL's own
``ref_chosen_logps``/``ref_rejected_logps`` columns, so they last across epochs and resumes).

Why a subclass and not a training loop: the optimizer, gradient accumulation, DDP/ZeRO-3/FSDP
wrapping, checkpoints, LoRA/QLoRA (the reference is the policy with the adapter disabled) all
stay TRL's and transformers'. Only four things change: the collator, the batch sampler, the
loss (``_compute_loss``) and the reference precompute. Tokenisation is TRL's own
``_prepare_dataset``, run per pair as stock does, so the sequences, ``max_length`` truncation
and the completion boundary of every pair are exactly stock's.

The loss is DPO's sigmoid loss, ``-logsigmoid(beta * (chosen_logratio - rejected_logratio))``,
averaged over the pairs of the micro-batch (stock's reduction: each micro-batch's mean weighs
the same in an accumulated step whatever its pair count; whole 15-pair requests keep the
counts equal but for an epoch's last micro-batch), plus the optional correction
term (:mod:`cc_train.correction`); the logged metrics have stock's names and meaning
(:mod:`cc_train.metrics`). In a group-by-request run ``per_device_train_batch_size`` /
``per_device_eval_batch_size`` / ``precompute_ref_batch_size`` count **requests** (15 pairs
each in C²-SYN), not pairs (and so does transformers' ``train_samples_per_second``;
``num_tokens`` counts pair tokens).
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import time
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
from trl.trainer.utils import use_adapter

from .batches import (
    RequestBatchSampler,
    SharedResponseCollator,
    pair_masks,
    pair_sums,
    request_groups,
)
from .correction import correction_nll
from .metrics import PAIR_TOKENS, pair_metric_sums, record_pair_metrics
from .shared_options import unsupported_options

TOKEN_COLUMNS = ("prompt_ids", "chosen_ids", "rejected_ids")
CACHE_TAG = "c2-shared-response-ref-logps/1"  # in the cache fingerprint: never stock's file


# ---------------------------------------------------------------- trainer


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
        # the rejected one (:func:`cc_train.correction.divergent_mask`), added to DPO's loss; 0 = DPO alone (stock's)
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
            num_processes=self.accelerator.num_processes,  # evaluation: no pair counted twice
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
        if self.correction_sft_weight:  # the correction term (cc_train.correction)
            nll = correction_nll(per_token_logps, inputs, chosen_mask)
            loss = loss + self.correction_sft_weight * nll
            self._metrics[mode]["correction_nll"].append(
                self.accelerator.gather(nll.detach()[None]).mean().item()
            )

        stats = pair_metric_sums(
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
            self.beta,
        )
        with torch.no_grad():  # one gather of every metric's sums and counts (cc_train.metrics)
            total = self.accelerator.gather(stats[None]).sum(dim=0).tolist()
        if mode == "train":
            self._total_train_tokens += int(total[PAIR_TOKENS]) // self._tp_size
        record_pair_metrics(self._metrics[mode], total, num_tokens=self._total_train_tokens)
        return (loss, outputs) if return_outputs else loss

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


__all__ = ["CACHE_TAG", "TOKEN_COLUMNS", "SharedResponseDPOTrainer", "unsupported_options"]
