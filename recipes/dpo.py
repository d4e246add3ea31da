"""DPO on C²-SYN with TRL: the training half of Course-Correction (SPEC section 4).

Shaped like TRL's ``trl/scripts/dpo.py``: one ``TrlParser`` over ``DPOConfig``,
``ModelConfig`` and :class:`C2DataArguments`; TRL's ``DPOTrainer`` as is; LoRA and
QLoRA through ``ModelConfig`` (``use_peft``, ``lora_*``, ``load_in_4bit``) and peft.
Bad input (unknown recipe key, missing dataset, no prompt/chosen/rejected columns,
a chat model without a chat template, an output folder that already holds a model)
stops with one ``error:`` line BEFORE any model weights are loaded.

Usage: a recipe YAML, given first (positional) or with ``--config`` (TRL's own
form); any recipe value can be overridden on the command line::

    # CPU smoke run on the embedded SmolLM2 (minutes; dataset = a folder written by `c2-syn`)
    accelerate launch --config_file recipes/accelerate_configs/cpu.yaml recipes/dpo.py \\
        recipes/smollm2-135m-instruct/dpo/config_cpu.yaml --dataset_name runs/c2syn-smoke

    # one GPU, LoRA (Llama-2-7B-Chat); `python recipes/dpo.py ...` works the same on one GPU
    accelerate launch --num_processes 1 recipes/dpo.py recipes/llama2-7b-chat/dpo/config_lora.yaml

    # 8 GPUs, full fine-tuning with DeepSpeed ZeRO-3 (pip install -e '.[deepspeed]')
    accelerate launch --config_file recipes/accelerate_configs/zero3.yaml recipes/dpo.py \\
        --config recipes/qwen2-7b-instruct/dpo/config_full.yaml --dataset_name ./c2-syn

    # overrides: e.g. a two-step check that holds out 10% of the requests for evaluation
    python recipes/dpo.py recipes/smollm2-135m-instruct/dpo/config_cpu.yaml \\
        --dataset_name runs/c2syn-smoke --max_steps 2 --test_size 0.1 --output_dir /tmp/dpo-check

``model_name_or_path: embedded`` means the embedded SmolLM2-135M-Instruct folder
(``python -m cc_tasks.embedded``), whose path differs per machine. At the end the
script prints the command that scores the result with C²-EVAL.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shlex
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PAIR_COLUMNS = ("prompt", "chosen", "rejected")
EMBEDDED = "embedded"  # model_name_or_path value that means cc_tasks.embedded.embedded_model_path()
SPLIT_TAG = "c2-syn-heldout"  # stable_seed namespace of the held-out split by request
LOCAL_SUFFIXES = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv"}
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
SAVED_MODEL_FILES = ("adapter_config.json", "config.json", "model.safetensors")


class RecipeError(ValueError):
    """A problem with the recipe or its inputs, reported as one line before the model loads."""


@dataclass
class C2DataArguments:
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
            "help": "Hold out REQUESTS (never single pairs) of the train split as the test split: a "
            "share (0 < x < 1) or a count (>= 1) of distinct request texts, chosen by a stable hash."
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


# ---------------------------------------------------------------- parsing


def make_parser(prog: str | None = None) -> Any:
    """TRL's TrlParser over (data args, DPOConfig, ModelConfig), as in trl/scripts/dpo.py."""
    from trl import DPOConfig, ModelConfig, TrlParser

    parser = TrlParser((C2DataArguments, DPOConfig, ModelConfig), prog=prog)

    def error(message: str) -> None:  # one line, not argparse's multi-page usage
        raise RecipeError(message)

    parser.error = error  # type: ignore[method-assign]
    return parser


def normalize_argv(argv: list[str]) -> list[str]:
    """``dpo.py recipe.yaml ...`` -> ``dpo.py --config recipe.yaml ...`` (TrlParser's form)."""
    if argv and not argv[0].startswith("-") and argv[0].endswith((".yaml", ".yml")):
        return ["--config", argv[0], *argv[1:]]
    return argv


def check_recipe_keys(parser: Any, argv: list[str]) -> None:
    """Unknown or misspelt recipe keys -> one line naming file and key (TRL would raise later)."""
    if "--config" not in argv:
        return
    index = argv.index("--config")
    if index + 1 >= len(argv):
        raise RecipeError("--config needs a recipe YAML path")
    path = Path(argv[index + 1])
    if not path.is_file():
        raise RecipeError(f"recipe {path}: no such file")
    import yaml

    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise RecipeError(f"recipe {path}: not valid YAML ({' '.join(str(err).split())})") from None
    if not isinstance(config, dict):
        raise RecipeError(f"recipe {path}: must be a YAML mapping of option: value")
    known = {action.dest for action in parser._actions} | {"env"}
    for key in config:
        if key not in known:
            close = difflib.get_close_matches(str(key), sorted(known), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise RecipeError(
                f"recipe {path}: unknown key '{key}' (not a DPOConfig, ModelConfig or data "
                f"option){hint}"
            )


def check_cli_options(parser: Any, argv: list[str]) -> None:
    """Unknown ``--options`` -> one line (HfArgumentParser reports them only after building
    the configs, so another check's message could hide the misspelling)."""
    known = {opt for action in parser._actions for opt in action.option_strings} | {"--config"}
    for token in argv:
        option = token.split("=", 1)[0]
        if option.startswith("--") and option not in known:
            close = difflib.get_close_matches(option, sorted(known), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise RecipeError(f"unknown option '{option}'{hint}")


def parse_args(argv: list[str] | None = None) -> tuple[Any, Any, Any]:
    """Parse the recipe + overrides into (data args, DPOConfig, ModelConfig)."""
    # TRL 1.16 sets `gradient_checkpointing`, which transformers 5.2x renamed: noise, not advice
    warnings.filterwarnings(
        "ignore", message=r"`(is_)?gradient_checkpointing` is deprecated", category=FutureWarning
    )
    argv = normalize_argv(list(sys.argv[1:] if argv is None else argv))
    parser = make_parser()
    check_cli_options(parser, argv)
    check_recipe_keys(parser, argv)
    try:
        data_args, training_args, model_args = parser.parse_args_and_config(argv)
    except RecipeError:
        raise
    except (ValueError, TypeError) as err:  # dataclass __post_init__ checks, unused CLI args
        raise RecipeError(" ".join(str(err).split())) from None
    return data_args, training_args, model_args


# ---------------------------------------------------------------- inputs (all before the model)


def resolve_model(name: str | None) -> str:
    """``embedded`` -> the SmolLM2 folder on this machine; anything else is passed through."""
    if not name:
        raise RecipeError("no model: set model_name_or_path in the recipe or --model_name_or_path")
    if name == EMBEDDED:
        from cc_tasks.embedded import EmbeddedModelError, embedded_model_path

        try:
            return embedded_model_path()
        except EmbeddedModelError as err:
            raise RecipeError(str(err)) from None
    return name


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".strip()


def hub_layout_files(folder: Path) -> dict[str, str]:
    """``{split: "data/<split>-*.parquet"}`` of a folder in the Hub layout that c2-syn writes.

    Passing them explicitly matters: datasets 5.2 caches a folder configured by its README
    under the folder's *name* only, so a regenerated folder (or another folder of the same
    name) would silently load the old rows; explicit data files put their mtimes in the key.
    """
    return {
        split: f"data/{split}-*.parquet"
        for split in sorted({f.name.split("-", 1)[0] for f in (folder / "data").glob("*.parquet")})
    }


def load_pairs(args: C2DataArguments) -> Any:
    """Load C²-SYN as a DatasetDict from a local folder/file or the Hub, with a clear error."""
    from datasets import DatasetDict, load_dataset, load_from_disk

    name = args.dataset_name
    if not name:
        raise RecipeError(
            "no dataset: set dataset_name in the recipe or --dataset_name (a folder written by "
            "`c2-syn run ... --out DIR`, or a Hub id)"
        )
    path = Path(name).expanduser()
    try:
        if path.is_file():
            builder = LOCAL_SUFFIXES.get(path.suffix)
            if builder is None:
                raise RecipeError(
                    f"dataset {name}: unsupported file type '{path.suffix}' "
                    f"(use {', '.join(LOCAL_SUFFIXES)} or a folder written by `c2-syn`)"
                )
            return load_dataset(builder, data_files={args.dataset_train_split: str(path)})
        if path.is_dir():
            if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
                loaded = load_from_disk(str(path))
                if not isinstance(loaded, DatasetDict):
                    loaded = DatasetDict({args.dataset_train_split: loaded})
                return loaded
            files = hub_layout_files(path)
            if files and args.dataset_config is None:
                return load_dataset(str(path), data_files=files)
            return load_dataset(str(path), name=args.dataset_config)
    except RecipeError:
        raise
    except Exception as err:
        raise RecipeError(
            f"dataset {name}: cannot load this local folder/file ({_first_line(err)})"
        ) from None
    if not HUB_ID.match(name):
        raise RecipeError(
            f"dataset {name}: no such file or folder (pass a folder written by `c2-syn`, "
            "a .parquet/.jsonl file, or a Hub id)"
        )
    try:
        return load_dataset(name, name=args.dataset_config)
    except Exception as err:
        raise RecipeError(
            f"dataset {name}: not a local folder/file, and the Hub could not load it "
            f"({_first_line(err)}); pass a folder written by `c2-syn`, e.g. --dataset_name ./c2-syn"
        ) from None


def _check_pairs(dataset: Any, where: str) -> bool:
    """prompt/chosen/rejected present and of one format; returns True if conversational."""
    missing = [c for c in PAIR_COLUMNS if c not in dataset.column_names]
    if missing:
        raise RecipeError(
            f"{where}: missing column(s) {', '.join(map(repr, missing))}; DPO needs "
            f"prompt/chosen/rejected (has: {', '.join(dataset.column_names) or 'none'})"
        )
    if len(dataset) == 0:
        raise RecipeError(f"{where}: no rows")
    row = dataset[0]
    kinds = {
        c: "conversational"
        if isinstance(row[c], list) and row[c] and isinstance(row[c][0], dict)
        else "text"
        if isinstance(row[c], str)
        else type(row[c]).__name__
        for c in PAIR_COLUMNS
    }
    if len(set(kinds.values())) != 1 or next(iter(kinds.values())) not in (
        "conversational",
        "text",
    ):
        raise RecipeError(
            f"{where}: row 1: prompt/chosen/rejected must all be message lists "
            f"([{{'role': ..., 'content': ...}}]) or all strings, got {kinds}"
        )
    return kinds["prompt"] == "conversational"


def request_key(prompt: Any) -> str:
    """The request a pair belongs to: its prompt text (a message list is JSON-encoded)."""
    return prompt if isinstance(prompt, str) else json.dumps(prompt, sort_keys=True)


def heldout_requests(keys: list[str], test_size: float) -> set[str]:
    """The held-out requests: distinct request texts ranked by a stable hash, the first share.

    Splitting by request (never by pair) keeps all pairs of a request together. The key is
    the request text, not ``request_id``: PKU-SafeRLHF repeats requests with other responses,
    which c2-syn gives distinct ids, and a held-out request must not be trained on under
    another id (c2-syn's own ``--test-size`` splits by request text too).
    """
    from cc_tasks.prefill import stable_seed

    unique = sorted(set(keys), key=lambda key: (stable_seed(SPLIT_TAG, key), key))
    count = round(test_size * len(unique)) if test_size < 1 else int(test_size)
    count = max(1, count)
    if count >= len(unique):
        raise RecipeError(
            f"test_size={test_size:g} holds out {count} of {len(unique)} requests: nothing left "
            "to train on"
        )
    return set(unique[:count])


def prepare_splits(
    dataset: Any, args: C2DataArguments, *, want_eval: bool, seed: int
) -> tuple[Any, Any, bool]:
    """(train, eval or None, conversational): split by request, cut, drop metadata."""
    name = args.dataset_name
    if args.dataset_train_split not in dataset:
        raise RecipeError(
            f"dataset {name}: no split '{args.dataset_train_split}' (has: {', '.join(dataset)})"
        )
    train = dataset[args.dataset_train_split]
    conversational = _check_pairs(train, f"dataset {name} (split {args.dataset_train_split})")
    test = None
    if args.test_size is not None:
        if args.test_size <= 0:
            raise RecipeError(f"test_size must be > 0, got {args.test_size:g}")
        keys = [request_key(prompt) for prompt in train["prompt"]]
        held = heldout_requests(keys, args.test_size)
        test = train.select([i for i, key in enumerate(keys) if key in held])
        train = train.select([i for i, key in enumerate(keys) if key not in held])
    elif want_eval and args.dataset_test_split in dataset:
        test = dataset[args.dataset_test_split]
        _check_pairs(test, f"dataset {name} (split {args.dataset_test_split})")
        train_keys = {request_key(p) for p in train["prompt"]}
        shared = train_keys & {request_key(p) for p in test["prompt"]}
        if shared:
            raise RecipeError(
                f"dataset {name}: {len(shared)} request(s) are in both "
                f"'{args.dataset_train_split}' and '{args.dataset_test_split}' (e.g. "
                f"{sorted(shared)[0][:80]!r}); a held-out split must be split by request"
            )
    if want_eval and test is None:
        raise RecipeError(
            f"eval_strategy is not 'no' but dataset {name} has no split "
            f"'{args.dataset_test_split}': set test_size to hold out requests, or eval_strategy: no"
        )
    missing = [c for c in args.keep_columns if c not in train.column_names]
    if missing:
        raise RecipeError(
            f"keep_columns: dataset {name} has no column(s) {', '.join(map(repr, missing))}"
        )
    columns = [*PAIR_COLUMNS, *(c for c in args.keep_columns if c not in PAIR_COLUMNS)]
    if args.max_train_samples is not None and len(train) > args.max_train_samples:
        train = train.shuffle(seed=seed).select(range(args.max_train_samples))
    train = train.select_columns(columns)
    if test is not None:
        if args.max_eval_samples is not None and len(test) > args.max_eval_samples:
            test = test.shuffle(seed=seed).select(range(args.max_eval_samples))
        test = test.select_columns(columns)
    return train, (test if want_eval else None), conversational


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


def check_output_dir(training_args: Any, data_args: C2DataArguments) -> None:
    """Never overwrite a trained model silently (transformers 5 has no overwrite_output_dir)."""
    out = Path(training_args.output_dir)
    if not out.is_dir() or data_args.overwrite_output_dir or training_args.resume_from_checkpoint:
        return
    found = [f for f in SAVED_MODEL_FILES if (out / f).exists()]
    found += sorted(p.name for p in out.glob("checkpoint-*"))[:1]
    if found:
        raise RecipeError(
            f"output_dir {out} already holds a model ({found[0]}); choose another --output_dir, "
            "continue with --resume_from_checkpoint true, or pass --overwrite_output_dir true"
        )


def eval_commands(base: str, output_dir: str, *, adapter: bool) -> list[str]:
    """The C²-EVAL commands (plain lm_eval and the c2-eval wrapper) for the trained result."""
    model_args = f"pretrained={base},peft={output_dir}" if adapter else f"pretrained={output_dir}"
    quoted = shlex.quote(model_args)
    return [
        f"lm_eval --model hf --model_args {quoted} --tasks c2_eval "
        "--include_path $(python -m cc_tasks) --apply_chat_template",
        f"c2-eval --model hf --model_args {quoted}",
    ]


def _is_local_main() -> bool:
    return os.environ.get("LOCAL_RANK", "0") == "0"


# ---------------------------------------------------------------- main


def main(script_args: C2DataArguments, training_args: Any, model_args: Any) -> str:
    """Check every input, then train with DPOTrainer, save, push if asked; returns output_dir."""
    from trl import DPOTrainer, get_peft_config, get_quantization_config

    # 1. everything that can be wrong with the inputs, cheapest first, before the model loads
    model_args.model_name_or_path = resolve_model(model_args.model_name_or_path)
    if training_args.output_dir is None:
        raise RecipeError("no output_dir: set output_dir in the recipe or --output_dir")
    check_output_dir(training_args, script_args)
    if str(training_args.resume_from_checkpoint).lower() in ("true", "1", "yes"):
        training_args.resume_from_checkpoint = True  # the CLI gives a string; True = last ckpt
    dataset = load_pairs(script_args)
    train, test, conversational = prepare_splits(
        dataset,
        script_args,
        want_eval=training_args.eval_strategy != "no",
        seed=training_args.seed,
    )
    tokenizer = load_tokenizer(model_args, training_args, conversational=conversational)
    peft_config = get_peft_config(model_args)

    # 2. the model: loaded by DPOTrainer from the name, as in trl/scripts/dpo.py
    model_init_kwargs = dict(
        revision=model_args.model_revision,
        trust_remote_code=training_args.trust_remote_code,
        attn_implementation=model_args.attn_implementation,
        dtype=model_args.dtype,
    )
    model_init_kwargs.update(training_args.model_init_kwargs or {})
    training_args.model_init_kwargs = model_init_kwargs
    trainer = DPOTrainer(
        model=model_args.model_name_or_path,
        args=training_args,
        train_dataset=train,
        eval_dataset=test,
        processing_class=tokenizer,
        quantization_config=get_quantization_config(model_args),
        peft_config=peft_config,
    )
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)

    # 3. save model or adapter + tokenizer; push with TRL/transformers' own push_to_hub
    trainer.save_model(training_args.output_dir)
    trainer.accelerator.print(
        f"saved {'adapter' if peft_config else 'model'} + tokenizer to {training_args.output_dir}"
    )
    if training_args.push_to_hub:
        local = Path(script_args.dataset_name).expanduser().exists()  # no local path in the card
        trainer.push_to_hub(dataset_name=None if local else script_args.dataset_name)
        trainer.accelerator.print(f"pushed to https://huggingface.co/{trainer.hub_model_id}")
    commands = eval_commands(
        model_args.model_name_or_path, training_args.output_dir, adapter=peft_config is not None
    )
    trainer.accelerator.print(
        '\nScore it with C²-EVAL (without the Hub add --metadata \'{"data": "<PKU-SafeRLHF '
        "v0 file>\"}' to lm_eval, --data <file> to c2-eval):\n  " + "\n  ".join(commands)
    )
    if hasattr(trainer, "end"):  # transformers >= 5.18: finish trackers, destroy process group
        trainer.end()
    return training_args.output_dir


def cli(argv: list[str] | None = None) -> int:
    """Parse, run, and turn every input problem into one ``error:`` line (exit code 2)."""
    try:
        script_args, training_args, model_args = parse_args(argv)
        main(script_args, training_args, model_args)
    except RecipeError as err:
        if _is_local_main():
            print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(cli())
