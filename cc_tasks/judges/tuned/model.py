"""The ``tuned`` judge's network: the embedded model, LoRA on its top blocks, a linear head.

Split in two so training is affordable on a CPU: :class:`Bottom` runs the first
``split`` blocks once per item (frozen; its token states can be stored), :class:`Top`
runs the remaining blocks with LoRA adapters (peft) and the final norm, pools the
continuation's tokens (their mean and the last one: under causal attention the last
token has read everything before it, so it sees *order*, which a mean alone does not —
"a warning, then more help") and maps them to one logit. The judge runs both; training
runs ``Bottom`` once and trains ``Top`` for several epochs on the stored states.

What it reads is the probe's encoding (:func:`cc_tasks.judges.probe.features.encode`):
the chat as the model under test saw it, bounded lengths, untrusted text tokenised with
``split_special_tokens=True``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..base import JudgeConfigError
from ..probe.features import Encoded, _skeleton, encode

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class TunedConfig:
    """Everything that shapes the network (stored beside the weights)."""

    split: int = 24  # blocks below run frozen; blocks from here on carry LoRA
    rank: int = 8
    alpha: int = 16
    threshold: float = 0.5
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, indent=1) + "\n"

    @classmethod
    def load(cls, path: str | Path) -> TunedConfig:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            return cls(**data)
        except OSError as err:
            raise JudgeConfigError(f"tuned: cannot read {path}: {err.strerror}") from None
        except (TypeError, ValueError) as err:
            raise JudgeConfigError(f"tuned: {path} is not a tuned-judge config ({err})") from None


def _load_lm(model_path: str) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    model.eval()
    return model.model  # the decoder without the LM head


class Bottom:
    """Blocks ``[0, split)`` of the model, frozen: token states at the split, per item."""

    def __init__(self, model_path: str, split: int, batch_size: int = 16) -> None:
        import torch
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        base = _load_lm(model_path)
        total = base.config.num_hidden_layers
        if not 0 < split < total:
            raise JudgeConfigError(f"tuned: split {split} outside 1..{total - 1} for {model_path}")
        base.layers = base.layers[:split]
        base.config.num_hidden_layers = split
        base.norm = torch.nn.Identity()  # raw block output at the split
        for p in base.parameters():
            p.requires_grad_(False)
        self.base = base
        self.batch_size = batch_size
        self.skeleton = _skeleton(self.tokenizer)
        self.pad_id = self.tokenizer.pad_token_id or 0

    def encode(self, item: Any) -> Encoded:
        return encode(self.tokenizer, item, self.skeleton)

    def states(self, encoded: Sequence[Encoded], progress: bool = False) -> list[Any]:
        """Token states (len, hidden) at the split for every encoded item (float32 tensors)."""
        import torch
        from tqdm.auto import tqdm

        order = sorted(range(len(encoded)), key=lambda i: (len(encoded[i].ids), i))
        out: list[Any] = [None] * len(encoded)
        with tqdm(total=len(order), desc="judge tuned", unit="item", disable=not progress) as bar:
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                ids, mask = pad([encoded[i].ids for i in batch], self.pad_id)
                with torch.inference_mode():
                    h = self.base(input_ids=ids, attention_mask=mask, use_cache=False)
                for row, i in enumerate(batch):
                    out[i] = h.last_hidden_state[row, : len(encoded[i].ids)].clone()
                bar.update(len(batch))
        return out


def pad(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[Any, Any]:
    """Right-padded ids and attention mask (causal attention: padding never reaches a token)."""
    import torch

    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, seq in enumerate(seqs):
        ids[row, : len(seq)] = torch.tensor(list(seq), dtype=torch.long)
        mask[row, : len(seq)] = 1
    return ids, mask


class Top:
    """Blocks ``[split, end)`` with LoRA, the final norm and the head: one logit per item."""

    def __init__(self, model_path: str, config: TunedConfig, seed: int = 0) -> None:
        import torch
        from peft import LoraConfig, inject_adapter_in_model

        base = _load_lm(model_path)
        total = base.config.num_hidden_layers
        base.layers = base.layers[config.split :]
        base.config.num_hidden_layers = total - config.split
        base.embed_tokens = None  # fed with states, never with ids
        for p in base.parameters():
            p.requires_grad_(False)
        torch.manual_seed(seed)
        lora = LoraConfig(
            r=config.rank,
            lora_alpha=config.alpha,
            lora_dropout=0.0,
            target_modules=list(LORA_TARGETS),
        )
        self.base = inject_adapter_in_model(lora, base)
        hidden = base.config.hidden_size
        self.head = torch.nn.Linear(2 * hidden, 1)
        torch.nn.init.zeros_(self.head.weight)
        torch.nn.init.zeros_(self.head.bias)
        self.config = config

    def parameters(self) -> list[Any]:
        return [p for p in self.base.parameters() if p.requires_grad] + list(self.head.parameters())

    def train(self, mode: bool = True) -> None:
        self.base.train(mode)
        self.head.train(mode)

    def logits(self, states: Sequence[Any], spans: Sequence[tuple[int, int]]) -> Any:
        """One logit per item from its stored states and its continuation span (start, end)."""
        import torch

        width = max(s.shape[0] for s in states)
        hidden = states[0].shape[1]
        x = torch.zeros((len(states), width, hidden), dtype=torch.float32)
        mask = torch.zeros((len(states), width), dtype=torch.long)
        for row, s in enumerate(states):
            x[row, : s.shape[0]] = s.float()
            mask[row, : s.shape[0]] = 1
        h = self.base(inputs_embeds=x, attention_mask=mask, use_cache=False).last_hidden_state
        pooled = []
        for row, (start, end) in enumerate(spans):
            span = h[row, start:end] if end > start else h[row, max(start - 1, 0) : start]
            pooled.append(torch.cat([span.mean(0), span[-1]]))
        return self.head(torch.stack(pooled)).squeeze(-1)

    def state_dict(self) -> dict[str, Any]:
        from peft import get_peft_model_state_dict

        weights = {f"lora.{k}": v for k, v in get_peft_model_state_dict(self.base).items()}
        weights.update({f"head.{k}": v for k, v in self.head.state_dict().items()})
        return {k: v.detach().contiguous() for k, v in weights.items()}

    def load_state_dict(self, weights: dict[str, Any]) -> None:
        from peft import set_peft_model_state_dict

        lora = {k[5:]: v for k, v in weights.items() if k.startswith("lora.")}
        head = {k[5:]: v for k, v in weights.items() if k.startswith("head.")}
        result = set_peft_model_state_dict(self.base, lora)
        unexpected = getattr(result, "unexpected_keys", [])
        if not lora or not head or unexpected:
            raise JudgeConfigError("tuned: the weights file does not match this network")
        self.head.load_state_dict(head)
