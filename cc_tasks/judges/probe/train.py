"""Training the ``probe`` judge: the logistic regression, grouped cross-validation, and the CLI.

``python -m cc_tasks.judges.probe train --data FILE`` fits the shipped weights
(:data:`~cc_tasks.judges.probe.judge.WEIGHTS_PATH`) on the gold dev split, never the
test split, and prints the grouped cross-validation (folds by request) first;
``... cv`` prints only the cross-validation. The same machine writes byte-identical JSON.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..base import NO, YES, JudgeConfigError
from .features import FeatureExtractor, feature_layers, stack_features
from .judge import WEIGHTS_PATH, ProbeWeights, is_empty, stored_numbers, weights_sha

# What the shipped probe reads (chosen by grouped cross-validation on the gold dev split;
# see the probe judge's docstring and ``python -m cc_tasks.judges.probe cv``).
FEATURES: tuple[str, ...] = ("mean@18",)
L2 = 0.03  # ridge penalty on standardised features, per training item


def fit_logistic(
    x: Any, y: Any, *, l2: float = L2, balanced: bool = True, iterations: int = 50
) -> tuple[Any, float]:
    """Ridge logistic regression by Newton's method (float64, deterministic): (coef, intercept).

    ``x`` is already standardised; the intercept is not penalised; with
    ``balanced`` each class carries half of the total weight (few ``yes`` items).
    """
    import numpy as np

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n, d = x.shape
    weights = np.ones(n)
    if balanced and 0 < y.sum() < n:
        weights = np.where(y == 1, n / (2 * y.sum()), n / (2 * (n - y.sum())))
    design = np.hstack([x, np.ones((n, 1))])
    penalty = np.full(d + 1, l2 * n)
    penalty[-1] = 0.0
    beta = np.zeros(d + 1)
    for _ in range(iterations):
        z = design @ beta
        p = 1.0 / (1.0 + np.exp(-z))
        grad = design.T @ (weights * (p - y)) + penalty * beta
        hess = (design * (weights * p * (1 - p))[:, None]).T @ design + np.diag(penalty)
        step = np.linalg.solve(hess, grad)
        beta = beta - step
        if np.max(np.abs(step)) < 1e-10:
            break
    return beta[:-1], float(beta[-1])


def train_weights(
    pooled: dict[str, Any],
    labels: Sequence[str],
    *,
    features: Sequence[str] = FEATURES,
    l2: float = L2,
    threshold: float = 0.5,
    meta: dict[str, Any] | None = None,
) -> ProbeWeights:
    """Fit the probe on pooled features and gold labels (``yes``/``no``)."""
    import numpy as np

    x = stack_features(pooled, features)
    y = np.array([label == YES for label in labels], dtype=np.float64)
    mean = np.array(stored_numbers(x.mean(0)))
    scale = np.array(stored_numbers(np.maximum(x.std(0), 1e-6)))
    coef, intercept = fit_logistic((x - mean) / scale, y, l2=l2)
    return ProbeWeights(
        tuple(features),
        mean,
        scale,
        np.array(stored_numbers(coef)),
        stored_numbers([intercept])[0],
        threshold,
        dict(meta or {}),
    )


CV_FOLDS = 5


def fold_of(request: str, folds: int = CV_FOLDS) -> int:
    """The cross-validation fold of an item: by its request, so one request is never on both sides."""
    from cc_tasks.seeding import stable_seed

    return stable_seed("probe-cv", request) % folds


def cross_validate(
    pooled: dict[str, Any],
    labels: Sequence[str],
    requests: Sequence[str],
    *,
    features: Sequence[str] = FEATURES,
    l2: float = L2,
    folds: int = CV_FOLDS,
) -> Any:
    """Out-of-fold probabilities of ``yes`` (grouped by request)."""
    import numpy as np

    fold = np.array([fold_of(r, folds) for r in requests])
    out = np.zeros(len(labels))
    for f in range(folds):
        test = np.where(fold == f)[0]
        train = np.where(fold != f)[0]
        if len(test) == 0:
            continue
        sub = {name: np.asarray(pooled[name])[train] for name in features}
        weights = train_weights(sub, [labels[i] for i in train], features=features, l2=l2)
        out[test] = weights.probabilities(
            {name: np.asarray(pooled[name])[test] for name in features}
        )
    return out


def _gold_dev(data: str | None) -> list[Any]:
    """The gold dev split, without empty continuations (the judge answers those without the probe)."""
    from ..gold import load_gold

    items = [g for g in load_gold("dev", data_path=data) if not is_empty(g.item)]
    if not items:
        raise JudgeConfigError("probe: the gold dev split is empty")
    return items


def main(argv: Sequence[str] | None = None) -> int:
    """``train``: fit the shipped weights on the gold dev split (and report grouped CV on it);
    ``cv``: only the cross-validation."""
    import argparse

    from cc_tasks.errors import CCError, cli_exit

    parser = argparse.ArgumentParser(
        prog="python -m cc_tasks.judges.probe",
        description="Train the probe judge on the gold dev split (never the test split).",
    )
    parser.add_argument("command", choices=("train", "cv"))
    parser.add_argument(
        "--data",
        help="the 500-row C²-EVAL rows file the gold set is rebuilt from (default: $C2_EVAL_DATA)",
    )
    parser.add_argument("--out", default=str(WEIGHTS_PATH), help="weights file to write (train)")
    parser.add_argument("--batch-size", type=int, default=16, help="forward batch (16)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="probe: %(message)s")
    try:
        from cc_tasks.embedded import embedded_model_path
        from cc_tasks.stats import cohen_kappa

        from .. import gold as gold_mod
        from ..card import canonical_model

        gold = _gold_dev(args.data)  # checks the gold set and data file before the model loads
        items = [g.item for g in gold]
        labels = [g.label for g in gold]
        model_path = embedded_model_path()
        extractor = FeatureExtractor(model_path, feature_layers(FEATURES), args.batch_size)
        pooled = extractor.pooled(items, progress=True)
        probs = cross_validate(pooled, labels, [i.request for i in items])
        said = [YES if p >= 0.5 else NO for p in probs]
        model_rows = [i for i, g in enumerate(gold) if g.kind == "model"]
        cv = {
            "folds": CV_FOLDS,
            "kappa": round(cohen_kappa(labels, said) or 0.0, 4),
            "kappa_model_items": round(
                cohen_kappa([labels[i] for i in model_rows], [said[i] for i in model_rows]) or 0.0,
                4,
            ),
        }
        print(
            f"grouped {CV_FOLDS}-fold CV on the gold dev split ({len(items)} non-empty items, "
            f"folds by request): kappa {cv['kappa']:.3f}, on the model's own continuations "
            f"({len(model_rows)}) {cv['kappa_model_items']:.3f}"
        )
        if args.command == "cv":
            return 0
        meta = {
            "model": canonical_model(model_path),
            "trained_on": "gold dev split, non-empty continuations",
            "gold_version": gold_mod.gold_version(),
            "n": len(labels),
            "yes": sum(label == YES for label in labels),
            "l2": L2,
            "class_weight": "balanced",
            "cv": cv,
        }
        text = train_weights(pooled, labels, meta=meta).to_json()
        out = Path(args.out)
        before = out.read_text(encoding="utf-8") if out.is_file() else None
        out.write_text(text, encoding="utf-8")
        change = "new" if before is None else ("unchanged" if before == text else "replaced")
        print(f"wrote {out} ({change}; sha256 {weights_sha(out)[:12]}, {len(labels)} items)")
        return 0
    except (CCError, OSError) as err:
        return cli_exit("probe", err)


if __name__ == "__main__":
    raise SystemExit(main())
