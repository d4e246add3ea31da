"""transformers backend: batched, left-padded ``generate`` on CPU or one GPU per process.

The default decoding is the reference's diverse beam search (2 beams in 2
groups, diversity penalty 0.5, no sampling), run by our own
:func:`~synth.backends.diverse_beam.diverse_beam_search` because transformers 5
moved group beam search to a Hub repository that needs network access and
``trust_remote_code``. Under ``torchrun``/``accelerate launch`` each process
takes the GPU named by ``LOCAL_RANK``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import Any

from cc_tasks.errors import message
from cc_tasks.seeding import stable_seed

from .base import Backend, BackendError, Decoding, Generation, Turn, adds_bos, render


def default_device() -> str:
    import torch

    if torch.cuda.is_available():
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0') or 0)}"
    return "cpu"


class HFBackend(Backend):
    kind = "hf"
    summary = "transformers"
    default_decoding = "diverse-beam"  # the reference's

    @classmethod
    def add_arguments(cls, group: argparse._ArgumentGroup) -> None:
        group.add_argument(
            "--batch-size",
            type=int,
            default=8,
            help="prompts per forward pass; progress moves every this many requests "
            "(default: %(default)s)",
        )
        group.add_argument(
            "--device", help="default: cuda:$LOCAL_RANK when a GPU is present, else cpu"
        )
        group.add_argument(
            "--dtype",
            default="auto",
            help="torch dtype; auto = bfloat16 on GPU, float32 on CPU (default: %(default)s)",
        )

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> dict[str, Any]:
        return {
            **super().from_args(args),
            "trust_remote_code": args.trust_remote_code,
            "batch_size": args.batch_size,
            "device": args.device,
            "dtype": args.dtype,
        }

    def __init__(
        self,
        model: str,
        decoding: Decoding,
        *,
        system_prompt: str | None = None,
        batch_size: int = 8,
        device: str | None = None,
        dtype: str = "auto",
        trust_remote_code: bool = False,
    ) -> None:
        super().__init__(model, decoding, system_prompt)
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.batch_size = max(1, int(batch_size))
        # batch_size requests = 5 full batches, sorted by length within the call (little padding)
        self.requests_per_call = self.batch_size
        self.device = device or default_device()
        if dtype == "auto":
            torch_dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        else:
            torch_dtype = getattr(torch, dtype)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(
                model, trust_remote_code=trust_remote_code
            )
            self.model = AutoModelForCausalLM.from_pretrained(
                model, dtype=torch_dtype, trust_remote_code=trust_remote_code
            ).to(self.device)
        except OSError as err:
            raise BackendError(f"cannot load model {model!r}: {message(err)}") from None
        self.model.eval()
        self.tokenizer.padding_side = "left"  # decoder-only batched generation
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self._eos = self._eos_ids()

    def _eos_ids(self) -> list[int]:
        ids: list[int] = []
        for source in (self.model.generation_config.eos_token_id, self.tokenizer.eos_token_id):
            for x in source if isinstance(source, list) else [source]:
                if x is not None and int(x) not in ids:
                    ids.append(int(x))
        if not ids:
            raise BackendError(f"{self.model_name}: no end-of-sequence token id")
        return ids

    def generation_config(self) -> Any:
        from transformers import GenerationConfig

        d = self.decoding
        common = {
            "max_new_tokens": d.max_new_tokens,
            "pad_token_id": self.tokenizer.pad_token_id,
            "eos_token_id": self._eos,
            "num_return_sequences": 1,
        }
        if d.mode == "diverse-beam":
            return GenerationConfig(
                do_sample=False,
                num_beams=d.num_beams,
                num_beam_groups=d.num_beam_groups,
                diversity_penalty=d.diversity_penalty,
                early_stopping=False,
                length_penalty=1.0,
                **common,
            )
        if d.mode == "beam":
            return GenerationConfig(do_sample=False, num_beams=d.num_beams, **common)
        if d.mode == "sample":
            return GenerationConfig(
                do_sample=True, temperature=d.temperature, top_p=d.top_p, top_k=0, **common
            )
        return GenerationConfig(do_sample=False, num_beams=1, **common)

    def generate(self, turns: Sequence[Turn]) -> list[Generation]:
        import torch

        from .diverse_beam import diverse_beam_search

        texts = [render(self.tokenizer, t, self.system_prompt) for t in turns]
        # batch similar lengths together (less padding); the order is a pure function of the texts
        order = sorted(range(len(texts)), key=lambda i: (len(texts[i]), i))
        results: list[Generation | None] = [None] * len(texts)
        config = self.generation_config()
        custom = diverse_beam_search if self.decoding.mode == "diverse-beam" else None
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            batch = [texts[i] for i in idx]
            enc = self.tokenizer(
                batch,
                return_tensors="pt",
                padding=True,
                add_special_tokens=adds_bos(self.tokenizer, batch[0]),
            ).to(self.device)
            if self.decoding.mode == "sample":
                torch.manual_seed(stable_seed("c2-syn-sample", batch, self.decoding.seed) % 2**63)
            with torch.inference_mode():
                out = self.model.generate(**enc, generation_config=config, custom_generate=custom)
            width = enc["input_ids"].shape[1]
            prompts, new = enc["input_ids"].tolist(), out[:, width:].tolist()
            for i, prompt_ids, ids in zip(idx, prompts, new, strict=True):
                n = next((k for k, tok in enumerate(ids) if tok in self._eos), len(ids))
                results[i] = Generation(text=self._decode_after(prompt_ids, ids[:n]), tokens=n)
        return [r for r in results if r is not None]

    def _decode_after(self, prompt_ids: list[int], new_ids: list[int]) -> str:
        """Text of ``new_ids`` as it reads after the prompt.

        Decoding the new ids alone loses a leading space with SentencePiece
        tokenizers (Llama-2: "that" + "▁you" would read "thatyou"), so decode the
        last prompt tokens with and without them and keep the difference.
        """
        tail = prompt_ids[-4:]
        head = self.tokenizer.decode(tail, skip_special_tokens=True)
        full = self.tokenizer.decode(tail + new_ids, skip_special_tokens=True)
        if full.startswith(head):
            return full[len(head) :]
        return self.tokenizer.decode(new_ids, skip_special_tokens=True)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "batch_size": self.batch_size, "device": self.device}

    def close(self) -> None:
        del self.model
