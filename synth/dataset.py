"""The one reader of the C²-SYN Hub layout, and the held-out split by request.

:mod:`synth.hub` writes the layout; this module names it and reads it back::

    README.md                              dataset card (YAML header with ``configs``)
    data/<split>-00000-of-0000N.parquet    TRL conversational preference pairs

:func:`load_c2syn` loads exactly the rows of a folder: it passes the folder's
parquet files to ``datasets`` explicitly. ``load_dataset("<folder>")`` would
go through the card's ``configs`` block, and datasets 5.x caches such a folder
under its *name* only, so a second folder called ``c2syn`` (or a regenerated
one) silently loads the first one's rows. A Hub id is loaded through the Hub
(with ``revision``), where the repo id is the cache key.

The held-out split is by *request text*, never by pair, and is one function of
the text (:func:`split_of`): ``c2-syn pairs --test-size`` (the writer) and the
DPO recipe's ``test_size`` (the reader) hold out the same requests.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from cc_tasks.errors import UsageError, message
from cc_tasks.seeding import stable_seed

DATA_DIR = "data"
CARD = "README.md"
PAIR_COLUMNS = ("prompt", "chosen", "rejected")
SPLIT_TAG = "c2-syn-split"  # stable_seed namespace of the held-out split (data made with it exists)
SHARD_RE = re.compile(r"^(?P<split>\w+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.parquet$")
LOCAL_SUFFIXES = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv"}
HUB_ID_RE = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


class DatasetError(UsageError):
    """The preference data cannot be used as asked: one line naming the dataset and the field."""


# ---------------------------------------------------------------- layout


def shard_name(split: str, index: int, count: int) -> str:
    """``data/<split>-<index>-of-<count>.parquet``: the Hub's own parquet naming."""
    return f"{DATA_DIR}/{split}-{index:05d}-of-{count:05d}.parquet"


def split_pattern(split: str) -> str:
    """The card's ``configs`` pattern of one split (relative to the folder)."""
    return f"{DATA_DIR}/{split}-*"


def layout_files(folder: str | os.PathLike) -> dict[str, list[str]]:
    """``{split: [absolute parquet paths, in shard order]}`` of a folder in the Hub layout."""
    found: dict[str, list[str]] = {}
    data = Path(folder).expanduser().resolve() / DATA_DIR
    for path in sorted(data.glob("*.parquet")):
        match = SHARD_RE.match(path.name)
        if match:
            found.setdefault(match["split"], []).append(str(path))
    train_first = sorted(found, key=lambda split: (split != "train", split))
    return {split: found[split] for split in train_first}


def fingerprint(folder: str | os.PathLike) -> str:
    """SHA-256 over the folder's data files (names and bytes): which exact rows were used."""
    digest = hashlib.sha256()
    for split, paths in layout_files(folder).items():
        for path in paths:
            digest.update(f"{split}/{Path(path).name}\n".encode())
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


# ---------------------------------------------------------------- loading


def _reason(err: BaseException) -> str:
    """``Type: message`` of a loader's error, one line (datasets' messages can run long)."""
    return f"{type(err).__name__}: {message(err)[:300]}"


def load_c2syn(
    source: str | os.PathLike,
    *,
    revision: str | None = None,
    name: str | None = None,
    file_split: str = "train",
) -> Any:
    """A ``DatasetDict`` of exactly the rows ``source`` holds.

    ``source``: a folder written by ``c2-syn`` (Hub layout), a ``save_to_disk``
    folder, one ``.parquet``/``.jsonl``/``.json``/``.csv`` file (loaded as the
    ``file_split`` split), or a Hub dataset id (``revision``: branch, tag or
    commit; ``name``: its configuration). Raises :class:`DatasetError`.
    """
    from datasets import DatasetDict, load_dataset, load_from_disk

    text = str(source)
    if not text:
        raise DatasetError(
            "no dataset: set dataset_name in the recipe or --dataset_name (a folder written by "
            "`c2-syn run ... --out DIR`, a file, or a Hub id)"
        )
    path = Path(text).expanduser()
    try:
        if path.is_file():
            builder = LOCAL_SUFFIXES.get(path.suffix)
            if builder is None:
                raise DatasetError(
                    f"dataset {text}: unsupported file type '{path.suffix}' "
                    f"(use {', '.join(LOCAL_SUFFIXES)} or a folder written by `c2-syn`)"
                )
            return load_dataset(builder, data_files={file_split: str(path.resolve())})
        if path.is_dir():
            if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
                loaded = load_from_disk(str(path))
                return (
                    loaded if isinstance(loaded, DatasetDict) else DatasetDict({file_split: loaded})
                )
            files = layout_files(path)
            if not files or name is not None:  # not our layout: let datasets read the folder
                return load_dataset(str(path), name=name)
            return load_dataset("parquet", data_files=files)
    except DatasetError:
        raise
    except Exception as err:
        raise DatasetError(
            f"dataset {text}: cannot load this local folder/file ({_reason(err)})"
        ) from None
    if not HUB_ID_RE.match(text):
        raise DatasetError(
            f"dataset {text}: no such file or folder (pass a folder written by `c2-syn`, "
            "a .parquet/.jsonl file, or a Hub id)"
        )
    try:
        return load_dataset(text, name=name, revision=revision)
    except Exception as err:
        raise DatasetError(
            f"dataset {text}: not a local folder/file, and the Hub could not load it "
            f"({_reason(err)}); pass a folder written by `c2-syn`, e.g. --dataset_name ./c2-syn"
        ) from None


def loading_snippet(repo_id: str | None, splits: Iterable[str]) -> list[str]:
    """Python lines that load exactly this dataset: the Hub id, or the folder's own files."""
    if repo_id:
        return ["from datasets import load_dataset", f'ds = load_dataset("{repo_id}")']
    files = ", ".join(f'"{s}": f"{{folder}}/{DATA_DIR}/{s}-*.parquet"' for s in splits)
    return [
        "from datasets import load_dataset",
        'folder = "path/to/this/folder"',
        f'ds = load_dataset("parquet", data_files={{{files}}})',
    ]


# ---------------------------------------------------------------- held-out split by request


def request_text(prompt: Any) -> str:
    """The request a pair belongs to: the prompt text, or its user messages' text."""
    if isinstance(prompt, str):
        return prompt
    users = [
        m.get("content", "") for m in prompt if isinstance(m, Mapping) and m.get("role") == "user"
    ]
    return "\n".join(users) if users else json.dumps(prompt, sort_keys=True)


def _rank(text: str, seed: int | None) -> int:
    return stable_seed(SPLIT_TAG, text, seed)


def split_of(text: str, test_size: float, seed: int | None = None) -> str:
    """``"test"`` for a stable ``test_size`` share of request texts, else ``"train"``.

    A pure function of the text and the seed: a request (and any repeat of its
    text under another ``request_id``) lands on the same side whatever else is
    in the data, so growing or cutting a dataset never moves a request across.
    """
    if test_size <= 0:
        return "train"
    return "test" if _rank(text, seed) / 2**64 < test_size else "train"


def heldout_requests(texts: Iterable[str], test_size: float, seed: int | None = None) -> set[str]:
    """The held-out request texts: a share (``0 < x < 1``, by :func:`split_of`) or a count.

    A count ``n >= 1`` takes the ``n`` texts that rank first by the same hash, so
    the held-out set for a count is the smallest one a share would give.
    """
    unique = set(texts)
    if test_size <= 0:
        raise DatasetError(f"test_size must be > 0, got {test_size:g}")
    if test_size < 1:
        held = {t for t in unique if split_of(t, test_size, seed) == "test"}
        if not held:
            raise DatasetError(
                f"test_size={test_size:g} holds out none of the {len(unique)} requests (each is "
                "held out by a stable hash of its text); raise it, or give a count such as 1"
            )
    else:
        held = set(sorted(unique, key=lambda t: (_rank(t, seed), t))[: int(test_size)])
    if len(held) >= len(unique):
        raise DatasetError(
            f"test_size={test_size:g} holds out {len(held)} of {len(unique)} requests: nothing "
            "left to train on"
        )
    return held


# ---------------------------------------------------------------- checks and cuts for training


class SplitOptions(Protocol):
    """What :func:`training_splits` reads (the DPO recipe's script arguments have these)."""

    dataset_name: str | None
    dataset_train_split: str
    dataset_test_split: str
    test_size: float | None
    keep_columns: list[str]
    max_train_samples: int | None
    max_eval_samples: int | None


def check_pairs(dataset: Any, where: str) -> bool:
    """prompt/chosen/rejected present and of one format; returns True if conversational."""
    missing = [c for c in PAIR_COLUMNS if c not in dataset.column_names]
    if missing:
        raise DatasetError(
            f"{where}: missing column(s) {', '.join(map(repr, missing))}; DPO needs "
            f"prompt/chosen/rejected (has: {', '.join(dataset.column_names) or 'none'})"
        )
    if len(dataset) == 0:
        raise DatasetError(f"{where}: no rows")
    row = dataset[0]

    def kind(value: Any) -> str:
        if isinstance(value, list) and value and isinstance(value[0], dict):
            return "conversational"
        return "text" if isinstance(value, str) else type(value).__name__

    kinds = {c: kind(row[c]) for c in PAIR_COLUMNS}
    if len(set(kinds.values())) != 1 or kinds["prompt"] not in ("conversational", "text"):
        raise DatasetError(
            f"{where}: row 1: prompt/chosen/rejected must all be message lists "
            f"([{{'role': ..., 'content': ...}}]) or all strings, got {kinds}"
        )
    return kinds["prompt"] == "conversational"


def _cut(dataset: Any, limit: int | None, seed: int, columns: Sequence[str]) -> Any:
    if limit is not None and len(dataset) > limit:
        dataset = dataset.shuffle(seed=seed).select(range(limit))
    return dataset.select_columns(list(columns))


def training_splits(
    dataset: Any, args: SplitOptions, *, want_eval: bool, seed: int
) -> tuple[Any, Any, bool]:
    """(train, eval or None, conversational): checked, split by request, cut, metadata dropped."""
    name = args.dataset_name
    if args.dataset_train_split not in dataset:
        raise DatasetError(
            f"dataset {name}: no split '{args.dataset_train_split}' (has: {', '.join(dataset)})"
        )
    train = dataset[args.dataset_train_split]
    conversational = check_pairs(train, f"dataset {name} (split {args.dataset_train_split})")
    test = None
    if args.test_size is not None:
        keys = [request_text(p) for p in train["prompt"]]
        held = heldout_requests(keys, args.test_size)
        test = train.select([i for i, key in enumerate(keys) if key in held])
        train = train.select([i for i, key in enumerate(keys) if key not in held])
    elif want_eval and args.dataset_test_split in dataset:
        test = dataset[args.dataset_test_split]
        check_pairs(test, f"dataset {name} (split {args.dataset_test_split})")
        shared = {request_text(p) for p in train["prompt"]} & {
            request_text(p) for p in test["prompt"]
        }
        if shared:
            raise DatasetError(
                f"dataset {name}: {len(shared)} request(s) are in both "
                f"'{args.dataset_train_split}' and '{args.dataset_test_split}' (e.g. "
                f"{sorted(shared)[0][:80]!r}); a held-out split must be split by request"
            )
    if want_eval and test is None:
        raise DatasetError(
            f"eval_strategy is not 'no' but dataset {name} has no split "
            f"'{args.dataset_test_split}': set test_size to hold out requests, or eval_strategy: no"
        )
    missing = [c for c in args.keep_columns if c not in train.column_names]
    if missing:
        raise DatasetError(
            f"keep_columns: dataset {name} has no column(s) {', '.join(map(repr, missing))}"
        )
    columns = [*PAIR_COLUMNS, *(c for c in args.keep_columns if c not in PAIR_COLUMNS)]
    train = _cut(train, args.max_train_samples, seed, columns)
    if test is None or not want_eval:
        return train, None, conversational
    return train, _cut(test, args.max_eval_samples, seed, columns), conversational


__all__ = [
    "CARD",
    "DATA_DIR",
    "PAIR_COLUMNS",
    "DatasetError",
    "check_pairs",
    "fingerprint",
    "heldout_requests",
    "layout_files",
    "load_c2syn",
    "loading_snippet",
    "request_text",
    "shard_name",
    "split_of",
    "split_pattern",
    "training_splits",
]
