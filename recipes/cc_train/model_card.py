"""What a DPO run on C²-SYN says about itself: its model card and the command that scores it.

peft writes an empty template card and TRL's card names the base model by the
local path it was loaded from; a card people can publish names the base model
by its Hub id, the data by its Hub id or its fingerprint (SHA-256 of the files,
so "which rows" has an answer), the recipe, the C²-EVAL command and, once that
has run, its results. :class:`TrainingCard` is written with huggingface_hub's
``ModelCard``/``ModelCardData`` after training, and through the trainer's
``create_model_card`` hook at checkpoints and before a push.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import math
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synth.dataset import HUB_ID_RE, fingerprint, layout_files

PAPER = "https://arxiv.org/abs/2407.16637"
CPU_EVAL_BATCH = 16  # measured on CPU (README "Cost"): batch 16 ~8x faster than the default 1
NOT_EVALUATED = "Not evaluated yet."
CARD_SETTINGS = ("beta", "loss_type", "learning_rate", "max_steps", "num_train_epochs", "seed")


# ---------------------------------------------------------------- the C²-EVAL command


def eval_commands(base: str, output_dir: str, *, adapter: bool, on_cpu: bool) -> list[str]:
    """The C²-EVAL commands (plain lm_eval and the c2-eval wrapper), fast on this hardware.

    On CPU: one thread (two threads oversubscribe a shared CPU) and batch 16; on a GPU
    lm-eval finds the largest batch that fits (``--batch_size auto``).
    """
    model_args = f"pretrained={base},peft={output_dir}" if adapter else f"pretrained={output_dir}"
    quoted = shlex.quote(model_args)
    prefix, batch = ("OMP_NUM_THREADS=1 ", str(CPU_EVAL_BATCH)) if on_cpu else ("", "auto")
    return [
        f"{prefix}lm_eval --model hf --model_args {quoted} --tasks c2_eval "
        f"--include_path $(python -m cc_tasks) --apply_chat_template --batch_size {batch}",
        f"{prefix}c2-eval --model hf --model_args {quoted} --batch_size {batch}",
    ]


# ---------------------------------------------------------------- the data a model was trained on


@dataclass(frozen=True)
class DataRef:
    """The training data as a card names it: a Hub id (and revision), or a local name + SHA-256."""

    hub_id: str | None
    revision: str | None = None
    local_name: str | None = None
    sha256: str | None = None

    @classmethod
    def of(cls, name: str, revision: str | None = None) -> DataRef:
        path = Path(name).expanduser()
        if path.exists():
            return cls(None, None, path.resolve().name, data_sha256(path))
        return cls(name if HUB_ID_RE.match(name) else None, revision, None, None)

    def markdown(self) -> str:
        if self.hub_id:
            at = f" at revision `{self.revision}`" if self.revision else ""
            return f"[`{self.hub_id}`](https://huggingface.co/datasets/{self.hub_id}){at}"
        return f"the local C²-SYN folder `{self.local_name}` (SHA-256 of its data `{self.sha256}`)"


def data_sha256(path: Path) -> str:
    """SHA-256 of the data: a file's bytes, a C²-SYN folder's parquet files, or every file."""
    if path.is_file():
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()
    if layout_files(path):  # a folder in C²-SYN's Hub layout: its parquet files
        return fingerprint(path)
    digest = hashlib.sha256()  # another layout (save_to_disk): every file, by relative name
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(path).as_posix()}\n".encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


# ---------------------------------------------------------------- the card


def _versions() -> str:
    names = ("course-correction", "trl", "transformers", "peft", "torch", "datasets")
    found = []
    for name in names:
        try:
            found.append(f"{name} {md.version(name)}")
        except md.PackageNotFoundError:
            continue
    return ", ".join(found)


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def training_metrics(log_history: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The last logged training loss and held-out eval metrics (TRL's names) of a run."""
    out: dict[str, Any] = {}
    for entry in log_history:
        if "loss" in entry:
            out.update(step=entry.get("step"), loss=entry["loss"])
        if "eval_loss" in entry:
            out.update({k: v for k, v in entry.items() if k.startswith("eval_")})
            out["eval_step"] = entry.get("step")
    return {
        k: v
        for k, v in out.items()
        if not (isinstance(v, float) and math.isnan(v))
        and not k.endswith(("_runtime", "_per_second"))  # speed of this machine, not the model
    }


@dataclass
class TrainingCard:
    """Everything the card says; :meth:`write` renders it into ``output_dir/README.md``."""

    base_path: str
    base_hub_id: str | None
    data: DataRef
    recipe: str | None
    eval_command: str
    adapter: bool
    settings: dict[str, Any] = field(default_factory=dict)  # training values shown
    eval_results: str | None = None  # a C²-EVAL result table, once it has run
    commands: list[str] = field(default_factory=list)  # lm_eval and c2-eval forms

    @classmethod
    def for_run(
        cls,
        base: Any,
        data: DataRef,
        training_args: Any,
        *,
        recipe: str | None,
        adapter: bool,
        on_cpu: bool,
    ) -> TrainingCard:
        """The card of a recipe run: ``base`` is a :class:`cc_train.recipe.BaseModel`.

        ``commands`` (printed after training) use this machine's paths; the card's command
        names the base model by its Hub id and the result by its Hub repo when it is pushed,
        so it works for whoever reads the published card.
        """
        out = training_args.output_dir
        commands = eval_commands(base.path, out, adapter=adapter, on_cpu=on_cpu)
        pushed = training_args.hub_model_id if training_args.push_to_hub else None
        shown = eval_commands(
            base.hub_id or base.path, pushed or out, adapter=adapter, on_cpu=on_cpu
        )
        settings = {k: getattr(training_args, k, None) for k in CARD_SETTINGS}
        if (training_args.max_steps or 0) > 0:  # max_steps overrides the epochs
            settings.pop("num_train_epochs", None)
        return cls(
            base_path=base.path,
            base_hub_id=base.hub_id,
            data=data,
            recipe=recipe,
            eval_command=shown[-1],
            adapter=adapter,
            settings=settings,
            commands=commands,
        )

    def render(self, log_history: Sequence[Mapping[str, Any]] = ()) -> Any:
        """The card as a huggingface_hub ``ModelCard``."""
        from huggingface_hub import ModelCard, ModelCardData

        tags = ["trl", "dpo", "course-correction", "safety", "c2-syn"] + (
            ["lora", "peft"] if self.adapter else []
        )
        data = ModelCardData(
            base_model=self.base_hub_id,
            datasets=[self.data.hub_id] if self.data.hub_id else None,
            library_name="peft" if self.adapter else "transformers",
            pipeline_tag="text-generation",
            tags=tags,
        )
        base = (
            f"[`{self.base_hub_id}`](https://huggingface.co/{self.base_hub_id})"
            if self.base_hub_id
            else f"the local model folder `{Path(self.base_path).name}`"
        )
        metrics = training_metrics(log_history)
        lines = [
            "---",
            data.to_yaml(),
            "---",
            "",
            f"# {'LoRA adapter' if self.adapter else 'Model'}: {self.base_hub_id or 'DPO'} + "
            "Course-Correction DPO",
            "",
            f"{'A LoRA adapter for' if self.adapter else 'A fine-tune of'} {base}, trained with "
            "DPO (TRL's `DPOTrainer`) on C²-SYN, the synthetic course-correction preferences of "
            f"*Course-Correction: Safety Alignment Using Synthetic Preferences* ([arXiv 2407.16637]"
            f"({PAPER})): for harmful requests, responses that stop and correct themselves earlier "
            "are preferred.",
            "",
            "## Training data",
            "",
            f"- data: {self.data.markdown()}",
            f"- recipe: `{self.recipe or 'command-line options only'}`",
            *(f"- `{k}`: {_fmt(v)}" for k, v in self.settings.items()),
            "",
            "## Training results",
            "",
        ]
        if metrics:
            lines += [
                "| metric | value |",
                "| --- | ---: |",
                *(f"| {k} | {_fmt(v)} |" for k, v in metrics.items()),
            ]
        else:
            lines.append("Training has not logged a step yet.")
        lines += [
            "",
            "## Evaluation (C²-EVAL)",
            "",
            self.eval_results or f"{NOT_EVALUATED} Score it (Corr@10..80 and Corr_mean) with:",
            "",
            "```bash",
            self.eval_command,
            "```",
            "",
            "## Framework versions",
            "",
            _versions(),
            "",
        ]
        return ModelCard("\n".join(lines))

    def write(self, output_dir: str | Path, log_history: Sequence[Mapping[str, Any]] = ()) -> Path:
        """Write (or overwrite peft's/TRL's) ``README.md`` in ``output_dir``."""
        path = Path(output_dir) / "README.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.render(log_history).save(path)
        return path

    def hook(self, trainer: Any) -> Any:
        """A drop-in for ``trainer.create_model_card`` (TRL calls it at each checkpoint and
        before a push): our card instead of TRL's, on the main process only."""

        def create_model_card(*args: Any, **kwargs: Any) -> None:
            if trainer.is_world_process_zero():
                self.write(trainer.args.output_dir, trainer.state.log_history)

        return create_model_card


__all__ = ["DataRef", "TrainingCard", "data_sha256", "eval_commands", "training_metrics"]
