"""What every synthesis backend does: answer plain requests and continue open assistant turns.

A backend gets ``(request, assistant_prefix)`` pairs. An empty prefix means
"answer the plain request" (r0); a non-empty one means "continue this assistant
message" (r1..r4: opener + prefix + trigger), rendered with
:func:`cc_tasks.prefill.render_open_assistant`, the same function the C²-EVAL
side uses, so the continuation stays in the same assistant turn.
"""

from __future__ import annotations

import abc
import argparse
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from cc_tasks.errors import CCError
from cc_tasks.prefill import render_open_assistant

DECODING_MODES = ("diverse-beam", "beam", "greedy", "sample")


@dataclass(frozen=True)
class Decoding:
    """How continuations are decoded. The default is the reference's diverse beam search."""

    mode: str = "diverse-beam"
    max_new_tokens: int = 128
    num_beams: int = 2
    num_beam_groups: int = 2
    diversity_penalty: float = 0.5
    temperature: float = 0.8
    top_p: float = 0.95
    seed: int = 0  # sampling only: mixed with each batch's content (stable_seed)

    def __post_init__(self) -> None:
        if self.mode not in DECODING_MODES:
            raise ValueError(f"unknown decoding {self.mode!r}; choose one of {DECODING_MODES}")
        if self.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be >= 1")
        if self.mode == "diverse-beam" and self.num_beams % self.num_beam_groups:
            raise ValueError("num_beams must be divisible by num_beam_groups")

    def label(self) -> str:
        """Short, stable text for the dataset's ``decoding`` column and the card."""
        if self.mode == "diverse-beam":
            core = (
                f"diverse-beam(num_beams={self.num_beams},num_beam_groups={self.num_beam_groups},"
                f"diversity_penalty={self.diversity_penalty})"
            )
        elif self.mode == "beam":
            core = f"beam(num_beams={self.num_beams})"
        elif self.mode == "sample":
            core = f"sample(temperature={self.temperature},top_p={self.top_p},seed={self.seed})"
        else:
            core = "greedy"
        return f"{core},max_new_tokens={self.max_new_tokens}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Turn:
    """One generation: the user request and the start of the assistant message ("" = none)."""

    request: str
    prefix: str = ""


@dataclass
class Generation:
    """The model's text after the prefix, and how many tokens it generated."""

    text: str
    tokens: int


class BackendError(CCError, RuntimeError):
    """A backend cannot start or a request failed for good (after retries)."""


class Backend(abc.ABC):
    """Base class. Subclasses set ``kind`` and implement :meth:`generate`.

    A backend also owns its part of ``c2-syn``: the class attributes and classmethods below are
    all the CLI knows of it, so adding a backend is this one module plus one line in
    :data:`synth.backends.BACKEND_KINDS`. They run when ``c2-syn`` builds its parser, so a
    backend module imports its heavy libraries (torch, vLLM, openai) inside methods only.
    """

    kind: str = ""
    summary: str = ""  # what generates, for the ``--backend`` help ("transformers")
    options_title: str = ""  # title of its ``--help`` group (default: "<kind> backend")
    default_decoding: str = "greedy"  # when ``--decoding`` is not given
    packages: tuple[str, ...] = ("torch", "transformers")  # versions the card records
    # How many requests (5 turns each) one generate() call should get: small enough that
    # progress moves per request, large enough to keep the hardware busy. None: all at once.
    requests_per_call: int | None = None

    @classmethod  # noqa: B027 - optional hook
    def add_arguments(cls, group: argparse._ArgumentGroup) -> None:
        """Declare this backend's own flags in its ``--help`` group (none by default)."""

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> dict[str, Any]:
        """The keyword arguments of ``__init__`` (after model and decoding) from parsed flags.

        ``args`` holds every ``c2-syn generate`` flag: the shared synthesiser flags
        (``system_prompt``, ``trust_remote_code``, ...) and every backend's own.
        """
        return {"system_prompt": args.system_prompt}

    @classmethod
    def software(cls) -> dict[str, str]:
        """Versions of the packages that made the data, for the card (read from package
        metadata: nothing is imported)."""
        import importlib.metadata as md

        out = {}
        for name in ("course-correction", *cls.packages):
            try:
                out[name] = md.version(name)
            except md.PackageNotFoundError:
                out[name] = "not installed"
        return out

    def __init__(self, model: str, decoding: Decoding, system_prompt: str | None = None) -> None:
        self.model_name = model
        self.decoding = decoding
        self.system_prompt = system_prompt or None

    @abc.abstractmethod
    def generate(self, turns: Sequence[Turn]) -> list[Generation]:
        """One :class:`Generation` per turn, in order, deterministic for a deterministic decoding."""

    def describe(self) -> dict[str, Any]:
        """What made the responses (for the manifest and the card). Never secrets."""
        return {
            "backend": self.kind,
            "model": self.model_name,
            "decoding": self.decoding.label(),
            "system_prompt": self.system_prompt,
        }

    def close(self) -> None:  # noqa: B027 - optional hook
        """Free resources (threads, GPU memory)."""


def render(tokenizer: Any, turn: Turn, system_prompt: str | None) -> str:
    """The prompt text of one turn: plain generation prompt, or an open assistant turn."""
    return render_open_assistant(tokenizer, turn.request, turn.prefix, system_prompt=system_prompt)


def adds_bos(tokenizer: Any, text: str) -> bool:
    """Whether tokenising ``text`` should add special tokens.

    Chat templates usually write the BOS token themselves (Llama-2's ``<s>``);
    adding it again would give a double BOS. Only add it where the rendered text
    does not already start with it and the tokenizer would add one.
    """
    bos = getattr(tokenizer, "bos_token", None)
    return bool(bos) and not text.startswith(bos)
