"""The C²-EVAL lm-eval task folder (YAML configs, README) and its hooks in :mod:`.utils`.

Pass this folder to lm-eval as ``--include_path`` (``python -m cc_tasks`` prints it).
"""
