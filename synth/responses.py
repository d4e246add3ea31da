"""The responses folder of C²-SYN stage 1: its format, its manifest check, and reading it back.

Apart from :mod:`synth.generate` (which fills the folder) because the later stages and the
multi-process ``run`` only read it. Layout under ``<out>/responses/``:

* ``manifest.json``: everything that defines the data (source fingerprint,
  selection, seed, chunk size, synthesiser, decoding, system prompt, gate
  judge). A rerun with different settings is refused, so data made two ways
  is never mixed and nothing finished is overwritten.
* ``chunk-00000.jsonl`` ...: requests ``[c*chunk_size, (c+1)*chunk_size)`` of
  the selection, one JSON line per request, written whole or not at all.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cc_tasks.errors import CCError
from cc_tasks.files import atomic_write_text

FORMAT = "c2-syn-responses/1"
RESPONSES_DIR = "responses"
MANIFEST = "manifest.json"
CHUNK_RE = re.compile(r"^chunk-(\d{5,})\.jsonl$")
NUM_RANKS = 6  # r0 (plain reply) .. r5 (the harmful response)


class RunError(CCError, RuntimeError):
    """The output folder cannot be used as asked (conflicting settings, missing chunks...)."""


def responses_dir(out: str | os.PathLike) -> Path:
    return Path(out) / RESPONSES_DIR


def chunk_path(folder: Path, chunk: int) -> Path:
    return folder / f"chunk-{chunk:05d}.jsonl"


def num_chunks(num_requests: int, chunk_size: int) -> int:
    return (num_requests + chunk_size - 1) // chunk_size


IDENTITY_KEYS = (
    "format",
    "source_fingerprint",
    "num_requests",
    "selection",
    "seed",
    "openers",
    "chunk_size",
    "synthesizer",
    "gate",
)
# what a manifest written before a key existed meant by it
IDENTITY_DEFAULTS = {"openers": "random"}


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a.b": leaf}`` of a JSON-like value (lists as JSON text), to name what differs."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    leaf = json.dumps(value, sort_keys=True) if isinstance(value, list | tuple) else value
    return {prefix.rstrip("."): leaf}


def ensure_manifest(folder: Path, manifest: Mapping[str, Any]) -> None:
    """Write the manifest, or check that an existing one describes the same data."""
    path = folder / MANIFEST
    if not path.exists():  # created exclusively: of two first runs, one manifest wins
        tmp = folder / f".{MANIFEST}.{os.getpid()}.new"
        atomic_write_text(tmp, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        except OSError:  # a file system without hard links: plain rename (last writer wins)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    existing = read_manifest(folder)
    old = _flat({k: existing.get(k, IDENTITY_DEFAULTS.get(k)) for k in IDENTITY_KEYS})
    new = _flat({k: manifest.get(k, IDENTITY_DEFAULTS.get(k)) for k in IDENTITY_KEYS})
    diffs = [
        f"{key}: {old.get(key)!r} there, {new.get(key)!r} now"
        for key in sorted(set(old) | set(new))
        if old.get(key) != new.get(key)
    ]
    if diffs:
        raise RunError(
            f"{folder} holds responses made with other settings ({'; '.join(diffs)[:600]}); "
            "nothing was changed. Use another --out, or delete that folder to start over."
        )


def read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    if not path.is_file():
        raise RunError(f"{path}: no such file; run `c2-syn generate --out {folder.parent}` first")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise RunError(f"{path}: not valid JSON ({err})") from None


def missing_chunks(folder: Path, total: int) -> list[int]:
    return [c for c in range(total) if not chunk_path(folder, c).is_file()]


def wait_for_chunks(
    out: str | os.PathLike, total: int, *, poll_seconds: float = 10.0, timeout: float | None = None
) -> None:
    """Block until all chunks exist (rank 0 of a multi-process ``run`` waits for the others)."""
    folder = responses_dir(out)
    start = time.monotonic()
    last = None
    while missing := missing_chunks(folder, total):
        if timeout is not None and time.monotonic() - start > timeout:
            raise RunError(f"{folder}: {len(missing)} chunks still missing after {timeout:.0f}s")
        if len(missing) != last:
            print(f"waiting for {len(missing)} chunk(s) from other shards ...", flush=True)
            last = len(missing)
        time.sleep(poll_seconds)


def read_records(out: str | os.PathLike) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Manifest and all records, in selection order; refuses an incomplete or damaged run."""
    folder = responses_dir(out)
    manifest = read_manifest(folder)
    total, size, n = manifest["num_chunks"], manifest["chunk_size"], manifest["num_requests"]
    missing = missing_chunks(folder, total)
    if missing:
        shards = "" if len(missing) == total else " (chunk c belongs to shard c % num_shards)"
        shown = ", ".join(str(c) for c in missing[:20]) + (" ..." if len(missing) > 20 else "")
        raise RunError(
            f"{folder}: {len(missing)} of {total} chunks are missing: {shown}{shards}. "
            "Finish them with `c2-syn generate` (same settings) before making pairs."
        )
    stray = [
        p.name
        for p in folder.glob("chunk-*.jsonl")
        if (m := CHUNK_RE.match(p.name)) is None or int(m[1]) >= total
    ]
    if stray:
        raise RunError(f"{folder}: chunk files the manifest does not know: {', '.join(stray[:5])}")
    records: list[dict[str, Any]] = []
    for c in range(total):
        path = chunk_path(folder, c)
        lines = path.read_text(encoding="utf-8").splitlines()
        expected = list(range(c * size, min((c + 1) * size, n)))
        try:
            got = [json.loads(line) for line in lines]
        except json.JSONDecodeError as err:
            raise RunError(f"{path}: damaged ({err}); delete it and rerun generate") from None
        if [r.get("position") for r in got] != expected:
            raise RunError(
                f"{path}: holds requests {[r.get('position') for r in got][:5]}..., expected "
                f"{expected[:5]}...; delete it and rerun generate"
            )
        records.extend(got)
    return manifest, records
