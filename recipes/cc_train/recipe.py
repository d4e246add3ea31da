"""The DPO recipe's checks: every input problem is one line, found before model weights load.

``recipes/dpo.py`` stays shaped like TRL's ``trl/scripts/dpo.py`` (a parser and a
``main``); what it needs beyond TRL lives here:

* :func:`parse_recipe`: TRL's ``TrlParser`` with one-line errors, and a check of
  every recipe key and command-line option (a misspelt key names the file, the key
  and the closest real option) before TRL builds its configs;
* :func:`resolve_model`: ``model_name_or_path: embedded`` -> the local
  SmolLM2-135M-Instruct folder, and the Hub id a model card should name;
* :func:`check_output_dir` (never overwrite a trained model silently) and
  :func:`load_tokenizer` (a chat model needs a chat template), both seconds.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cc_tasks.errors import UsageError

EMBEDDED = "embedded"  # model_name_or_path value: cc_tasks.embedded.embedded_model_path()
SAVED_MODEL_FILES = ("adapter_config.json", "config.json", "model.safetensors")
HUB_MODEL_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class RecipeError(UsageError):
    """A problem with the recipe or its inputs, reported as one line before the model loads."""


# ---------------------------------------------------------------- parsing


def one_line_errors(parser: Any) -> Any:
    """Make an (Hf/Trl) argument parser raise :class:`RecipeError` instead of printing usage."""

    def error(message: str) -> None:
        raise RecipeError(message)

    parser.error = error
    return parser


def normalize_argv(argv: list[str]) -> list[str]:
    """``dpo.py recipe.yaml ...`` -> ``dpo.py --config recipe.yaml ...`` (TrlParser's form)."""
    if argv and not argv[0].startswith("-") and argv[0].endswith((".yaml", ".yml")):
        return ["--config", argv[0], *argv[1:]]
    return argv


def recipe_path(argv: list[str]) -> Path | None:
    """The recipe YAML named by ``--config`` (after :func:`normalize_argv`), if any."""
    if "--config" not in argv:
        return None
    index = argv.index("--config")
    if index + 1 >= len(argv):
        raise RecipeError("--config needs a recipe YAML path")
    return Path(argv[index + 1])


def _closest(word: str, known: set[str]) -> str:
    close = difflib.get_close_matches(word, sorted(known), n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


def check_recipe_keys(parser: Any, path: Path) -> None:
    """Unknown or misspelt recipe keys -> one line naming file and key (TRL would raise later)."""
    import yaml

    if not path.is_file():
        raise RecipeError(f"recipe {path}: no such file")
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise RecipeError(f"recipe {path}: not valid YAML ({' '.join(str(err).split())})") from None
    if not isinstance(config, dict):
        raise RecipeError(f"recipe {path}: must be a YAML mapping of option: value")
    known = {action.dest for action in parser._actions} | {"env"}
    for key in config:
        if key not in known:
            raise RecipeError(
                f"recipe {path}: unknown key '{key}' (not a DPOConfig, ModelConfig or data "
                f"option){_closest(str(key), known)}"
            )


def check_cli_options(parser: Any, argv: list[str]) -> None:
    """Unknown ``--options`` -> one line (HfArgumentParser reports them only after building
    the configs, so another check's message could hide the misspelling)."""
    known = {opt for action in parser._actions for opt in action.option_strings} | {"--config"}
    for token in argv:
        option = token.split("=", 1)[0]
        if option.startswith("--") and option not in known:
            raise RecipeError(f"unknown option '{option}'{_closest(option, known)}")


def parse_recipe(parser: Any, argv: list[str]) -> tuple[Any, ...]:
    """The recipe + command-line overrides, parsed by ``parser`` into its dataclasses."""
    # TRL 1.16 sets `gradient_checkpointing`, which transformers 5.2x renamed: noise, not advice
    warnings.filterwarnings(
        "ignore", message=r"`(is_)?gradient_checkpointing` is deprecated", category=FutureWarning
    )
    argv = normalize_argv(argv)
    check_cli_options(parser, argv)
    path = recipe_path(argv)
    if path is not None:
        check_recipe_keys(parser, path)
    try:
        return tuple(parser.parse_args_and_config(argv))
    except RecipeError:
        raise
    except (ValueError, TypeError) as err:  # dataclass __post_init__ checks, unused CLI args
        raise RecipeError(" ".join(str(err).split())) from None


# ---------------------------------------------------------------- the model and the output


@dataclass(frozen=True)
class BaseModel:
    """The model to train: where it loads from, and its Hub id for the model card (or None)."""

    path: str
    hub_id: str | None


def hub_id_of(name_or_path: str) -> str | None:
    """The Hub id a model card should name for ``name_or_path``.

    A Hub id is itself; the embedded SmolLM2 folder (its completion marker from
    :mod:`cc_tasks.embedded`, or ``$C2_EMBEDDED_MODEL``) is its Hub model; another
    local folder names one when its ``config.json`` records a Hub ``_name_or_path``.
    """
    from cc_tasks import embedded

    path = Path(name_or_path).expanduser()
    if not path.exists():
        return name_or_path if HUB_MODEL_ID.match(name_or_path) else None
    override = os.environ.get(embedded.MODEL_ENV)
    if (path / embedded.COMPLETE_MARK).is_file() and path.name.startswith(embedded.MODEL_NAME):
        return embedded.HUB_ID
    if override and path.resolve() == Path(override).expanduser().resolve():
        return embedded.HUB_ID
    try:
        recorded = json.loads((path / "config.json").read_text(encoding="utf-8"))["_name_or_path"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    ok = isinstance(recorded, str) and HUB_MODEL_ID.match(recorded) and not Path(recorded).exists()
    return recorded if ok else None


def resolve_model(name: str | None) -> BaseModel:
    """``embedded`` -> the SmolLM2 folder on this machine; anything else is passed through."""
    if not name:
        raise RecipeError("no model: set model_name_or_path in the recipe or --model_name_or_path")
    if name == EMBEDDED:
        from cc_tasks.embedded import HUB_ID, EmbeddedModelError, embedded_model_path

        try:
            return BaseModel(embedded_model_path(), HUB_ID)
        except EmbeddedModelError as err:
            raise RecipeError(str(err)) from None
    return BaseModel(name, hub_id_of(name))


def resume_value(value: Any) -> Any:
    """``--resume_from_checkpoint true`` arrives as a string; True means the last checkpoint."""
    return True if str(value).lower() in ("true", "1", "yes") else value


def shown_recipe(path: Path) -> str:
    """The recipe as a model card shows it: relative to this checkout when inside it."""
    root = Path(__file__).resolve().parents[2]  # recipes/cc_train/recipe.py -> the checkout
    resolved = path.resolve()
    return str(resolved.relative_to(root)) if resolved.is_relative_to(root) else path.name


def check_output_dir(output_dir: str | None, *, overwrite: bool, resume: Any) -> None:
    """Never overwrite a trained model silently (transformers 5 has no overwrite_output_dir)."""
    if output_dir is None:
        raise RecipeError("no output_dir: set output_dir in the recipe or --output_dir")
    out = Path(output_dir)
    if not out.is_dir() or overwrite or resume:
        return
    found = [f for f in SAVED_MODEL_FILES if (out / f).exists()]
    found += sorted(p.name for p in out.glob("checkpoint-*"))[:1]
    if found:
        raise RecipeError(
            f"output_dir {out} already holds a model ({found[0]}); choose another --output_dir, "
            "continue with --resume_from_checkpoint true, or pass --overwrite_output_dir true"
        )


def resolve_report_to(report_to: list[str]) -> tuple[list[str], str | None]:
    """The recipes' ``report_to: auto``: TensorBoard where it is installed, else no tracker.

    Any other value (``tensorboard``, ``wandb``, ``none``...) is transformers' own and passes
    through. Returns the trackers and, for ``auto``, a line saying what it chose.
    """
    if "auto" not in report_to:
        return report_to, None
    from transformers.integrations import is_tensorboard_available

    rest = [r for r in report_to if r != "auto"]
    if is_tensorboard_available():
        return [*rest, *(["tensorboard"] if "tensorboard" not in rest else [])], (
            "report_to: auto -> tensorboard"
        )
    return rest, (
        "report_to: auto -> no tracker (pip install tensorboard to log training curves; "
        "--report_to wandb for Weights & Biases)"
    )


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".strip()


def load_tokenizer(model_args: Any, training_args: Any, *, conversational: bool) -> Any:
    """Load only the tokenizer (seconds) and check it can render the chats."""
    from transformers import AutoTokenizer

    name = model_args.model_name_or_path
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            name,
            revision=model_args.model_revision,
            trust_remote_code=training_args.trust_remote_code,
        )
    except Exception as err:
        raise RecipeError(f"model {name}: cannot load its tokenizer ({_first_line(err)})") from None
    if conversational and not getattr(tokenizer, "chat_template", None):
        raise RecipeError(
            f"model {name}: the tokenizer has no chat template, but C²-SYN pairs are chats; "
            "use a chat/instruct model or save a chat_template into its tokenizer_config.json"
        )
    return tokenizer


__all__ = [
    "EMBEDDED",
    "BaseModel",
    "RecipeError",
    "check_output_dir",
    "hub_id_of",
    "load_tokenizer",
    "normalize_argv",
    "one_line_errors",
    "parse_recipe",
    "recipe_path",
    "resolve_model",
    "resolve_report_to",
    "resume_value",
    "shown_recipe",
]
