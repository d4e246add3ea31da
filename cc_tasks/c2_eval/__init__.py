"""The C²-EVAL lm-eval task folder (YAML configs, README): hooks in :mod:`.utils`, the task
class in :mod:`.task`, run options and docs in :mod:`.docs`.

Pass this folder to lm-eval as ``--include_path`` (``python -m cc_tasks`` prints it).
"""
