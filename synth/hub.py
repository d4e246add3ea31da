"""Stage 3-4 of C²-SYN: the Hugging Face Hub folder (parquet + the card of
:mod:`synth.dataset_card`) and the upload.

Layout written by :func:`write_hub_folder` inside ``<out>`` (named, and read
back, by :mod:`synth.dataset`)::

    README.md                                  dataset card, YAML header first
    data/train-00000-of-0000N.parquet ...      TRL conversational preference pairs
    data/test-00000-of-0000M.parquet ...       only with a held-out split

The pushed repo id loads with ``load_dataset("<repo id>")`` through the card's
``configs`` block; a local folder loads with :func:`synth.dataset.load_c2syn`
(or the card's ``load_dataset("parquet", data_files=...)`` snippet), never
``load_dataset("<folder>")``, which datasets caches under the folder's name. The
working folders ``responses/`` and ``pairs/`` beside them are never uploaded.
:func:`push` uploads the files of :func:`upload_plan` and nothing else, with the
token that huggingface_hub itself finds (``HF_TOKEN`` or ``hf auth login``); the
token is never printed or written.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

from cc_tasks.errors import EXIT_FAILED, CCError, message
from cc_tasks.files import atomic_write_text

from .dataset import CARD, DATA_DIR, shard_name
from .dataset_card import render_card
from .pairs import SCHEMA, write_parquet

ROWS_PER_FILE = 100_000


class PushError(CCError, RuntimeError):
    """The folder cannot be pushed as asked (missing files, no token, bad repo id): exit 2."""


class PushFailed(PushError):
    """The upload itself failed (no network, the Hub refused or broke off): exit 1, retry later."""

    exit_code = EXIT_FAILED


def write_hub_folder(
    out: str | os.PathLike,
    tables: Mapping[str, pa.Table],
    manifest: Mapping[str, Any],
    stats: Mapping[str, Any],
    *,
    rows_per_file: int = ROWS_PER_FILE,
    repo_id: str | None = None,
) -> dict[str, list[str]]:
    """Write ``data/*.parquet`` (replacing the old data folder whole) and ``README.md``."""
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".data.", dir=root))
    staging.chmod(0o755)  # mkdtemp makes it private; a dataset folder is not
    split_files: dict[str, list[str]] = {}
    split_bytes: dict[str, int] = {}
    try:
        for split, table in tables.items():
            if table.schema != SCHEMA:
                table = table.cast(SCHEMA)
            n_files = (table.num_rows + rows_per_file - 1) // rows_per_file
            split_files[split] = [shard_name(split, i, n_files) for i in range(n_files)]
            split_bytes[split] = table.nbytes
            for i, name in enumerate(split_files[split]):
                part = table.slice(i * rows_per_file, rows_per_file)
                write_parquet(staging / Path(name).name, part)
        target = root / DATA_DIR
        old = None
        if target.exists():
            old = root / f".data.old.{os.getpid()}"
            os.replace(target, old)
        os.replace(staging, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    card = render_card(manifest, stats, split_files, repo_id, split_bytes)
    atomic_write_text(root / CARD, card)
    return split_files


def upload_plan(out: str | os.PathLike) -> list[str]:
    """Exactly the files a push uploads: README.md and data/*.parquet (sorted)."""
    root = Path(out)
    if not (root / CARD).is_file():
        raise PushError(f"{root / CARD}: no dataset card; run `c2-syn card --out {out}` first")
    data = sorted(p.relative_to(root).as_posix() for p in (root / DATA_DIR).glob("*.parquet"))
    if not data:
        raise PushError(f"{root / DATA_DIR}: no parquet files; run `c2-syn card --out {out}` first")
    return [CARD, *data]


def push(
    out: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    dry_run: bool = False,
    commit_message: str | None = None,
    api: Any = None,
    echo: Any = print,
) -> list[str]:
    """Upload the Hub folder to the dataset repo ``repo_id``; returns the uploaded paths."""
    from huggingface_hub import HfApi, get_token
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise PushError(f"--repo-id {repo_id!r}: {err}") from None
    if "/" not in repo_id:
        raise PushError(f"--repo-id {repo_id!r}: expected ORG/NAME (or USER/NAME)")
    files = upload_plan(out)
    token = get_token()  # HF_TOKEN, else the `hf auth login` cache; never printed
    root = Path(out)
    if dry_run:
        echo(f"dry run: would create dataset repo {repo_id} (private={private}) and upload:")
        for f in files:
            echo(f"  {f}  ({(root / f).stat().st_size:,} bytes)")
        echo(
            "token: "
            + (
                "found (HF_TOKEN or the login cache)"
                if token
                else "NOT found: set HF_TOKEN or run `hf auth login` before a real push"
            )
        )
        return files
    if not token:
        raise PushError(
            "no Hugging Face token: set HF_TOKEN or run `hf auth login` (nothing was uploaded)"
        )
    api = api or HfApi(token=token)
    try:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        api.upload_folder(
            repo_id=repo_id,
            folder_path=str(root),
            repo_type="dataset",
            allow_patterns=files,
            delete_patterns=[f"{DATA_DIR}/*.parquet"],  # stale shards would be read as data
            commit_message=commit_message
            or f"C²-SYN: {len(files) - 1} data files and the dataset card",
        )
    except _network_errors() as err:
        raise _push_error(err, repo_id) from None
    echo(f"pushed {len(files)} files to https://huggingface.co/datasets/{repo_id}")
    return files


def _network_errors() -> tuple[type[BaseException], ...]:
    """What huggingface_hub raises when the Hub cannot be reached or refuses a request."""
    import huggingface_hub.utils as hub_utils

    errors: list[type[BaseException]] = [hub_utils.HfHubHTTPError, OSError]
    transport = getattr(hub_utils, "httpx", None)  # the HTTP client it uses (not an OSError)
    if transport is not None and isinstance(getattr(transport, "HTTPError", None), type):
        errors.append(transport.HTTPError)
    return tuple(errors)


def _push_error(err: BaseException, repo_id: str) -> PushError:
    """One line for a failed upload: a refused token is configuration (2), the rest runtime (1)."""
    status = getattr(getattr(err, "response", None), "status_code", None)
    reason = message(err)[:200]
    if status in (401, 403):
        return PushError(
            f"the Hub refused the token for dataset repo {repo_id} (HTTP {status}): check "
            "HF_TOKEN / `hf auth login` and its write access; nothing was uploaded"
        )
    return PushFailed(
        f"push to dataset repo {repo_id} failed ({type(err).__name__}: {reason}); "
        "check the network and rerun `c2-syn push` (it uploads the same files again)"
    )
