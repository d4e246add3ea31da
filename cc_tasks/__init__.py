"""course-correction: C²-EVAL as lm-evaluation-harness tasks and the core shared with C²-SYN."""

from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"

INCLUDE_PATH = Path(__file__).resolve().parent
"""Pass this to lm-eval as ``--include_path`` (``python -m cc_tasks`` prints it): lm-eval
searches it recursively, so it finds every task folder below (and no other YAML lives here)."""
TASK_DIR = INCLUDE_PATH / "c2_eval"
"""The C²-EVAL task folder."""
OVERREFUSAL_DIR = INCLUDE_PATH / "c2_overrefusal"
"""The over-refusal task folder (method section 2.9)."""
