"""``python -m cc_tasks.judges.gold.build candidates|items|merge [options]`` (see the package)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

STEPS = {
    "candidates": "make_candidates",
    "items": "build_items",
    "merge": "merge_labels",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run one build step with the remaining arguments."""
    import importlib

    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in STEPS:
        print(f"usage: python -m cc_tasks.judges.gold.build {{{'|'.join(STEPS)}}} [options]")
        return 0 if args and args[0] in ("-h", "--help") else 2
    module = importlib.import_module(f"{__package__}.{STEPS[args[0]]}")
    step: Callable[[list[str]], int] = module.main
    return step(args[1:])


if __name__ == "__main__":
    raise SystemExit(main())
