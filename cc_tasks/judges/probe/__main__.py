"""``python -m cc_tasks.judges.probe train|cv``: the probe's training CLI (:mod:`.train`)."""

from .train import main

if __name__ == "__main__":
    raise SystemExit(main())
