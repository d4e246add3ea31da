"""``python -m cc_tasks.judges.tuned train|cv``: the tuned judge's training CLI (:mod:`.train`)."""

from .train import main

if __name__ == "__main__":
    raise SystemExit(main())
