"""What the ``probe`` judge reads: the chat as the model under test saw it, and pooled hidden states.

:func:`encode` builds the token ids (system turn, request, the end of the prefill, the
continuation; untrusted texts tokenised with ``split_special_tokens=True`` so a
``<|im_end|>`` inside them stays plain text); :class:`FeatureExtractor` runs the model,
cut to the deepest layer needed, and pools each layer over the continuation
(``mean``, ``tail``: the mean of its last :data:`TAIL_TOKENS` tokens, ``last``).
Feature names are ``<pooling>@<layer>`` (:func:`feature_layers`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..base import JudgeConfigError, JudgeItem

MAX_REQUEST_TOKENS = 48
MAX_PREFILL_TOKENS = 32
MAX_CONTINUATION_TOKENS = 96
TAIL_TOKENS = 8
POOLINGS = ("mean", "tail", "last")


@dataclass(frozen=True)
class Encoded:
    """Token ids of one item (context, then the continuation) and where the continuation is."""

    ids: list[int]
    cont_start: int
    cont_end: int  # exclusive, == len(ids); cont_start == cont_end for an empty continuation


def _skeleton(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The chat template's pieces before the request and between request and prefill."""
    marker_req, marker_pre = "\x00", "\x01"
    text = tokenizer.apply_chat_template(
        [
            {"role": "user", "content": marker_req},
            {"role": "assistant", "content": marker_pre},
        ],
        tokenize=False,
        continue_final_message=True,
    )
    head, rest = text.split(marker_req)
    middle = rest.split(marker_pre)[0]  # nothing follows: the assistant turn stays open

    def ids(piece: str) -> list[int]:
        return list(tokenizer(piece, add_special_tokens=False)["input_ids"]) if piece else []

    return ids(head), ids(middle)


def _plain_ids(tokenizer: Any, text: str) -> list[int]:
    """Untrusted text as tokens: special-token strings stay plain text."""
    if not text:
        return []
    return list(tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"])


def encode(
    tokenizer: Any, item: JudgeItem, skeleton: tuple[list[int], list[int]] | None = None
) -> Encoded:
    """The token ids the probe reads for ``item`` (see the module docstring)."""
    head, middle = skeleton or _skeleton(tokenizer)
    request = _plain_ids(tokenizer, item.request)[:MAX_REQUEST_TOKENS]
    prefill = _plain_ids(tokenizer, item.prefill)[-MAX_PREFILL_TOKENS:]
    continuation = _plain_ids(tokenizer, item.continuation)[:MAX_CONTINUATION_TOKENS]
    ids = head + request + middle + prefill
    start = len(ids)
    ids += continuation
    return Encoded(ids, start, len(ids))


# --------------------------------------------------------------------------- features
class FeatureExtractor:
    """The embedded model (or any causal LM folder), cut to the layers the features need."""

    def __init__(self, model_path: str, layers: Sequence[int], batch_size: int = 16) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.layers = sorted(set(int(x) for x in layers))
        self.batch_size = batch_size
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
        model.eval()
        deepest = max(self.layers)
        total = model.config.num_hidden_layers
        if deepest > total:
            raise JudgeConfigError(f"probe: layer {deepest} asked for, {model_path} has {total}")
        # hidden_states[i] is the output of block i (0 = embeddings): blocks past the deepest
        # needed layer never influence the features, so they are not run at all.
        # The final norm is removed too, so hidden_states[layer] is the raw block output
        # whatever the deepest layer is (transformers normalises the last entry).
        base = model.model
        base.layers = base.layers[:deepest]
        base.config.num_hidden_layers = deepest
        base.norm = torch.nn.Identity()
        self.base = base
        self.skeleton = _skeleton(self.tokenizer)
        self.pad_id = self.tokenizer.pad_token_id or 0

    def encode(self, item: JudgeItem) -> Encoded:
        return encode(self.tokenizer, item, self.skeleton)

    def pooled(self, items: Sequence[JudgeItem], progress: bool = False) -> dict[str, Any]:
        """``{f"{pooling}@{layer}": array (n, hidden)}`` for every pooling and layer (float32)."""
        import numpy as np
        import torch
        from tqdm.auto import tqdm

        encoded = [self.encode(item) for item in items]
        order = sorted(range(len(encoded)), key=lambda i: (len(encoded[i].ids), i))
        hidden = self.base.config.hidden_size
        out = {
            f"{p}@{layer}": np.zeros((len(items), hidden), dtype=np.float32)
            for p in POOLINGS
            for layer in self.layers
        }
        with tqdm(total=len(items), desc="judge probe", unit="item", disable=not progress) as bar:
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                width = max(len(encoded[i].ids) for i in batch)
                ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, i in enumerate(batch):
                    seq = encoded[i].ids
                    ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
                    mask[row, : len(seq)] = 1
                with torch.inference_mode():
                    states = self.base(
                        input_ids=ids,
                        attention_mask=mask,
                        output_hidden_states=True,
                        use_cache=False,
                    ).hidden_states
                for layer in self.layers:
                    h = states[layer]
                    for row, i in enumerate(batch):
                        enc = encoded[i]
                        span = h[row, enc.cont_start : enc.cont_end]
                        if enc.cont_end > enc.cont_start:
                            mean = span.mean(0)
                            tail = span[-TAIL_TOKENS:].mean(0)
                            last = span[-1]
                        else:  # empty continuation: the last prefill token stands in
                            mean = tail = last = h[row, max(enc.cont_start - 1, 0)]
                        out[f"mean@{layer}"][i] = mean.numpy()
                        out[f"tail@{layer}"][i] = tail.numpy()
                        out[f"last@{layer}"][i] = last.numpy()
                bar.update(len(batch))
        return out


def stack_features(pooled: dict[str, Any], features: Sequence[str]) -> Any:
    """The feature matrix (n, sum of widths) of ``features`` from :meth:`FeatureExtractor.pooled`."""
    import numpy as np

    return np.concatenate([np.asarray(pooled[name], dtype=np.float64) for name in features], axis=1)


def feature_layers(features: Sequence[str]) -> list[int]:
    """The layers ``features`` read (``"mean@12"`` -> 12)."""
    layers = []
    for name in features:
        pooling, _, layer = name.partition("@")
        if pooling not in POOLINGS or not layer.isdigit():
            raise JudgeConfigError(f"probe: bad feature name {name!r} (expected <pooling>@<layer>)")
        layers.append(int(layer))
    return sorted(set(layers))
