"""vLLM backend (optional extra ``pip install 'course-correction[vllm]'``): one GPU or tensor parallel.

Prompts are rendered with the model's own chat template
(:func:`cc_tasks.prefill.render_open_assistant`) and passed as token ids, so
vLLM neither adds a second BOS nor re-renders the chat. Prefix caching is on:
the five prompts of a request share the chat header and the request text, and
r1..r4 share growing parts of the harmful response.

vLLM has no diverse beam search; its decodings here are ``greedy`` (the
default for this backend) and ``sample`` (seeded per prompt). Not exercised by
the CPU test suite (vLLM needs a GPU); keep this module small.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from cc_tasks.seeding import stable_seed

from .base import Backend, BackendError, Decoding, Generation, Turn, adds_bos, render


class VLLMBackend(Backend):
    kind = "vllm"
    summary = "vLLM"
    packages = (*Backend.packages, "vllm")

    @classmethod
    def add_arguments(cls, group: argparse._ArgumentGroup) -> None:
        group.add_argument(
            "--tensor-parallel-size",
            type=int,
            default=1,
            help="GPUs one model is spread over (default: %(default)s)",
        )
        group.add_argument(
            "--gpu-memory-utilization",
            type=float,
            default=0.9,
            help="share of GPU memory vLLM may take (default: %(default)s)",
        )
        group.add_argument(
            "--max-model-len",
            type=int,
            default=None,
            help="context length vLLM reserves (default: the model's)",
        )

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> dict[str, Any]:
        return {
            **super().from_args(args),
            "trust_remote_code": args.trust_remote_code,
            "tensor_parallel_size": args.tensor_parallel_size,
            "gpu_memory_utilization": args.gpu_memory_utilization,
            "max_model_len": args.max_model_len,
            "dtype": args.dtype,  # the hf group's --dtype: one torch dtype flag for both
        }

    def __init__(
        self,
        model: str,
        decoding: Decoding,
        *,
        system_prompt: str | None = None,
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.9,
        max_model_len: int | None = None,
        dtype: str = "auto",
        trust_remote_code: bool = False,
    ) -> None:
        super().__init__(model, decoding, system_prompt)
        if decoding.mode not in ("greedy", "sample"):
            raise BackendError(
                f"the vllm backend decodes with 'greedy' or 'sample', not {decoding.mode!r} "
                "(vLLM has no diverse beam search); pass --decoding greedy, or use --backend hf "
                "for the reference's diverse beam search"
            )
        try:
            from vllm import LLM
        except ImportError as err:
            raise BackendError(
                f"the vllm backend needs vLLM ({err}); install it with: "
                "pip install 'course-correction[vllm]'"
            ) from None
        self.tensor_parallel_size = tensor_parallel_size
        self.llm = LLM(
            model=model,
            tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len,
            dtype=dtype,
            enable_prefix_caching=True,
            trust_remote_code=trust_remote_code,
            seed=decoding.seed,
        )
        self.tokenizer = self.llm.get_tokenizer()

    def _params(self, text: str) -> Any:
        from vllm import SamplingParams

        d = self.decoding
        if d.mode == "sample":
            seed = stable_seed("c2-syn-sample", text, d.seed) % 2**31
            return SamplingParams(
                max_tokens=d.max_new_tokens, temperature=d.temperature, top_p=d.top_p, seed=seed
            )
        return SamplingParams(max_tokens=d.max_new_tokens, temperature=0.0)

    def generate(self, turns: Sequence[Turn]) -> list[Generation]:
        texts = [render(self.tokenizer, t, self.system_prompt) for t in turns]
        prompts = [
            {
                "prompt_token_ids": self.tokenizer(
                    text, add_special_tokens=adds_bos(self.tokenizer, text)
                )["input_ids"]
            }
            for text in texts
        ]
        outputs = self.llm.generate(prompts, [self._params(t) for t in texts], use_tqdm=False)
        return [
            Generation(text=o.outputs[0].text, tokens=len(o.outputs[0].token_ids)) for o in outputs
        ]

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "tensor_parallel_size": self.tensor_parallel_size}
