"""synth.dataset: the one reader of the C²-SYN Hub layout and the held-out split by request.

Regression: datasets 5.x caches a README-configured folder under its
*name*, so `load_dataset("b/x")` returned `a/x`'s rows. Every way this project loads a folder
(load_c2syn, the recipe, the card's own snippet) must give exactly that folder's rows, even
when the two folders share one datasets cache.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_synth_pairs_hub import records

from synth.dataset import (
    DatasetError,
    fingerprint,
    heldout_requests,
    layout_files,
    load_c2syn,
    request_text,
    split_of,
    training_splits,
)
from synth.hub import write_hub_folder
from synth.pairs import build_pairs


@pytest.fixture
def shared_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """One datasets cache for every load in the test, as on a machine that ran the project."""
    import datasets

    cache = tmp_path / "hf-datasets-cache"
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    monkeypatch.setenv("HF_DATASETS_CACHE", str(cache))
    return cache


def hub_folder(folder: Path, n: int, test_size: float = 0.0) -> dict[str, list[dict]]:
    """A real C²-SYN folder (synth.hub writes it) with n requests; returns the rows per split."""
    manifest, recs = records(n)
    splits, stats = build_pairs(manifest, recs, test_size=test_size)
    from synth.pairs import to_table

    write_hub_folder(folder, {k: to_table(v) for k, v in splits.items()}, manifest, stats)
    return splits


def plain_folder(folder: Path, values: list[str]) -> Path:
    """The smallest folder that showed the mix-up: a README `configs:` block and one parquet file."""
    from datasets import Dataset

    (folder / "data").mkdir(parents=True)
    Dataset.from_list([{"v": v} for v in values]).to_parquet(
        str(folder / "data" / "train-00000-of-00001.parquet")
    )
    (folder / "README.md").write_text(
        "---\nconfigs:\n- config_name: default\n  data_files:\n"
        "  - split: train\n    path: data/train-*\n---\n"
    )
    return folder


def test_same_named_folders_load_their_own_rows(tmp_path: Path, shared_cache: Path) -> None:
    a = plain_folder(tmp_path / "a" / "x", ["a0", "a1"])
    b = plain_folder(tmp_path / "b" / "x", ["b0", "b1", "b2"])
    assert load_c2syn(a)["train"]["v"] == ["a0", "a1"]
    assert load_c2syn(b)["train"]["v"] == ["b0", "b1", "b2"]
    # a folder rewritten in place (a rerun of c2-syn) loads its new rows, not the cached ones
    (a / "data" / "train-00000-of-00001.parquet").unlink()
    plain_folder(tmp_path / "a2", ["new"])
    (tmp_path / "a2" / "data" / "train-00000-of-00001.parquet").rename(
        a / "data" / "train-00000-of-00001.parquet"
    )
    assert load_c2syn(a)["train"]["v"] == ["new"]
    assert any(shared_cache.iterdir())  # the loads really went through the shared cache


def test_card_snippet_loads_exactly_its_folder(tmp_path: Path, shared_cache: Path) -> None:
    """The snippet in README.md, run as written (folder filled in), loads the folder's rows."""
    first = hub_folder(tmp_path / "a" / "c2syn", 2)
    second = hub_folder(tmp_path / "b" / "c2syn", 4, test_size=0.5)
    for folder, splits in ((tmp_path / "a" / "c2syn", first), (tmp_path / "b" / "c2syn", second)):
        card = (folder / "README.md").read_text()
        (code,) = re.findall(r"```python\n(.*?)```", card, flags=re.S)
        assert 'load_dataset("path/to/this/folder")' not in code
        namespace: dict = {}
        exec(code.replace("path/to/this/folder", str(folder)), namespace)
        loaded = namespace["ds"]
        assert {k: loaded[k].to_list() for k in loaded} == {k: v for k, v in splits.items() if v}
        ours = load_c2syn(folder)
        assert {k: ours[k].to_list() for k in ours} == {k: v for k, v in splits.items() if v}


def test_card_snippet_with_a_repo_id_is_the_hub_form(tmp_path: Path) -> None:
    manifest, recs = records(2)
    splits, stats = build_pairs(manifest, recs)
    from synth.pairs import to_table

    tables = {k: to_table(v) for k, v in splits.items()}
    write_hub_folder(tmp_path, tables, manifest, stats, repo_id="org/c2-syn")
    assert 'ds = load_dataset("org/c2-syn")' in (tmp_path / "README.md").read_text()


def test_layout_and_fingerprint(tmp_path: Path) -> None:
    hub_folder(tmp_path / "x", 3, test_size=0.5)
    files = layout_files(tmp_path / "x")
    assert next(iter(files)) == "train" and all(
        Path(f).is_absolute() for fs in files.values() for f in fs
    )
    (tmp_path / "x" / "data" / "notes.parquet").write_text("not ours")  # not the writer's naming
    assert layout_files(tmp_path / "x") == files
    same = fingerprint(tmp_path / "x")
    assert len(same) == 64 and same == fingerprint(tmp_path / "x")
    hub_folder(tmp_path / "y", 4, test_size=0.5)
    assert fingerprint(tmp_path / "y") != same


def test_local_input_errors_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "pairs.txt").write_text("x")
    with pytest.raises(DatasetError, match=r"unsupported file type '\.txt'"):
        load_c2syn(tmp_path / "pairs.txt")
    with pytest.raises(DatasetError, match="no such file or folder"):
        load_c2syn(tmp_path / "missing" / "c2syn")


# ------------------------------------------------------------------ held-out split by request


def test_writer_and_reader_hold_out_the_same_requests(tmp_path: Path) -> None:
    """`c2-syn pairs --test-size 0.3` and the recipe's `test_size: 0.3` on the same requests
    (train only) hold out the same request texts: one algorithm, one owner."""
    manifest, recs = records(40)
    splits, _ = build_pairs(manifest, recs, test_size=0.3)
    written = {request_text(p["prompt"]) for p in splits["test"]}
    assert 0 < len(written) < 40
    everything = [request_text(p["prompt"]) for rows in splits.values() for p in rows]
    assert heldout_requests(everything, 0.3) == written

    hub_folder(tmp_path / "all", 40)  # train only: the recipe holds out by itself

    class Args:
        dataset_name = str(tmp_path / "all")
        dataset_train_split, dataset_test_split = "train", "test"
        test_size, keep_columns = 0.3, []
        max_train_samples = max_eval_samples = None

    train, test, conversational = training_splits(
        load_c2syn(tmp_path / "all"), Args(), want_eval=True, seed=0
    )
    assert conversational and {request_text(p) for p in test["prompt"]} == written
    assert not {request_text(p) for p in train["prompt"]} & written
    assert len(test) == 15 * len(written)


def test_split_is_a_function_of_the_text_alone() -> None:
    texts = [f"How do I do thing {i}?" for i in range(200)]
    held = heldout_requests(texts, 0.25)
    assert held == {t for t in texts if split_of(t, 0.25) == "test"}
    # a subset of the requests keeps each request on its side (no re-ranking)
    assert heldout_requests(texts[:100], 0.25) == held & set(texts[:100])
    # repeats of a text (PKU-SafeRLHF repeats requests) stay together; order does not matter
    assert heldout_requests(texts + texts[:50], 0.25) == held
    assert heldout_requests(list(reversed(texts)), 0.25) == held
    # a count takes the first n by the same hash: the smallest sets a share would give
    three = heldout_requests(texts, 3)
    assert len(three) == 3 and three <= held
    # a seed gives another split
    assert heldout_requests(texts, 0.25, seed=1) != held


def test_split_errors() -> None:
    with pytest.raises(DatasetError, match="nothing left to train on"):
        heldout_requests(["a", "b"], 5)
    with pytest.raises(DatasetError, match="holds out none of the 1 requests"):
        heldout_requests(["only one"], 0.01)
    with pytest.raises(DatasetError, match="must be > 0"):
        heldout_requests(["a", "b"], 0)


def test_request_text_of_a_chat_prompt() -> None:
    chat = [{"role": "system", "content": "Be safe."}, {"role": "user", "content": "How?"}]
    assert request_text(chat) == "How?" and request_text("How?") == "How?"
