"""What the offline judges trained on a model's states share: the model they read, their batch
option, the check that their weights belong to that model, and their description.

``probe`` and ``tuned`` are both weights trained on one model (the embedded SmolLM2 unless
``model`` names another folder); running them on another model's states would give verdicts
that look valid and mean nothing, so :meth:`TrainedJudge.check` refuses it with the command
that trains weights for the model at hand.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .base import Judge, JudgeConfigError
from .guard import GUARD_VERSION


class TrainedJudge(Judge):
    """Base of judges whose weights were trained on one model's hidden states."""

    train_command: ClassVar[str] = ""  # how to train weights for this judge
    model: str | None = None
    batch_size: int = 16

    def weights_label(self) -> str:
        """Where the weights are, for messages."""
        raise NotImplementedError

    def trained_on(self) -> str | None:
        """The model the weights name (``None``: not recorded)."""
        raise NotImplementedError

    def version(self) -> str:
        """``judge_version`` of :meth:`describe`: code version + weights digest."""
        raise NotImplementedError

    def check(self) -> None:
        if (
            not isinstance(self.batch_size, int)
            or isinstance(self.batch_size, bool)
            or self.batch_size < 1
        ):
            raise JudgeConfigError(
                f"{self.kind}: option 'batch_size' must be an integer >= 1, got {self.batch_size!r}"
            )
        trained_on = self.trained_on()
        model = self.describe()["model"]
        if trained_on and trained_on != model:
            raise JudgeConfigError(
                f"{self.kind}: the weights {self.weights_label()} were trained on {trained_on}, "
                f"not {model}; train weights for this model with: {self.train_command}"
            )

    def model_path(self) -> str:
        """The model folder to load (the embedded SmolLM2 is converted on first use)."""
        if self.model:
            return str(self.model)
        from cc_tasks.embedded import embedded_model_path

        return embedded_model_path()

    def describe(self) -> dict[str, Any]:
        import os

        from cc_tasks.embedded import MODEL_ENV, model_dir

        from .card import canonical_model

        model = self.model or os.environ.get(MODEL_ENV) or str(model_dir())
        return {
            "kind": self.kind,
            "name": self.name,
            "model": canonical_model(model),
            "judge_version": self.version(),
            "guard_version": GUARD_VERSION,
        }


__all__ = ["TrainedJudge"]
