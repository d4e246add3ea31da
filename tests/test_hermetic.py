"""Each test session has its own caches and no Hub (the test side of hermetic runs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import SESSION_ENV


def session_root() -> Path:
    root = Path(os.environ[SESSION_ENV])
    assert root.is_dir() and root.name.startswith("cc-tests-")
    return root


def test_caches_point_into_this_session_in_process() -> None:
    import datasets
    import huggingface_hub.constants as hub

    from cc_tasks.paths import cache_dir

    root = session_root()
    assert Path(datasets.config.HF_DATASETS_CACHE).is_relative_to(root)
    assert Path(hub.HF_HUB_CACHE).is_relative_to(root)
    assert cache_dir().is_relative_to(root)
    assert hub.HF_HUB_OFFLINE and datasets.config.HF_HUB_OFFLINE


def test_caches_point_into_this_session_in_subprocesses() -> None:
    code = (
        "import json, datasets, huggingface_hub.constants as hub\n"
        "from cc_tasks.paths import cache_dir\n"
        "print(json.dumps([str(datasets.config.HF_DATASETS_CACHE), str(hub.HF_HUB_CACHE),"
        " str(cache_dir()), hub.HF_HUB_OFFLINE]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    *folders, offline = json.loads(out.stdout)
    root = session_root()
    assert all(Path(f).is_relative_to(root) for f in folders), folders
    assert offline is True


def test_the_embedded_model_is_served_from_the_session_cache(embedded_model_dir: str) -> None:
    from cc_tasks import embedded

    if os.environ.get(embedded.MODEL_ENV):
        assert embedded_model_dir == os.environ[embedded.MODEL_ENV]
        return
    assert Path(embedded_model_dir).is_relative_to(session_root())
    assert (Path(embedded_model_dir) / embedded.COMPLETE_MARK).is_file()
