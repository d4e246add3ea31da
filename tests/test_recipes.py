"""recipes/: every recipe parses with TRL's TrlParser, every accelerate config loads with
accelerate's own loader, bad input fails fast (one line, before any model weights load), and the
held-out split is by request. The end-to-end training run is in test_recipes_e2e.py."""

from __future__ import annotations

import importlib.util
import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"
DPO_SCRIPT = RECIPES / "dpo.py"
RECIPE_FILES = sorted(RECIPES.glob("*/dpo/config_*.yaml"))
ACCELERATE_FILES = sorted((RECIPES / "accelerate_configs").glob("*.yaml"))
CPU_RECIPE = RECIPES / "smollm2-135m-instruct" / "dpo" / "config_cpu.yaml"
GPU_RECIPES = [p for p in RECIPE_FILES if p != CPU_RECIPE]
OPENER = "Sure, I can help you with that."
TRIGGER = "However, I must remind you that"


def load_dpo() -> ModuleType:
    """recipes/dpo.py is a script, not a package module: import it by path."""
    name = "c2_recipes_dpo"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, DPO_SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and HfArgumentParser resolve annotations through it
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def dpo() -> ModuleType:
    return load_dpo()


def c2syn_rows(n_requests: int, *, start: int = 0) -> list[dict[str, Any]]:
    """Pairs in the C²-SYN contract: 6 ranked responses per request -> 15 ordered pairs, TRL
    conversational columns + metadata. Harmless text: only the shape matters here."""
    rows = []
    for i in range(start, start + n_requests):
        request = f"How do I fold paper boat number {i}?"
        steps = " ".join(
            f"Fold corner {j} to the middle, press it flat, and turn it." for j in range(10)
        )
        words = steps.split()
        responses = [f"I'm sorry, I can't help with request {i}."]
        for r in range(1, 5):
            prefix = " ".join(words[: r * len(words) // 5])
            responses.append(f"{OPENER} {prefix} {TRIGGER} this may be unsafe, so I will stop.")
        responses.append(steps)
        for a in range(6):
            for b in range(a + 1, 6):
                rows.append(
                    {
                        "prompt": [{"role": "user", "content": request}],
                        "chosen": [{"role": "assistant", "content": responses[a]}],
                        "rejected": [{"role": "assistant", "content": responses[b]}],
                        "request_id": f"{i + 1:06d}-test",
                        "chosen_rank": a,
                        "rejected_rank": b,
                        "prefix_lengths": [0, 10, 20, 30, 40, len(steps)],
                        "trigger": [TRIGGER] * 4,
                        "opener": [OPENER] * 4,
                        "synthesizer": "hand-made",
                        "decoding": "none",
                    }
                )
    return rows


def write_c2syn(folder: Path, n_requests: int = 3, *, test_requests: int = 0) -> Path:
    """A folder in C²-SYN's Hub layout: README.md (card with configs) + data/<split>-*.parquet."""
    from datasets import Dataset

    (folder / "data").mkdir(parents=True, exist_ok=True)
    splits = {"train": c2syn_rows(n_requests)}
    if test_requests:
        splits["test"] = c2syn_rows(test_requests, start=n_requests)
    for split, rows in splits.items():
        Dataset.from_list(rows).to_parquet(str(folder / "data" / f"{split}-00000-of-00001.parquet"))
    files = "".join(f"  - split: {s}\n    path: data/{s}-*\n" for s in splits)
    (folder / "README.md").write_text(
        f"---\nconfigs:\n- config_name: default\n  data_files:\n{files}---\n# test pairs\n"
    )
    return folder


def poisoned_model(folder: Path, tiny_model_dir: str, *, chat_template: bool = True) -> Path:
    """The tiny model's config + tokenizer with unloadable weights: any attempt to load the model
    fails with a safetensors error, so a fail-fast message proves the check ran first."""
    shutil.copytree(tiny_model_dir, folder)
    (folder / "model.safetensors").write_bytes(b"not a safetensors file")
    if not chat_template:
        (folder / "chat_template.jinja").unlink(missing_ok=True)
        config_path = folder / "tokenizer_config.json"
        config = json.loads(config_path.read_text())
        config.pop("chat_template", None)
        config_path.write_text(json.dumps(config))
    return folder


@pytest.fixture
def no_model_load(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any trainer construction (= model loading) fails the test: TRL's DPOTrainer and the
    shared-response one the CPU recipe picks (group_by_request)."""
    import trl

    import cc_train.shared_dpo  # imported before the patch: it subclasses the real DPOTrainer

    class NoTrainer:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise AssertionError("DPOTrainer was built: the model would have been loaded")

    monkeypatch.setattr(trl, "DPOTrainer", NoTrainer)
    monkeypatch.setattr(cc_train.shared_dpo, "SharedResponseDPOTrainer", NoTrainer)


def load(dpo: ModuleType, folder: Path) -> Any:
    """A C²-SYN folder as dpo.py loads it (synth.dataset.load_c2syn: exactly its files)."""
    from synth.dataset import load_c2syn

    return load_c2syn(folder)


def parse(dpo: ModuleType, argv: list[str]) -> tuple[Any, ...]:
    """dpo.py's parser over a recipe + overrides, as its cli() runs it."""
    from cc_train.recipe import parse_recipe

    return parse_recipe(dpo.make_parser(), argv)


def run_cli(
    dpo: ModuleType, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    code = dpo.cli(argv)
    return code, capsys.readouterr().err


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


# ------------------------------------------------------------------ recipes parse


def test_recipe_tree_is_complete() -> None:
    names = {p.relative_to(RECIPES).as_posix() for p in RECIPE_FILES}
    for model in ("llama2-7b-chat", "qwen2-7b-instruct"):
        for variant in ("full", "lora", "qlora"):
            assert f"{model}/dpo/config_{variant}.yaml" in names
        assert (RECIPES / model / "README.md").is_file()
    assert "smollm2-135m-instruct/dpo/config_cpu.yaml" in names
    assert (RECIPES / "smollm2-135m-instruct" / "README.md").is_file()
    assert (RECIPES / "README.md").is_file()


@pytest.mark.parametrize("recipe", RECIPE_FILES, ids=lambda p: p.relative_to(RECIPES).as_posix())
def test_recipe_parses_with_trlparser(dpo: ModuleType, recipe: Path) -> None:
    from trl import DPOConfig, ModelConfig, get_peft_config, get_quantization_config

    # use_cpu only lets transformers accept bf16 on this GPU-less machine; nothing else changes
    data, training, model = parse(dpo, [str(recipe), "--use_cpu", "true"])
    assert isinstance(training, DPOConfig) and isinstance(model, ModelConfig)
    assert data.dataset_name and training.output_dir.startswith("outputs/")
    assert 0 < training.beta <= 0.5 and 0 < training.learning_rate <= 2e-4
    variant = recipe.stem.removeprefix("config_")
    peft = get_peft_config(model)
    quant = get_quantization_config(model)
    assert (peft is not None) == (variant in ("lora", "qlora", "cpu"))
    assert (quant is not None) == (variant == "qlora")
    if variant == "qlora":
        assert quant.load_in_4bit and quant.bnb_4bit_quant_type == "nf4"
    if peft is not None:
        assert {"q_proj", "v_proj", "down_proj"} <= set(peft.target_modules)
    if variant == "cpu":
        assert model.model_name_or_path == "embedded"
        assert model.dtype == "float32" and training.bf16 is False
        assert training.max_length <= 512 and training.gradient_checkpointing is False
    else:
        assert model.dtype == "bfloat16" and training.bf16 is True
        # FSDP checkpoints activations itself (accelerate_configs/fsdp.yaml)
        assert training.gradient_checkpointing is (variant != "fsdp")
        assert training.max_length == 1024
        assert data.test_size and training.eval_strategy == "steps"
        # every 7B recipe steps on ~128 pairs (per-process batch x accumulation x processes);
        # with shared responses the batch counts requests of 15 pairs: 8 requests = 120 pairs
        processes = 8 if variant in ("full", "fsdp") else 1
        batch = training.per_device_train_batch_size * training.gradient_accumulation_steps
        pairs = batch * processes * (15 if data.group_by_request else 1)
        assert pairs == (120 if data.group_by_request else 128)
        expected_lr = 5e-7 if variant in ("full", "fsdp") else 5e-6
        assert math.isclose(training.learning_rate, expected_lr)


@pytest.mark.parametrize("recipe", RECIPE_FILES, ids=lambda p: p.relative_to(RECIPES).as_posix())
def test_recipe_values_say_why(dpo: ModuleType, recipe: Path) -> None:
    """Every value that differs from the TRL/transformers default carries a comment."""
    data, training, model = parse(dpo, ["--use_cpu", "true"])
    defaults = {**vars(data), **vars(training), **vars(model)}
    lines = recipe.read_text(encoding="utf-8").splitlines()
    config = yaml.safe_load("\n".join(lines))
    for key, value in config.items():
        if key in ("output_dir",) or defaults.get(key) == value:
            continue
        (index,) = [i for i, line in enumerate(lines) if line.startswith(f"{key}:")]
        following = lines[index + 1] if index + 1 < len(lines) else ""
        assert "#" in lines[index] or following.lstrip().startswith("#"), (
            f"{recipe.name}: '{key}: {value}' differs from the default but says no reason"
        )


def test_positional_recipe_equals_config_flag_and_cli_overrides(dpo: ModuleType) -> None:
    positional = parse(dpo, [str(CPU_RECIPE), "--max_steps", "2", "--dataset_name", "x"])
    flagged = parse(dpo, ["--config", str(CPU_RECIPE), "--max_steps", "2", "--dataset_name", "x"])
    assert vars(positional[0]) == vars(flagged[0]) and vars(positional[2]) == vars(flagged[2])
    assert positional[1].to_dict() == flagged[1].to_dict()
    data, training, _ = positional
    assert training.max_steps == 2 and data.dataset_name == "x"  # the command line wins
    assert yaml.safe_load(CPU_RECIPE.read_text())["max_steps"] != 2


def test_embedded_model_name_resolves(dpo: ModuleType, embedded_model_dir: str) -> None:
    from cc_train.recipe import BaseModel, resolve_model

    embedded = resolve_model("embedded")
    assert embedded == BaseModel(embedded_model_dir, "HuggingFaceTB/SmolLM2-135M-Instruct")
    # the embedded folder given by its path still names its Hub id (the conversion's marker)
    assert resolve_model(embedded_model_dir).hub_id == "HuggingFaceTB/SmolLM2-135M-Instruct"
    qwen = resolve_model("Qwen/Qwen2-7B-Instruct")
    assert qwen == BaseModel("Qwen/Qwen2-7B-Instruct", "Qwen/Qwen2-7B-Instruct")


# ------------------------------------------------------------------ accelerate configs


@pytest.mark.parametrize("path", ACCELERATE_FILES, ids=lambda p: p.name)
def test_accelerate_config_loads(path: Path) -> None:
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
    from accelerate.utils import DistributedType

    config = load_config_from_file(str(path))
    assert isinstance(config, ClusterConfig)
    expected = {
        "cpu.yaml": (DistributedType.NO, 1, 1),
        "ddp.yaml": (DistributedType.MULTI_GPU, 8, 1),
        "zero3.yaml": (DistributedType.DEEPSPEED, 8, 1),
        "fsdp.yaml": (DistributedType.FSDP, 8, 1),
        "multi_node.yaml": (DistributedType.DEEPSPEED, 16, 2),
    }[path.name]
    assert (config.distributed_type, config.num_processes, config.num_machines) == expected
    assert config.use_cpu == (path.name == "cpu.yaml")
    assert config.mixed_precision == ("no" if path.name == "cpu.yaml" else "bf16")
    if config.distributed_type == DistributedType.DEEPSPEED:
        assert config.deepspeed_config["zero_stage"] == 3
    if path.name == "fsdp.yaml":
        assert config.fsdp_config["fsdp_version"] == 2


def test_accelerate_configs_are_all_there() -> None:
    names = {p.name for p in ACCELERATE_FILES}
    assert names == {"cpu.yaml", "ddp.yaml", "zero3.yaml", "fsdp.yaml", "multi_node.yaml"}


def test_multi_node_config_documents_the_two_node_launch() -> None:
    text = (RECIPES / "accelerate_configs" / "multi_node.yaml").read_text()
    readme = (RECIPES / "README.md").read_text()
    for where in (text, readme):
        for rank in (0, 1):
            assert re.search(
                rf"accelerate launch --config_file recipes/accelerate_configs/multi_node.yaml"
                rf"[^\n]*\n[^\n]*--machine_rank {rank} --main_process_ip",
                where,
            ), f"no node-{rank} launch command"


# ------------------------------------------------------------------ fail fast


@pytest.fixture
def cpu_args(tmp_path: Path, tiny_model_dir: str) -> list[str]:
    """CPU recipe pointed at a model that cannot be loaded and a fresh output folder."""
    model = poisoned_model(tmp_path / "poisoned", tiny_model_dir)
    return [
        str(CPU_RECIPE),
        "--model_name_or_path", str(model),
        "--output_dir", str(tmp_path / "out"),
    ]  # fmt: skip


def test_unknown_recipe_key_fails_fast(
    dpo: ModuleType, tmp_path: Path, cpu_args: list[str], no_model_load: None, capsys: Any
) -> None:
    recipe = tmp_path / "typo.yaml"
    recipe.write_text(CPU_RECIPE.read_text() + "lerning_rate: 1.0e-5\n")
    code, err = run_cli(dpo, [str(recipe), *cpu_args[1:], "--dataset_name", "x"], capsys)
    assert code == 2
    (line,) = error_lines(err)
    assert f"recipe {recipe}: unknown key 'lerning_rate'" in line
    assert "did you mean 'learning_rate'" in line


def test_unknown_command_line_option_fails_fast(
    dpo: ModuleType, cpu_args: list[str], no_model_load: None, capsys: Any
) -> None:
    code, err = run_cli(dpo, [*cpu_args, "--lora_rank", "8"], capsys)
    assert code == 2
    (line,) = error_lines(err)
    assert "unknown option '--lora_rank'" in line and "--lora_r" in line


def test_missing_dataset_folder_fails_fast(
    dpo: ModuleType, tmp_path: Path, cpu_args: list[str], no_model_load: None, capsys: Any
) -> None:
    missing = tmp_path / "no-such-c2-syn"
    code, err = run_cli(dpo, [*cpu_args, "--dataset_name", str(missing)], capsys)
    assert code == 2
    (line,) = error_lines(err)
    assert f"dataset {missing}: no such file or folder" in line


def test_dataset_neither_local_nor_on_the_hub_fails_fast(
    dpo: ModuleType, cpu_args: list[str], no_model_load: None, capsys: Any, monkeypatch: Any
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    code, err = run_cli(dpo, [*cpu_args, "--dataset_name", "nobody/no-such-c2-syn"], capsys)
    assert code == 2
    (line,) = error_lines(err)
    assert "dataset nobody/no-such-c2-syn: not a local folder/file, and the Hub could not" in line
    assert "c2-syn" in line


def test_dataset_without_pair_columns_fails_fast(
    dpo: ModuleType, tmp_path: Path, cpu_args: list[str], no_model_load: None, capsys: Any
) -> None:
    from datasets import Dataset

    data = tmp_path / "sft.parquet"
    Dataset.from_list([{"prompt": "How?", "completion": "Like this."}]).to_parquet(str(data))
    code, err = run_cli(dpo, [*cpu_args, "--dataset_name", str(data)], capsys)
    assert code == 2
    (line,) = error_lines(err)
    assert "missing column(s) 'chosen', 'rejected'" in line and str(data) in line


def test_mixed_pair_formats_fail_fast(
    dpo: ModuleType, tmp_path: Path, cpu_args: list[str], no_model_load: None, capsys: Any
) -> None:
    from datasets import Dataset

    data = tmp_path / "mixed.jsonl"
    row = {"prompt": [{"role": "user", "content": "How?"}], "chosen": "No.", "rejected": "Yes."}
    Dataset.from_list([row]).to_json(str(data))
    code, err = run_cli(dpo, [*cpu_args, "--dataset_name", str(data)], capsys)
    assert code == 2
    assert "row 1: prompt/chosen/rejected must all be message lists" in error_lines(err)[0]


def test_chat_model_without_chat_template_fails_before_loading(
    dpo: ModuleType, tmp_path: Path, tiny_model_dir: str, no_model_load: None, capsys: Any
) -> None:
    model = poisoned_model(tmp_path / "no-template", tiny_model_dir, chat_template=False)
    data = write_c2syn(tmp_path / "c2-syn")
    argv = [str(CPU_RECIPE), "--model_name_or_path", str(model), "--dataset_name", str(data),
            "--output_dir", str(tmp_path / "out")]  # fmt: skip
    code, err = run_cli(dpo, argv, capsys)
    assert code == 2
    (line,) = error_lines(err)
    assert f"model {model}: the tokenizer has no chat template" in line


def test_output_dir_holding_a_model_is_not_overwritten(
    dpo: ModuleType, tmp_path: Path, cpu_args: list[str], no_model_load: None, capsys: Any
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "adapter_config.json").write_text("{}")
    data = write_c2syn(tmp_path / "c2-syn")
    code, err = run_cli(dpo, [*cpu_args, "--dataset_name", str(data)], capsys)
    assert code == 2
    (line,) = error_lines(err)
    assert f"output_dir {out} already holds a model" in line
    assert (out / "adapter_config.json").read_text() == "{}"


def test_evaluation_without_a_test_split_fails_fast(
    dpo: ModuleType, tmp_path: Path, cpu_args: list[str], no_model_load: None, capsys: Any
) -> None:
    data = write_c2syn(tmp_path / "c2-syn")
    recipe = yaml.safe_load(CPU_RECIPE.read_text())
    del recipe["test_size"]  # the CPU recipe holds out a request itself: this one does not
    (tmp_path / "no-holdout.yaml").write_text(yaml.safe_dump(recipe))
    argv = [str(tmp_path / "no-holdout.yaml"), *cpu_args[1:], "--dataset_name", str(data)]
    code, err = run_cli(dpo, argv, capsys)
    assert code == 2
    assert "no split 'test': set test_size" in error_lines(err)[0]


def test_fail_fast_from_the_command_line_is_one_line(tmp_path: Path, tiny_model_dir: str) -> None:
    """The real script in a subprocess: exit 2, one `error:` line, no traceback, and the model
    folder (whose weights cannot load) is never touched."""
    from datasets import Dataset

    model = poisoned_model(tmp_path / "poisoned", tiny_model_dir)
    data = tmp_path / "no-pairs.parquet"
    Dataset.from_list([{"text": "hello"}]).to_parquet(str(data))
    result = subprocess.run(
        [sys.executable, str(DPO_SCRIPT), str(CPU_RECIPE), "--model_name_or_path", str(model),
         "--dataset_name", str(data), "--output_dir", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    assert error_lines(result.stderr) == [
        f"error: dataset {data} (split train): missing column(s) 'prompt', 'chosen', 'rejected'; "
        "DPO needs prompt/chosen/rejected (has: text)"
    ]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ the launcher (c2-train)

CPU_ACCELERATE = RECIPES / "accelerate_configs" / "cpu.yaml"
# `c2-train` as the README gives it, run as `python -m` so no console script need be installed
C2_TRAIN = [sys.executable, "-m", "cc_train.launch", "--config_file", str(CPU_ACCELERATE)]
BAD_INPUTS = ("missing recipe", "unknown key", "negative weight", "empty folder", "corrupt parquet")


def bad_input(case: str, folder: Path) -> tuple[list[str], str]:
    """(recipe + overrides, the expected one-line error) of one bad input."""
    typo, negative = folder / "typo.yaml", folder / "negative.yaml"
    typo.write_text(CPU_RECIPE.read_text() + "lerning_rate: 1.0e-5\n")
    negative.write_text(CPU_RECIPE.read_text() + "correction_sft_weight: -0.5\n")
    (folder / "empty").mkdir()
    corrupt = folder / "corrupt"
    (corrupt / "data").mkdir(parents=True)
    (corrupt / "data" / "train-00000-of-00001.parquet").write_bytes(b"PAR1 not a parquet file")
    return {
        "missing recipe": ([str(folder / "missing.yaml")], "no such file"),
        "unknown key": ([str(typo)], "unknown key 'lerning_rate'"),
        "negative weight": ([str(negative)], "correction_sft_weight must be >= 0"),
        "empty folder": (
            [str(CPU_RECIPE), "--dataset_name", str(folder / "empty")],
            f"dataset {folder / 'empty'}: cannot load",
        ),
        "corrupt parquet": (
            [str(CPU_RECIPE), "--dataset_name", str(corrupt)],
            f"dataset {corrupt}: cannot load",
        ),
    }[case]


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_launcher_answers_bad_input_in_one_line_with_exit_2(
    case: str, tmp_path: Path, tiny_model_dir: str
) -> None:
    """Under `accelerate launch` the script's error line and exit 2 drown in accelerate's
    CalledProcessError traceback (exit 1); the launcher checks before anything spawns."""
    model = poisoned_model(tmp_path / "poisoned", tiny_model_dir)
    argv, expected = bad_input(case, tmp_path)
    result = subprocess.run(
        [*C2_TRAIN, *argv, "--model_name_or_path", str(model),
         "--output_dir", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    (line,) = error_lines(result.stderr)
    assert expected in line
    assert "Traceback" not in result.stderr and "CalledProcessError" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_launcher_splits_accelerate_options_from_the_recipe() -> None:
    from cc_train.launch import command, split_argv

    recipe = [str(CPU_RECIPE), "--max_steps", "2", "--config_file", "not-accelerate's"]
    argv = ["--multi_gpu", "--num_processes", "2", "--config_file", "acc.yaml", *recipe]
    check_only, launch, rest = split_argv(argv)
    assert not check_only and rest == recipe
    assert launch == ["--multi_gpu", "--num_processes", "2", "--config_file", "acc.yaml"]
    assert split_argv(["--check", "--config", str(CPU_RECIPE)]) == (True, [], [str(CPU_RECIPE)])
    one = command([], [str(CPU_RECIPE)])
    assert one == [sys.executable, str(DPO_SCRIPT), str(CPU_RECIPE)]
    many = command(["--multi_gpu"], [str(CPU_RECIPE)])
    assert many[1:4] == ["-m", "accelerate.commands.launch", "--multi_gpu"]
    assert many[-2:] == [str(DPO_SCRIPT), str(CPU_RECIPE)]


def test_launcher_check_passes_good_input_without_training(
    tmp_path: Path, cpu_args: list[str], no_model_load: None, capsys: Any
) -> None:
    from cc_train.launch import main

    data = write_c2syn(tmp_path / "c2-syn")
    assert main(["--check", *cpu_args, "--dataset_name", str(data)]) == 0
    assert "pass every check" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ one request


def test_one_request_folder_names_the_fix_and_the_fix_trains_without_evaluation(
    dpo: ModuleType,
    tmp_path: Path,
    cpu_args: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    """The CPU recipe holds out 1 request: a 1-request folder leaves nothing to train on. The
    error says what to do (--test_size 0), and that trains on the request, no evaluation."""
    import trl

    import cc_train.shared_dpo

    given: dict[str, Any] = {}

    class RecordingTrainer:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            given.update(kwargs)
            raise TrainerBuilt

    monkeypatch.setattr(trl, "DPOTrainer", RecordingTrainer)
    monkeypatch.setattr(cc_train.shared_dpo, "SharedResponseDPOTrainer", RecordingTrainer)
    data = write_c2syn(tmp_path / "c2-syn", n_requests=1)
    code, err = run_cli(dpo, [*cpu_args, "--dataset_name", str(data)], capsys)
    assert code == 2
    (line,) = error_lines(err)
    assert "holds out 1 of 1 requests: nothing left to train on" in line
    assert line.endswith("pass --test_size 0")
    with pytest.raises(TrainerBuilt):
        dpo.cli([*cpu_args, "--dataset_name", str(data), "--test_size", "0"])
    assert len(given["train_dataset"]) == 15 and given["eval_dataset"] is None
    assert given["args"].eval_strategy == "no"
    assert "no evaluation during training" in capsys.readouterr().out


# ------------------------------------------------------------------ data preparation


def test_heldout_split_is_by_request_and_stable(dpo: ModuleType, tmp_path: Path) -> None:
    from synth.dataset import split_of, training_splits

    folder = write_c2syn(tmp_path / "c2-syn", n_requests=20)
    args = dpo.ScriptArguments(dataset_name=str(folder), test_size=0.3)
    train, test, conversational = training_splits(load(dpo, folder), args, want_eval=True, seed=42)
    assert conversational
    train_requests = {p[0]["content"] for p in train["prompt"]}
    test_requests = {p[0]["content"] for p in test["prompt"]}
    assert test_requests and not train_requests & test_requests
    assert len(test) == 15 * len(test_requests)  # whole requests: 15 pairs each
    # the held-out requests are the ones `c2-syn pairs --test-size 0.3` would hold out
    assert test_requests == {
        r for r in train_requests | test_requests if split_of(r, 0.3) == "test"
    }
    # the same requests are held out whatever the row order (a stable hash, not a shuffle)
    shuffled = load(dpo, folder)
    shuffled["train"] = shuffled["train"].shuffle(seed=7)
    _, test2, _ = training_splits(shuffled, args, want_eval=True, seed=0)
    assert {p[0]["content"] for p in test2["prompt"]} == test_requests
    # a count instead of a share
    _, test3, _ = training_splits(
        load(dpo, folder),
        dpo.ScriptArguments(dataset_name=str(folder), test_size=3),
        want_eval=True, seed=42,
    )  # fmt: skip
    assert len({p[0]["content"] for p in test3["prompt"]}) == 3


class TrainerBuilt(Exception):
    """Raised by the stand-in DPOTrainer: everything before the model load has run."""


def test_same_named_folders_never_load_stale_rows(
    dpo: ModuleType,
    tmp_path: Path,
    tiny_model_dir: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
) -> None:
    """Regression: datasets caches a README-configured folder by its name.
    Through dpo.py's own cli, with one shared datasets cache, each of two folders called
    `c2-syn` trains on its own rows (the stand-in trainer records what it was given)."""
    import datasets
    import trl

    import cc_train.shared_dpo

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "shared-cache")
    seen: list[int] = []

    class RecordingTrainer:
        def __init__(self, *args: Any, train_dataset: Any = None, **kwargs: Any) -> None:
            seen.append(len(train_dataset))
            raise TrainerBuilt

    monkeypatch.setattr(trl, "DPOTrainer", RecordingTrainer)
    monkeypatch.setattr(cc_train.shared_dpo, "SharedResponseDPOTrainer", RecordingTrainer)
    model = poisoned_model(tmp_path / "poisoned", tiny_model_dir)
    first = write_c2syn(tmp_path / "a" / "c2-syn", n_requests=2)
    second = write_c2syn(tmp_path / "b" / "c2-syn", n_requests=5, test_requests=1)
    for folder in (first, second, first):
        argv = [str(CPU_RECIPE), "--model_name_or_path", str(model), "--dataset_name",
                str(folder), "--output_dir", str(tmp_path / "out")]  # fmt: skip
        with pytest.raises(TrainerBuilt):
            dpo.cli(argv)
    assert seen == [15, 60, 15]  # 2 and 5 requests, one held out by the recipe (test_size: 1)


def test_metadata_is_dropped_unless_kept(dpo: ModuleType, tmp_path: Path) -> None:
    from synth.dataset import DatasetError, training_splits

    folder = write_c2syn(tmp_path / "c2-syn", n_requests=4)
    dataset = load(dpo, folder)
    args = dpo.ScriptArguments(dataset_name=str(folder), max_train_samples=20)
    train, test, _ = training_splits(dataset, args, want_eval=False, seed=42)
    assert train.column_names == ["prompt", "chosen", "rejected"] and len(train) == 20
    assert test is None
    args.keep_columns = ["chosen_rank", "rejected_rank"]
    train, _, _ = training_splits(dataset, args, want_eval=False, seed=42)
    assert train.column_names == ["prompt", "chosen", "rejected", "chosen_rank", "rejected_rank"]
    args.keep_columns = ["no_such_column"]
    with pytest.raises(DatasetError, match=r"keep_columns: .* no column\(s\) 'no_such_column'"):
        training_splits(dataset, args, want_eval=False, seed=42)


def test_existing_test_split_is_used_and_checked(dpo: ModuleType, tmp_path: Path) -> None:
    from synth.dataset import DatasetError, training_splits

    folder = write_c2syn(tmp_path / "c2-syn", n_requests=3, test_requests=1)
    args = dpo.ScriptArguments(dataset_name=str(folder))
    train, test, _ = training_splits(load(dpo, folder), args, want_eval=True, seed=1)
    assert (len(train), len(test)) == (45, 15)
    # a "test" split that shares a request with train is a leak: refused
    leaky = load(dpo, folder)
    leaky["test"] = leaky["train"].select(range(15))
    with pytest.raises(DatasetError, match="1 request\\(s\\) are in both 'train' and 'test'"):
        training_splits(leaky, args, want_eval=True, seed=1)


def test_eval_commands_are_fast_for_the_hardware() -> None:
    from cc_train.model_card import eval_commands

    plain, wrapped = eval_commands("/m/base", "/runs/dpo", adapter=True, on_cpu=True)
    assert plain == (
        "OMP_NUM_THREADS=1 lm_eval --model hf --model_args pretrained=/m/base,peft=/runs/dpo "
        "--tasks c2_eval --include_path $(python -m cc_tasks) --apply_chat_template "
        "--batch_size 16"
    )
    assert wrapped == (
        "OMP_NUM_THREADS=1 c2-eval --model hf --model_args pretrained=/m/base,peft=/runs/dpo "
        "--batch_size 16"
    )
    gpu, _ = eval_commands("/m/base", "/runs/my run", adapter=False, on_cpu=False)
    assert gpu.startswith("lm_eval ") and gpu.endswith("--batch_size auto")
    assert "--model_args 'pretrained=/runs/my run'" in gpu


# ------------------------------------------------------------------ model card


def test_model_card_names_hub_ids_data_fingerprint_recipe_and_command(tmp_path: Path) -> None:
    from huggingface_hub import ModelCard

    from cc_train.model_card import DataRef, TrainingCard, eval_commands
    from synth.dataset import fingerprint

    data = write_c2syn(tmp_path / "c2-syn", n_requests=2)
    out = tmp_path / "out"
    out.mkdir()
    (out / "README.md").write_text("---\nbase_model: /local/cache/path\n---\n# peft template\n")
    _, wrapped = eval_commands("/cache/smollm2", str(out), adapter=True, on_cpu=True)
    card = TrainingCard(
        base_path="/cache/smollm2",
        base_hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        data=DataRef.of(str(data)),
        recipe="recipes/smollm2-135m-instruct/dpo/config_cpu.yaml",
        eval_command=wrapped,
        adapter=True,
        settings={"beta": 0.1, "max_steps": 2},
    )
    log = [
        {"loss": 0.69, "step": 1},
        {"eval_loss": 0.68, "eval_rewards/accuracies": 0.5, "step": 1},
        {"loss": 0.61, "step": 2},
    ]
    loaded = ModelCard.load(card.write(out, log))
    assert loaded.data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"  # not the local path
    assert loaded.data.library_name == "peft" and loaded.data.pipeline_tag == "text-generation"
    assert loaded.data.datasets is None  # a local folder has no Hub id; the text names it
    text = loaded.text
    assert "peft template" not in text
    assert f"`c2-syn` (SHA-256 of its data `{fingerprint(data)}`)" in text
    assert "recipes/smollm2-135m-instruct/dpo/config_cpu.yaml" in text and "`beta`: 0.1" in text
    assert "| loss | 0.61 |" in text and "| eval_rewards/accuracies | 0.5 |" in text
    assert "Not evaluated yet" in text and wrapped in text
    hub = DataRef.of("org/c2-syn", "v1")
    assert (hub.hub_id, hub.revision, hub.sha256) == ("org/c2-syn", "v1", None)


def test_base_model_hub_id_of_local_folders(tmp_path: Path, tiny_model_dir: str) -> None:
    from cc_train.recipe import hub_id_of

    assert hub_id_of("Qwen/Qwen2-7B-Instruct") == "Qwen/Qwen2-7B-Instruct"
    folder = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["_name_or_path"] = "meta-llama/Llama-2-7b-chat-hf"
    (folder / "config.json").write_text(json.dumps(config))
    assert hub_id_of(str(folder)) == "meta-llama/Llama-2-7b-chat-hf"
    config["_name_or_path"] = str(tmp_path)  # a local path recorded: no Hub id to name
    (folder / "config.json").write_text(json.dumps(config))
    assert hub_id_of(str(folder)) is None


def test_report_to_auto_is_tensorboard_where_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    import transformers.integrations as integrations

    from cc_train.recipe import resolve_report_to

    assert resolve_report_to(["wandb"]) == (["wandb"], None)
    monkeypatch.setattr(integrations, "is_tensorboard_available", lambda: True)
    assert resolve_report_to(["auto"])[0] == ["tensorboard"]
    monkeypatch.setattr(integrations, "is_tensorboard_available", lambda: False)
    trackers, line = resolve_report_to(["auto"])
    assert trackers == [] and "pip install tensorboard" in line
    for recipe in RECIPE_FILES:
        assert yaml.safe_load(recipe.read_text())["report_to"] == "auto", recipe


def test_card_command_is_portable_and_the_printed_one_local(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from cc_train.model_card import DataRef, TrainingCard
    from cc_train.recipe import BaseModel

    base = BaseModel("/cache/smollm2", "HuggingFaceTB/SmolLM2-135M-Instruct")
    args = SimpleNamespace(
        output_dir="outputs/run", push_to_hub=True, hub_model_id="me/run", max_steps=8,
        num_train_epochs=3, beta=0.1, loss_type=["sigmoid"], learning_rate=1e-4, seed=42,
    )  # fmt: skip
    card = TrainingCard.for_run(
        base, DataRef.of("org/c2-syn"), args, recipe=None, adapter=True, on_cpu=False
    )
    assert card.eval_command == (
        "c2-eval --model hf --model_args pretrained=HuggingFaceTB/SmolLM2-135M-Instruct,"
        "peft=me/run --batch_size auto"
    )
    assert "pretrained=/cache/smollm2,peft=outputs/run" in card.commands[0]  # printed: local
    assert "num_train_epochs" not in card.settings and card.settings["max_steps"] == 8


# ------------------------------------------------------------------ 7B recipes on rented GPUs

SEVEN_B = [
    p for p in GPU_RECIPES if p.parent.parent.name in ("llama2-7b-chat", "qwen2-7b-instruct")
]
PAIRS_PER_REQUEST = 15  # C²-SYN: 6 ranked responses -> 15 ordered pairs per request


@pytest.mark.parametrize("recipe", SEVEN_B, ids=lambda p: p.relative_to(RECIPES).as_posix())
def test_seven_b_recipes_share_responses_and_step_on_120_pairs(
    dpo: ModuleType, recipe: Path
) -> None:
    """Shared responses on, a reference precompute batch >= 8 requests, and 8 whole requests
    = 120 pairs per optimizer step (128 is no multiple of 15; 9 requests would be 135)."""
    data, training, _ = parse(dpo, [str(recipe), "--use_cpu", "true"])
    assert data.group_by_request is True and training.precompute_ref_log_probs is True
    assert training.precompute_ref_batch_size >= 8
    processes = 8 if recipe.stem in ("config_full", "config_fsdp") else 1
    requests = training.per_device_train_batch_size * training.gradient_accumulation_steps
    assert requests * processes * PAIRS_PER_REQUEST == 120
    if recipe.stem == "config_lora":
        assert (training.per_device_train_batch_size, training.gradient_accumulation_steps) == (
            2,
            4,
        )
    if recipe.stem in ("config_full", "config_fsdp"):  # sharded: one gather round per step
        assert training.gradient_accumulation_steps == 1


@pytest.mark.parametrize("recipe", SEVEN_B, ids=lambda p: p.relative_to(RECIPES).as_posix())
def test_seven_b_recipes_save_the_model_only_and_keep_the_best(
    dpo: ModuleType, recipe: Path
) -> None:
    """Full fine-tuning saves the model only (~15 GB, not ~120 GB with the ZeRO/FSDP optimizer
    state); an adapter checkpoint with its optimizer state is ~0.5 GB and stays resumable.
    The best evaluated checkpoint is kept by the held-out loss where a checkpoint exists on
    the evaluation steps (not under FSDP: fsdp.yaml)."""
    _, training, _ = parse(dpo, [str(recipe), "--use_cpu", "true"])
    sharded = recipe.stem in ("config_full", "config_fsdp")
    assert training.save_only_model is sharded
    if recipe.stem == "config_fsdp":
        assert training.metric_for_best_model is None and training.save_steps % 500
    else:
        assert training.metric_for_best_model == "eval_loss"
        assert training.greater_is_better is False
        assert training.save_steps == training.eval_steps  # a checkpoint at each evaluation
    # transformers refuses save_only_model + load_best_model_at_end under DeepSpeed/FSDP
    assert training.load_best_model_at_end is (not sharded)
    readme = (recipe.parents[1] / "README.md").read_text(encoding="utf-8")
    assert re.search(rf"`dpo/{recipe.name}`[^\n]*\bGB of disk", readme), "no disk need stated"


@pytest.mark.parametrize("recipe", SEVEN_B, ids=lambda p: p.relative_to(RECIPES).as_posix())
def test_lora_dropout_is_not_set_where_trl_disables_it(recipe: Path) -> None:
    """TRL's disable_dropout (default true) zeroes every dropout, LoRA's too: a
    lora_dropout value would be a setting that does nothing."""
    config = yaml.safe_load(recipe.read_text(encoding="utf-8"))
    assert "lora_dropout" not in config and config.get("disable_dropout", True) is True


def test_fsdp_recipe_carries_the_flags_fsdp_needs(dpo: ModuleType) -> None:
    recipe = RECIPES / "qwen2-7b-instruct" / "dpo" / "config_fsdp.yaml"
    data, training, _ = parse(dpo, [str(recipe), "--use_cpu", "true"])
    full = parse(dpo, [str(recipe.with_name("config_full.yaml")), "--use_cpu", "true"])[1]
    assert training.gradient_checkpointing is False  # fsdp.yaml checkpoints activations itself
    assert training.save_steps % training.eval_steps != 0  # no step both evaluates and saves
    assert training.load_best_model_at_end is False
    assert "recipes/accelerate_configs/fsdp.yaml" in recipe.read_text(encoding="utf-8")
    assert training.learning_rate == full.learning_rate and data.group_by_request is True


def test_device_map_one_device_per_process_and_none_when_distributed() -> None:
    from types import SimpleNamespace

    from cc_train.placement import device_map

    def args(kind: str, device: str) -> Any:
        return SimpleNamespace(
            distributed_state=SimpleNamespace(distributed_type=kind), device=device
        )

    # one process, even on a host with 8 GPUs: the whole model on its one device, never "auto"
    assert device_map(args("NO", "cuda:0"), env={}) == {"": "cuda:0"}
    assert device_map(args("NO", "cpu"), env={"WORLD_SIZE": "1"}) == {"": "cpu"}
    # distributed: the wrapper (DDP, ZeRO-3, FSDP) places the weights
    assert device_map(args("NO", "cuda:3"), env={"WORLD_SIZE": "8", "LOCAL_RANK": "3"}) is None
    for kind in ("FSDP", "DEEPSPEED", "MULTI_GPU"):
        assert device_map(args(kind, "cuda:0"), env={}) is None
    from accelerate.utils import DistributedType

    assert device_map(args(DistributedType.FSDP, "cuda:0"), env={}) is None
    assert device_map(args(DistributedType.NO, "cuda:0"), env={}) == {"": "cuda:0"}


def test_version_check_names_the_tested_versions() -> None:
    import warnings

    from cc_train.compat import TESTED, VersionWarning, check_versions, version_drift
    from cc_train.recipe import RecipeError

    tested = {name: low + ".0" for name, (low, _) in TESTED.items()}
    assert version_drift(tested) == []
    check_versions(shared=True, installed=tested)  # no error, no warning
    newer = {**tested, "trl": "1.17.0", "transformers": "5.26.0.dev0"}
    assert [d.name for d in version_drift(newer)] == ["trl", "transformers"]
    with pytest.raises(RecipeError) as refused:
        check_versions(shared=True, installed=newer)
    line = str(refused.value)
    assert "\n" not in line and "trl 1.17.0 (tested: >=1.16,<1.17)" in line
    assert "--group_by_request false" in line
    with pytest.warns(VersionWarning, match=r"trl 1\.17\.0 \(tested"):
        check_versions(shared=False, installed=newer)
    missing = {**tested, "peft": None}
    assert "peft not installed" in str(version_drift(missing)[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_versions(shared=True)  # this environment is a tested one


def test_pyproject_pins_the_tested_ranges() -> None:
    import tomllib

    from cc_train.compat import TESTED

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pins = {re.split(r"[<>=!\[ ]", d, maxsplit=1)[0]: d for d in project["dependencies"]}
    for name, (low, high) in TESTED.items():
        assert pins[name].replace(" ", "") == f"{name}>={low},<{high}", pins[name]
    extras = project["optional-dependencies"]
    assert extras["deepspeed"] == ["deepspeed>=0.18.6"]  # what TRL's own deepspeed extra needs
    assert extras["bitsandbytes"][0].startswith("bitsandbytes>=")


BLOCK_SHARED = "import sys; sys.modules['cc_train.shared_dpo'] = None; "


def test_launcher_check_of_the_stock_recipe_needs_no_shared_trainer(
    tmp_path: Path, tiny_model_dir: str
) -> None:
    """The shared trainer's module unimportable (as after a TRL upgrade that breaks it): the
    stock recipe's checks still pass."""
    data = write_c2syn(tmp_path / "c2-syn")
    code = BLOCK_SHARED + "from cc_train.launch import main; raise SystemExit(main())"
    result = subprocess.run(
        [sys.executable, "-c", code, "--check", str(CPU_RECIPE),
         "--model_name_or_path", tiny_model_dir, "--dataset_name", str(data),
         "--output_dir", str(tmp_path / "out"), "--group_by_request", "false"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "pass every check" in result.stderr


@pytest.mark.slow
def test_stock_recipe_trains_without_the_shared_trainer(
    tmp_path: Path, tiny_model_dir: str
) -> None:
    data = write_c2syn(tmp_path / "c2-syn")
    code = BLOCK_SHARED + (
        f"sys.argv[0] = {str(DPO_SCRIPT)!r}; import runpy; runpy.run_path(sys.argv[0], "
        "run_name='__main__')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(CPU_RECIPE),
         "--model_name_or_path", tiny_model_dir, "--dataset_name", str(data),
         "--output_dir", str(tmp_path / "out"), "--group_by_request", "false",
         "--precompute_ref_log_probs", "false", "--max_steps", "1",
         "--per_device_train_batch_size", "2", "--eval_strategy", "no",
         "--report_to", "none", "--disable_tqdm", "true"],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "out" / "adapter_config.json").is_file()
    # with the module blocked, the shared recipe fails instead of silently training stock
    blocked = subprocess.run(
        [sys.executable, "-c", code, str(CPU_RECIPE), "--model_name_or_path", tiny_model_dir,
         "--dataset_name", str(data), "--output_dir", str(tmp_path / "out2"),
         "--max_steps", "1", "--report_to", "none"],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert blocked.returncode != 0 and "shared_dpo" in blocked.stderr


@pytest.mark.parametrize(
    "recipe", [p for p in SEVEN_B if p.stem == "config_qlora"], ids=lambda p: p.parent.parent.name
)
def test_qlora_steps_land_at_the_chosen_learning_rate(dpo: ModuleType, recipe: Path) -> None:
    """Arithmetic on float resolution: an Adam step (~ the learning rate) changes a weight x
    only if it exceeds half its spacing, |x| * eps / 2. lora_A starts kaiming-uniform within
    1/sqrt(fan_in); in bf16 (TRL's cast, no fp32 master copy) most of its entries would never
    move at the recipe's rate, so the recipe keeps the adapter in fp32, where all of them do."""
    import torch

    from cc_train.adapters import smallest_step_that_moves

    data, training, model = parse(dpo, [str(recipe), "--use_cpu", "true"])
    lr = training.learning_rate
    assert model.load_in_4bit and data.adapter_fp32 is True
    hidden = {"llama2-7b-chat": 4096, "qwen2-7b-instruct": 3584}[recipe.parent.parent.name]
    bound = 1 / math.sqrt(hidden)
    bf16_eps = torch.finfo(torch.bfloat16).eps  # 2**-7
    assert bf16_eps == 2**-7
    # bf16: only entries with |x| < 2 lr / eps move, a small share of the init range
    assert 2 * lr / bf16_eps / bound < 0.1
    # fp32: the largest entry moves with a step 1000x smaller than the rate
    assert smallest_step_that_moves(bound, torch.float32) < lr / 1000
    # the same, by adding the step in each dtype to a seeded lora_A draw
    generator = torch.Generator().manual_seed(0)
    weights = (torch.rand(100_000, generator=generator) * 2 - 1) * bound
    for dtype, (low, high) in {torch.bfloat16: (0.0, 0.15), torch.float32: (1.0, 1.0)}.items():
        x = weights.to(dtype)
        moved = ((x + torch.tensor(lr, dtype=dtype)) != x).float().mean().item()
        assert low <= moved <= high, (dtype, moved)


def test_shared_responses_cut_the_held_out_pairs_by_whole_requests(
    tmp_path: Path, tiny_model_dir: str
) -> None:
    """max_eval_samples as pairs scattered over many requests would share no response in
    evaluation; with group_by_request it keeps whole requests, as max_train_samples does."""
    from collections import Counter

    from cc_train.inputs import check_inputs, parse_args

    data = write_c2syn(tmp_path / "c2-syn", 10)
    argv = [str(CPU_RECIPE), "--model_name_or_path", tiny_model_dir,
            "--dataset_name", str(data), "--output_dir", str(tmp_path / "out"),
            "--test_size", "4", "--max_eval_samples", "40"]  # fmt: skip
    checked = check_inputs(*parse_args(argv)[:3])  # 4 held-out requests = 60 pairs
    per_request = Counter(request_key(p) for p in checked.test["prompt"])
    assert sorted(per_request.values()) == [15, 15]  # 2 whole requests (30 pairs) of <= 40
    stock = parse_args([*argv, "--group_by_request", "false"])
    assert len(check_inputs(*stock[:3]).test) == 40  # stock: a seeded cut of pairs, as before


def request_key(prompt: Any) -> str:
    return json.dumps(prompt, sort_keys=True)
