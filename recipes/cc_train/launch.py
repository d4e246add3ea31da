"""``c2-train``: check a DPO recipe and its data here, then launch ``recipes/dpo.py``.

Why a launcher: ``accelerate launch`` runs the script in a child process and answers any
failed child with exit status 1 and its own ``CalledProcessError`` traceback, so the script's
one ``error:`` line and exit status 2 (bad input, nothing expensive has run) are lost.
``c2-train`` runs the script's own checks (:func:`cc_train.inputs.check_inputs`: the recipe,
its keys and values, the model name, the output folder, the dataset and its held-out split,
the tokenizer) in this process before anything spawns. Bad input: one ``error:`` line, exit
status 2. Good input: this process becomes ``accelerate launch [options] recipes/dpo.py
RECIPE [overrides]``, or ``python recipes/dpo.py RECIPE [overrides]`` when no accelerate
option is given (one process), and its exit status is that command's.

Usage (the accelerate options are ``accelerate launch``'s own, before the recipe)::

    c2-train [--check] [accelerate launch options] RECIPE.yaml [recipe overrides]
    c2-train --config_file recipes/accelerate_configs/cpu.yaml \\
        recipes/smollm2-135m-instruct/dpo/config_cpu.yaml --dataset_name runs/c2syn-smoke

``--check`` runs the checks and stops (exit 0), e.g. on each node before a multi-node run.
``python -m cc_train.launch`` is the same command.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Any

from cc_tasks.errors import CCError, exit_code, message

from .recipe import RecipeError

SCRIPT = Path(__file__).resolve().parents[1] / "dpo.py"  # recipes/dpo.py beside the package
CHECK = "--check"
USAGE = "usage: c2-train [--check] [accelerate launch options] RECIPE.yaml [recipe overrides]"


def split_argv(argv: list[str]) -> tuple[bool, list[str], list[str]]:
    """``(check only, accelerate launch options, recipe argv)``, split by accelerate's own parser.

    The recipe is the first argument that is not an accelerate option or its value (TRL's
    ``--config RECIPE`` form works too); everything from it on belongs to the recipe.
    """
    from accelerate.commands.launch import launch_command_parser

    argv = list(argv)
    if "--config" in argv:  # TRL's form: `--config RECIPE` is the recipe at that place
        argv.remove("--config")
    check_only = CHECK in argv
    if check_only:
        index = argv.index(CHECK)
        argv = argv[:index] + argv[index + 1 :]
    parser = launch_command_parser()

    def error(text: str) -> None:
        raise RecipeError(f"{text} ({USAGE})")

    parser.error = error  # type: ignore[method-assign]
    parsed = parser.parse_args(argv)
    split = len(argv) - len(parsed.training_script_args) - 1
    recipe = argv[split]
    if not recipe.endswith((".yaml", ".yml")):
        raise RecipeError(f"expected the recipe YAML, got '{recipe}' ({USAGE})")
    if check_only and CHECK in argv[split:]:
        raise RecipeError(f"{CHECK} goes before the recipe ({USAGE})")
    return check_only, argv[:split], argv[split:]


def command(launch_options: list[str], recipe_argv: list[str], script: Path = SCRIPT) -> list[str]:
    """The command that trains: accelerate with its options, else the script in one process."""
    if launch_options:
        launcher = [sys.executable, "-m", "accelerate.commands.launch", *launch_options]
        return [*launcher, str(script), *recipe_argv]
    return [sys.executable, str(script), *recipe_argv]


def check(recipe_argv: list[str]) -> Any:
    """Parse the recipe + overrides and run every check the script runs (one code path)."""
    from .inputs import check_inputs, parse_args

    if not SCRIPT.is_file():
        raise RecipeError(
            f"no training script at {SCRIPT}: c2-train runs recipes/dpo.py from a checkout of "
            "the repository (pip install -e .)"
        )
    script_args, training_args, model_args, _ = parse_args(recipe_argv)
    return check_inputs(script_args, training_args, model_args)


def main(argv: list[str] | None = None) -> int:
    """Check, then hand over to the training command; one ``error:`` line for bad input."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        text = (__doc__ or "")[(__doc__ or "").index("Usage") :] if argv else USAGE
        print(text.strip(), file=sys.stdout if argv else sys.stderr)  # -h: the usage part
        return 0 if argv else 2
    try:
        check_only, launch_options, recipe_argv = split_argv(argv)
        check(recipe_argv)
    except (CCError, OSError) as err:  # exit codes: cc_tasks.errors (2 input, 1 failed run)
        print(f"error: {message(err)}", file=sys.stderr)
        return exit_code(err)
    if check_only:
        print(f"c2-train: {recipe_argv[0]} and its inputs pass every check", file=sys.stderr)
        return 0
    cmd = command(launch_options, recipe_argv)
    print(f"c2-train: checks passed; running {shlex.join(cmd)}", file=sys.stderr, flush=True)
    sys.stdout.flush()
    os.execv(cmd[0], cmd)  # this process becomes the training run (and frees what it loaded)
    return 0  # not reached


if __name__ == "__main__":
    raise SystemExit(main())
