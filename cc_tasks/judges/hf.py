"""Kind ``hf``: a local Hugging Face chat model as the judge (folder or Hub id), no server needed.

Same prompt and parsing as the API judge (:mod:`.prompt`), greedy decoding,
a few new tokens, batched. The engine is vLLM where it is installed and a GPU
is present (``engine="auto"``), else transformers; ``engine`` forces one.
The model is loaded lazily, only when some item is not in the cache, so a
fully cached rerun loads nothing.

Untrusted text cannot smuggle chat-control tokens into the prompt: the prompt
escapes ``<``/``>`` (which covers ``<|im_end|>``-style tokens) and, on the
transformers engine, the chat template is applied with
``sanitize_control_tokens=True`` so any remaining special token inside a
message is encoded as plain text.
"""

from __future__ import annotations

import importlib.util
import logging
import re
from pathlib import Path
from typing import Any, ClassVar

from .base import JudgeConfigError
from .cache import JudgeCache
from .prompt import merge_system
from .prompt_judge import Conversation, Deliver, PromptJudge
from .rubrics import COURSE_CORRECTION, get_rubric

log = logging.getLogger(__name__)
ENGINES = ("auto", "transformers", "vllm")


def vllm_available() -> bool:
    """True when ``import vllm`` would find the package (nothing is imported)."""
    return importlib.util.find_spec("vllm") is not None


class HFJudge(PromptJudge):
    """A local chat model judging with the shared prompt; greedy, batched, cached."""

    kind: ClassVar[str] = "hf"

    def __init__(
        self,
        *,
        model: str | None = None,
        revision: str | None = None,
        engine: str = "auto",
        batch_size: int = 16,
        max_new_tokens: int | None = None,
        device: str | None = None,
        dtype: str = "auto",
        trust_remote_code: bool = False,
        cache_path: str | None = None,
        use_cache: bool = True,
        progress: bool = True,
        name: str | None = None,
        rubric: str = COURSE_CORRECTION,
    ) -> None:
        """``model``: an HF folder or Hub id (required). ``device``: e.g. "cpu", "cuda:0" (default:
        cuda when available). ``dtype``: "auto", "float32", "bfloat16", ... (transformers names).
        ``rubric``: the question asked (:mod:`.rubrics`); ``max_new_tokens`` defaults to its
        reply budget (5 for course-correction)."""
        self.rubric_name = rubric
        self.model = model
        self.revision = revision
        self.engine = engine
        self.batch_size = batch_size
        self.max_new_tokens = (
            get_rubric(rubric).max_tokens if max_new_tokens is None else max_new_tokens
        )
        self.device = device
        self.dtype = dtype
        self.trust_remote_code = trust_remote_code
        self.cache_path = cache_path
        self.use_cache = use_cache
        self.progress = progress
        self._name = name
        self._cache: JudgeCache | None = None
        self._runner: Any = None  # (engine, objects...) once loaded
        self.last_stats: dict[str, int] = {}

    # ----------------------------------------------------------------- config
    @property
    def cache_model(self) -> str:
        """What identifies the model in the cache: absolute folder path, else Hub id[@revision]."""
        model = str(self.model or "")
        path = Path(model).expanduser()
        if path.is_dir():
            return str(path.resolve())
        return f"{model}@{self.revision}" if self.revision else model

    @property
    def name(self) -> str:
        if self._name:
            return self._name
        base = Path(str(self.model or "model").rstrip("/")).name
        return "hf-" + re.sub(r"[^A-Za-z0-9._-]+", "_", base)

    def params(self) -> dict[str, Any]:
        """Decoding parameters that change a verdict (part of the cache key)."""
        return {"decoding": "greedy", "max_new_tokens": self.max_new_tokens}

    def served_by(self) -> dict[str, Any]:
        """Engine and dtype (part of the cache key): they can change a greedy answer."""
        return {"engine": self.resolved_engine(), "dtype": str(self.dtype)}

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "model": self.cache_model,
            "engine": self.resolved_engine() if self.engine in ENGINES else self.engine,
            **self.params(),
            **self.rubric_fields(),
        }

    def _fail(self, message: str) -> JudgeConfigError:
        return JudgeConfigError(f"judge {self.kind!r}: {message}")

    def resolved_engine(self) -> str:
        """``auto`` -> vllm when importable and a CUDA device exists, else transformers."""
        if self.engine != "auto":
            return self.engine
        if vllm_available():
            import torch

            if torch.cuda.is_available():
                return "vllm"
        return "transformers"

    def check(self) -> None:
        """Static checks (no model loading): model given and findable, engine usable, numbers sane."""
        if not self.model or not str(self.model).strip():
            raise self._fail(
                'no model given: pass judge_options {"model": "<HF folder or Hub id>"}'
            )
        model = str(self.model)
        looks_local = model.startswith(("/", ".", "~")) or model.count("/") > 1
        if looks_local and not Path(model).expanduser().is_dir():
            raise self._fail(f"model folder not found: {model}")
        if (
            Path(model).expanduser().is_dir()
            and not (Path(model).expanduser() / "config.json").is_file()
        ):
            raise self._fail(f"{model} is not a Hugging Face model folder (no config.json)")
        if self.engine not in ENGINES:
            raise self._fail(f"unknown engine {self.engine!r}; choose one of: {', '.join(ENGINES)}")
        if self.engine == "vllm" and not vllm_available():
            raise self._fail("engine 'vllm' asked for but vllm is not installed (pip install vllm)")
        for option in ("batch_size", "max_new_tokens"):
            value = getattr(self, option)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise self._fail(f"option {option!r} must be an integer >= 1, got {value!r}")
        if self._name is not None and ("," in self._name or not self._name.strip()):
            raise self._fail(f"option 'name' must be non-empty and without commas: {self._name!r}")

    # ----------------------------------------------------------------- judging
    def _answer(
        self,
        todo: list[str],
        first: dict[str, Conversation],
        keys: list[str],
        deliver: Deliver,
    ) -> None:
        replies = self._generate([first[key] for key in todo])
        deliver(
            {
                key: self.rubric.verdict(reply, raw=reply)
                for key, reply in zip(todo, replies, strict=True)
            }
        )

    def _generate(self, conversations: list[list[dict[str, str]]]) -> list[str]:
        if self._runner is None:
            self._runner = self._load()
        if self._runner[0] == "vllm":
            return self._generate_vllm(conversations)
        return self._generate_hf(conversations)

    def _load(self) -> tuple[Any, ...]:
        engine = self.resolved_engine()
        log.info("judge %s: loading %s with %s", self.name, self.model, engine)
        if engine == "vllm":
            from vllm import LLM, SamplingParams

            llm = LLM(
                model=str(self.model),
                revision=self.revision,
                dtype=self.dtype,
                trust_remote_code=self.trust_remote_code,
            )
            params = SamplingParams(temperature=0.0, max_tokens=self.max_new_tokens)
            return ("vllm", llm, params)
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

        tokenizer = AutoTokenizer.from_pretrained(
            str(self.model), revision=self.revision, trust_remote_code=self.trust_remote_code
        )
        if tokenizer.chat_template is None:
            raise self._fail(f"{self.model} has no chat template; the judge needs a chat model")
        tokenizer.padding_side = "left"
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = self.dtype if self.dtype == "auto" else getattr(torch, self.dtype)
        model = AutoModelForCausalLM.from_pretrained(
            str(self.model),
            revision=self.revision,
            dtype=dtype,
            trust_remote_code=self.trust_remote_code,
        ).to(device)
        model.eval()
        generation = GenerationConfig(
            do_sample=False,
            max_new_tokens=self.max_new_tokens,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=model.generation_config.eos_token_id or tokenizer.eos_token_id,
        )
        return ("transformers", tokenizer, model, generation, device)

    def _encode(self, tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
        """Chat-template token ids ending with the generation prompt; control tokens sanitised."""
        kwargs = {
            "add_generation_prompt": True,
            "tokenize": True,
            "return_dict": False,
            "sanitize_control_tokens": True,
        }
        try:
            ids = tokenizer.apply_chat_template(messages, **kwargs)
        except Exception:  # template rejects a system turn (Gemma): fold it into the user turn
            ids = tokenizer.apply_chat_template(merge_system(messages), **kwargs)
        return list(ids)

    def _generate_hf(self, conversations: list[list[dict[str, str]]]) -> list[str]:
        import torch
        from tqdm.auto import tqdm

        _, tokenizer, model, generation, device = self._runner
        encoded = [self._encode(tokenizer, msgs) for msgs in conversations]
        order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))  # less padding
        replies: list[str] = [""] * len(encoded)
        with tqdm(
            total=len(encoded), desc=f"judge {self.name}", unit="item", disable=not self.progress
        ) as bar:
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                padded = tokenizer.pad(
                    {"input_ids": [encoded[i] for i in batch]}, return_tensors="pt"
                ).to(device)
                with torch.inference_mode():
                    out = model.generate(**padded, generation_config=generation)
                new_tokens = out[:, padded["input_ids"].shape[1] :]
                texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
                for i, text in zip(batch, texts, strict=True):
                    replies[i] = text
                bar.update(len(batch))
        return replies

    def _generate_vllm(self, conversations: list[list[dict[str, str]]]) -> list[str]:
        _, llm, params = self._runner
        outputs = llm.chat(conversations, params, use_tqdm=self.progress)
        return [out.outputs[0].text for out in outputs]
