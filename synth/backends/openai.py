"""OpenAI-compatible server backend (``vllm serve``, SGLang, TGI, ...): concurrent and retried.

* r1..r4 (continue an assistant turn): the **completions** endpoint with the
  prompt text rendered locally by :func:`cc_tasks.prefill.render_open_assistant`
  (the server's chat endpoint would close the assistant turn). The tokenizer
  that renders it is ``--tokenizer`` (default: the model name, which is what
  ``vllm serve <model>`` serves under). Where the rendered text already starts
  with the BOS token, ``add_special_tokens: false`` is sent (a vLLM extension)
  so the server does not add a second one.
* r0 (answer the plain request): the **chat completions** endpoint.

Requests run ``concurrency`` at a time; the openai client retries connection
errors, 408/409/429 and 5xx with exponential backoff (``max_retries``). The API
key is read from the environment variable ``api_key_env`` and never written
anywhere; self-hosted servers without a key get a placeholder.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from cc_tasks.errors import message
from cc_tasks.seeding import stable_seed

from .base import Backend, BackendError, Decoding, Generation, Turn, adds_bos, render

OPENAI_HOST = "api.openai.com"


class OpenAIBackend(Backend):
    kind = "openai"
    summary = "an OpenAI-compatible server"
    options_title = "openai backend (an OpenAI-compatible server such as `vllm serve`)"
    packages = (*Backend.packages, "openai")

    @classmethod
    def add_arguments(cls, group: argparse._ArgumentGroup) -> None:
        group.add_argument(
            "--base-url", help="e.g. http://127.0.0.1:8000/v1 (default $OPENAI_BASE_URL)"
        )
        group.add_argument(
            "--api-key-env",
            default="OPENAI_API_KEY",
            help="environment variable that holds the API key; the key is never written "
            "(default: %(default)s)",
        )
        group.add_argument("--tokenizer", help="tokenizer that renders the chat (default: --model)")
        group.add_argument(
            "--concurrency",
            type=int,
            default=16,
            help="requests in flight at once (default: %(default)s)",
        )
        group.add_argument(
            "--max-retries",
            type=int,
            default=5,
            help="retries per request with exponential backoff (default: %(default)s)",
        )

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> dict[str, Any]:
        return {
            **super().from_args(args),
            "trust_remote_code": args.trust_remote_code,
            "base_url": args.base_url,
            "api_key_env": args.api_key_env,
            "tokenizer": args.tokenizer,
            "concurrency": args.concurrency,
            "max_retries": args.max_retries,
        }

    def __init__(
        self,
        model: str,
        decoding: Decoding,
        *,
        system_prompt: str | None = None,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        tokenizer: str | None = None,
        concurrency: int = 16,
        max_retries: int = 5,
        timeout: float = 120.0,
        trust_remote_code: bool = False,
    ) -> None:
        super().__init__(model, decoding, system_prompt)
        if decoding.mode not in ("greedy", "sample"):
            raise BackendError(
                f"the openai backend decodes with 'greedy' or 'sample', not {decoding.mode!r}; "
                "pass --decoding greedy"
            )
        import openai
        from transformers import AutoTokenizer

        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        if not self.base_url:
            raise BackendError(
                "the openai backend needs --base-url (or OPENAI_BASE_URL), e.g. "
                "http://127.0.0.1:8000/v1 for `vllm serve <model>`"
            )
        key = os.environ.get(api_key_env)
        if not key:
            if OPENAI_HOST in self.base_url:
                raise BackendError(f"{OPENAI_HOST} needs an API key in ${api_key_env}")
            key = "EMPTY"  # self-hosted servers started without --api-key accept any key
        self.concurrency = max(1, int(concurrency))
        self.requests_per_call = self.concurrency  # 5 turns each: every worker stays busy
        self.max_retries = max_retries
        self.client = openai.OpenAI(
            base_url=self.base_url, api_key=key, max_retries=max_retries, timeout=timeout
        )
        name = tokenizer or model
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(
                name, trust_remote_code=trust_remote_code
            )
        except OSError as err:
            raise BackendError(
                f"cannot load tokenizer {name!r} to render prompts ({message(err)}); "
                "pass --tokenizer <local folder or Hub id of the served model>"
            ) from None

    def _sampling(self, key: Any) -> dict[str, Any]:
        d = self.decoding
        if d.mode == "sample":
            return {
                "temperature": d.temperature,
                "top_p": d.top_p,
                "seed": stable_seed("c2-syn-sample", key, d.seed) % 2**31,
            }
        return {"temperature": 0.0}

    def _one(self, turn: Turn) -> Generation:
        import openai

        try:
            if not turn.prefix:
                messages = [{"role": "user", "content": turn.request}]
                if self.system_prompt:
                    messages.insert(0, {"role": "system", "content": self.system_prompt})
                resp = self.client.chat.completions.create(
                    model=self.model_name,
                    messages=messages,
                    max_tokens=self.decoding.max_new_tokens,
                    **self._sampling(messages),
                )
                text = resp.choices[0].message.content or ""
            else:
                prompt = render(self.tokenizer, turn, self.system_prompt)
                extra = {}
                if not adds_bos(self.tokenizer, prompt) and self.tokenizer.bos_token:
                    extra["extra_body"] = {"add_special_tokens": False}
                resp = self.client.completions.create(
                    model=self.model_name,
                    prompt=prompt,
                    max_tokens=self.decoding.max_new_tokens,
                    **self._sampling(prompt),
                    **extra,
                )
                text = resp.choices[0].text or ""
        except openai.OpenAIError as err:
            raise BackendError(
                f"{self.base_url}: request failed after {self.max_retries} retries "
                f"({type(err).__name__}: {message(err)[:200] if str(err) else ''})"
            ) from None
        usage = getattr(resp, "usage", None)
        return Generation(text=text, tokens=int(getattr(usage, "completion_tokens", 0) or 0))

    def generate(self, turns: Sequence[Turn]) -> list[Generation]:
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(self._one, turns))

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "base_url": self.base_url, "concurrency": self.concurrency}

    def close(self) -> None:
        self.client.close()
