"""``python -m cc_tasks`` prints the directory to pass to lm-eval's ``--include_path``."""

from __future__ import annotations

from cc_tasks import TASK_DIR


def main() -> None:
    print(TASK_DIR)


if __name__ == "__main__":
    main()
