"""Kind ``tuned``: the embedded model fine-tuned with LoRA on model-written text (offline judge).

:mod:`.judge` is the judge, :mod:`.model` its network (frozen lower blocks, LoRA on the
top blocks, a linear head), :mod:`.train` the fit, leave-one-source-out cross-validation
and the CLI (``python -m cc_tasks.judges.tuned train|cv``); ``weights/`` beside them
holds the shipped classifier.
"""

from __future__ import annotations

from .judge import JUDGE_VERSION, WEIGHTS_DIR, TunedJudge, rule_verdict

__all__ = ["JUDGE_VERSION", "WEIGHTS_DIR", "TunedJudge", "rule_verdict"]
