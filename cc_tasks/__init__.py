"""course-correction: C²-EVAL as lm-evaluation-harness tasks and the core shared with C²-SYN."""

from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"

TASK_DIR = Path(__file__).resolve().parent / "c2_eval"
"""Pass this to lm-eval as ``--include_path`` (``python -m cc_tasks`` prints it)."""
