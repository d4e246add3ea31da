"""``python -m cc_tasks`` prints the directory to pass to lm-eval's ``--include_path`` (both task
folders, C²-EVAL and over-refusal, lie below it)."""

from __future__ import annotations

from cc_tasks import INCLUDE_PATH


def main() -> None:
    print(INCLUDE_PATH)


if __name__ == "__main__":
    main()
