"""A randomly initialised model of a 7B shape, saved like a Hub checkpoint, for speed tests.

Training speed does not depend on the weights' values, only on the shapes, so a GPU that
cannot download Qwen2-7B-Instruct can still time the 7B recipes' DPO step: this writes a
Qwen2-7B-shaped model (28 layers, hidden 3584, MLP 18944, 28 query / 4 key-value heads) in
bf16 with the tokenizer of ``--tokenizer`` (by default the embedded SmolLM2's, whose 49,152
tokens make the embedding and LM head 3.1x smaller than Qwen2's 152,064: say so next to any
number measured with it).

    python benchmarks/make_random_model.py --out /tmp/qwen2-7b-shape [--tokenizer DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

SHAPES = {
    "qwen2-7b": {
        "model_type": "qwen2",
        "hidden_size": 3584,
        "intermediate_size": 18944,
        "num_hidden_layers": 28,
        "num_attention_heads": 28,
        "num_key_value_heads": 4,
        "max_position_embeddings": 32768,
        "rope_theta": 1000000.0,
        "rms_norm_eps": 1e-6,
        "tie_word_embeddings": False,
    },
    "tiny-qwen2": {  # the same code path in seconds, to check the script itself
        "model_type": "qwen2",
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "tie_word_embeddings": False,
    },
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="a new folder")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="qwen2-7b")
    parser.add_argument("--tokenizer", help="tokenizer folder (default: the embedded SmolLM2's)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.out.exists():
        print(f"make_random_model: error: {args.out} exists", file=sys.stderr)
        return 2
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    if args.tokenizer is None:
        from cc_tasks.embedded import embedded_model_path

        args.tokenizer = embedded_model_path()
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    shape = dict(SHAPES[args.shape])
    config = AutoConfig.for_model(
        shape.pop("model_type"),
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **shape,
    )
    torch.manual_seed(args.seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    params = sum(p.numel() for p in model.parameters())
    model.save_pretrained(args.out)
    tokenizer.save_pretrained(args.out)
    print(f"{args.shape}-shaped model, {params / 1e9:.2f}B parameters (random, bf16) -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
