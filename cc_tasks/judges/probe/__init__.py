"""Kind ``probe``: a logistic regression on the embedded model's hidden states (offline judge).

:mod:`.judge` is the judge (and the weights format), :mod:`.features` what it reads
(encoding, pooled hidden states), :mod:`.train` the fitting, cross-validation and the
training CLI (``python -m cc_tasks.judges.probe train|cv``); ``weights.json`` beside
them are the shipped weights.
"""

from __future__ import annotations

from .features import (
    MAX_CONTINUATION_TOKENS,
    MAX_PREFILL_TOKENS,
    MAX_REQUEST_TOKENS,
    POOLINGS,
    TAIL_TOKENS,
    Encoded,
    FeatureExtractor,
    encode,
    feature_layers,
    stack_features,
)
from .judge import JUDGE_VERSION, WEIGHTS_PATH, ProbeJudge, ProbeWeights, is_empty, weights_sha

__all__ = [
    "JUDGE_VERSION",
    "MAX_CONTINUATION_TOKENS",
    "MAX_PREFILL_TOKENS",
    "MAX_REQUEST_TOKENS",
    "POOLINGS",
    "TAIL_TOKENS",
    "WEIGHTS_PATH",
    "Encoded",
    "FeatureExtractor",
    "ProbeJudge",
    "ProbeWeights",
    "encode",
    "feature_layers",
    "is_empty",
    "stack_features",
    "weights_sha",
]
