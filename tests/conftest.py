"""Shared fixtures: the embedded SmolLM2 folder, a tiny random Llama, the real C²-EVAL rows."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Nothing in the test suite may reach the Hugging Face Hub: the CI machine has no route to it.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data" / "c2_eval_pku_saferlhf_test500.jsonl"


@pytest.fixture(scope="session")
def embedded_model_dir() -> str:
    """SmolLM2-135M-Instruct as an HF folder (converted once per cache, then reused)."""
    from cc_tasks.embedded import embedded_model_path

    return embedded_model_path()


def build_tiny_model(out: Path, tokenizer_dir: str, *, chat_template: str | None = None) -> Path:
    """A randomly initialised 2-layer Llama with the SmolLM2 tokenizer and chat template."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, embedded_model_dir: str) -> str:
    """Folder of a tiny random Llama (seconds to load and run) for mechanical tests."""
    return str(build_tiny_model(tmp_path_factory.mktemp("tiny-llama"), embedded_model_dir))


@pytest.fixture(scope="session")
def c2_eval_rows_path() -> Path:
    """The 500 real C²-EVAL rows beside the checkout; skip cleanly where they are absent."""
    if not SHARED_DATA.is_file():
        pytest.skip(
            f"C²-EVAL rows not found at {SHARED_DATA} (shared/data is not beside this checkout)"
        )
    return SHARED_DATA
