"""The DPO script's inputs, parsed and checked: ONE code path for ``recipes/dpo.py`` and the
``c2-train`` launcher, so every input problem is one ``error:`` line and exit code 2 before
any model weights load, whether the script runs alone or under ``accelerate launch``.

:class:`ScriptArguments` are the data options (TRL keeps its own ``ScriptArguments`` in the
library too); :func:`make_parser` is TRL's ``TrlParser`` over them, ``DPOConfig`` and
``ModelConfig``; :func:`parse_args` reads a recipe + command-line overrides;
:func:`check_inputs` runs every check, cheapest first, and returns what training needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from synth.dataset import (
    DatasetError,
    heldout_requests,
    load_c2syn,
    request_text,
    training_splits,
)

from .batches import select_whole_requests
from .compat import check_versions
from .recipe import (
    BaseModel,
    RecipeError,
    check_output_dir,
    load_tokenizer,
    normalize_argv,
    one_line_errors,
    parse_recipe,
    recipe_path,
    resolve_model,
    resume_value,
    shown_recipe,
)
from .shared_options import unsupported_options

NO_HOLDOUT = 0  # test_size 0: hold out nothing and train without evaluation


@dataclass
class ScriptArguments:
    """Where the C²-SYN preference pairs come from and how they are cut."""

    dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "C²-SYN: a Hub dataset id, a local folder written by `c2-syn` (Hub layout: "
            "data/train-*.parquet), a `save_to_disk` folder, or one .parquet/.jsonl/.json file."
        },
    )
    dataset_config: str | None = field(
        default=None, metadata={"help": "Dataset configuration name (load_dataset's `name`)."}
    )
    dataset_revision: str | None = field(
        default=None, metadata={"help": "Hub dataset only: branch, tag or commit to load."}
    )
    dataset_train_split: str = field(default="train", metadata={"help": "Split to train on."})
    dataset_test_split: str = field(
        default="test", metadata={"help": "Split to evaluate on (when eval_strategy is not 'no')."}
    )
    max_train_samples: int | None = field(
        default=None,
        metadata={"help": "Train on at most this many pairs (a seeded shuffle, then the first N)."},
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Evaluate on at most this many pairs."}
    )
    test_size: float | None = field(
        default=None,
        metadata={
            "help": "Hold out REQUESTS (never single pairs) of the train split as the test split: "
            "a share (0 < x < 1; the same requests `c2-syn pairs --test-size x` holds out) or a "
            "count (>= 1) of distinct request texts, chosen by a stable hash of the text; 0 holds "
            "out nothing and turns evaluation during training off."
        },
    )
    keep_columns: list[str] = field(
        default_factory=list,
        metadata={
            "help": "Pair metadata columns to keep next to prompt/chosen/rejected (e.g. "
            "chat_template_kwargs, which DPOTrainer reads). Default: drop all metadata."
        },
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Allow writing into an output_dir that already holds a model."},
    )
    group_by_request: bool = field(
        default=False,
        metadata={
            "help": "Shared-response DPO (cc_train.shared_dpo): batches hold whole requests and each "
            "unique response is forwarded once; DPO's loss and metrics over the same pairs. "
            "per_device_*_batch_size then count requests; max_train_samples and max_eval_samples "
            "cut whole requests."
        },
    )
    adapter_fp32: bool = field(
        default=True,
        metadata={
            "help": "QLoRA (load_in_4bit/8bit): keep the LoRA adapter in float32. TRL casts it to bf16 "
            "and the optimizer keeps no fp32 master copy, so Adam steps below bf16 resolution "
            "are lost (cc_train.adapters). false = TRL's bf16 adapter."
        },
    )
    correction_sft_weight: float = field(
        default=0.0,
        metadata={
            "help": "With group_by_request: add this weight x the NLL of each chosen response's "
            "tokens after the beginning it shares with the rejected one (C²-SYN with shared "
            "openers: the trigger and the correction; r0's pairs share none and add nothing), "
            "TRL's 'sft' loss on those tokens. 0 = DPO alone."
        },
    )


def make_parser(prog: str | None = None) -> Any:
    """TRL's TrlParser over (script args, DPOConfig, ModelConfig), as in trl/scripts/dpo.py."""
    from trl import DPOConfig, ModelConfig, TrlParser

    return one_line_errors(TrlParser((ScriptArguments, DPOConfig, ModelConfig), prog=prog))


def parse_args(argv: list[str]) -> tuple[ScriptArguments, Any, Any, str | None]:
    """(script args, DPOConfig, ModelConfig, the recipe as a model card shows it) of ``argv``."""
    argv = normalize_argv(list(argv))
    script_args, training_args, model_args = parse_recipe(make_parser(), argv)
    recipe = recipe_path(argv)
    return script_args, training_args, model_args, recipe and shown_recipe(recipe)


@dataclass
class CheckedInputs:
    """What training needs once every check has passed."""

    base: BaseModel
    train: Any
    test: Any
    tokenizer: Any
    notes: list[str] = field(default_factory=list)  # lines to print (what a check decided)


def _heldout_problem(dataset: Any, script_args: ScriptArguments) -> str | None:
    """The held-out split's own error for this data (e.g. nothing left to train on), if any."""
    split = script_args.dataset_train_split
    if script_args.test_size is None or split not in dataset:
        return None
    if "prompt" not in dataset[split].column_names:
        return None  # not a held-out problem: the pairs themselves are wrong
    try:
        heldout_requests((request_text(p) for p in dataset[split]["prompt"]), script_args.test_size)
    except DatasetError as err:
        return str(err)
    return None


def check_inputs(
    script_args: ScriptArguments, training_args: Any, model_args: Any
) -> CheckedInputs:
    """Every check before the model loads, cheapest first; raises :class:`RecipeError` (or
    ``synth.dataset.DatasetError``), both one line. Updates the configs in place where a
    value is resolved (``embedded`` -> its folder, ``resume_from_checkpoint``, test_size 0)."""
    notes: list[str] = []
    base = resolve_model(model_args.model_name_or_path)
    model_args.model_name_or_path = base.path
    training_args.resume_from_checkpoint = resume_value(training_args.resume_from_checkpoint)
    check_output_dir(
        training_args.output_dir,
        overwrite=script_args.overwrite_output_dir,
        resume=training_args.resume_from_checkpoint,
    )
    whole = script_args.group_by_request  # shared responses: say now what they cannot serve
    if script_args.correction_sft_weight and not whole:
        raise RecipeError("correction_sft_weight needs group_by_request: true")
    if script_args.correction_sft_weight < 0:
        raise RecipeError("correction_sft_weight must be >= 0")
    check_versions(shared=whole)  # the shared trainer overrides private TRL internals
    if whole and (problems := unsupported_options(training_args)):
        raise RecipeError(f"group_by_request does not support {'; '.join(problems)}")
    if script_args.test_size is not None and script_args.test_size == NO_HOLDOUT:
        notes.append(_no_holdout(training_args))
        script_args = replace(script_args, test_size=None)
    dataset = load_c2syn(
        script_args.dataset_name or "",
        revision=script_args.dataset_revision,
        name=script_args.dataset_config,
        file_split=script_args.dataset_train_split,
    )
    try:
        train, test, conversational = training_splits(
            dataset,
            replace(script_args, max_train_samples=None, max_eval_samples=None)
            if whole
            else script_args,
            want_eval=training_args.eval_strategy != "no",
            seed=training_args.seed,
        )
    except DatasetError as err:  # a held-out split that cannot work: say the way out
        if str(err) != _heldout_problem(dataset, script_args):
            raise
        raise RecipeError(
            f"{err}; to train on every request without a held-out evaluation, pass --test_size 0"
        ) from None
    if whole and script_args.max_train_samples is not None:  # a pair cut would share nothing
        train = select_whole_requests(train, script_args.max_train_samples, training_args.seed)
    if whole and test is not None and script_args.max_eval_samples is not None:
        test = select_whole_requests(test, script_args.max_eval_samples, training_args.seed)
    tokenizer = load_tokenizer(model_args, training_args, conversational=conversational)
    return CheckedInputs(base, train, test, tokenizer, notes)


def _no_holdout(training_args: Any) -> str:
    """``test_size: 0``: no held-out requests, so no evaluation during training."""
    from transformers.trainer_utils import IntervalStrategy

    if training_args.load_best_model_at_end:
        raise RecipeError(
            "test_size 0 holds out nothing, but load_best_model_at_end needs an evaluation"
        )
    if training_args.eval_strategy == IntervalStrategy.NO:
        return "test_size 0: no held-out requests"
    training_args.eval_strategy = IntervalStrategy.NO
    training_args.do_eval = False
    return "test_size 0: no held-out requests, so no evaluation during training (eval_strategy: no)"


__all__ = [
    "NO_HOLDOUT",
    "CheckedInputs",
    "ScriptArguments",
    "check_inputs",
    "make_parser",
    "parse_args",
]
