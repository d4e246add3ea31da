"""Judge settings: the one set of judge flags and the one resolver every tool uses.

``c2-eval`` (which hands the settings to lm-eval as task metadata ``judge`` and
``judge_options``), ``c2-judge`` and the C²-SYN quality gate (``c2-syn generate``
/ ``run``) add the same flags with :func:`add_judge_flags` and resolve them with
:func:`resolve` (the c2-eval tasks call it on their metadata).

Flags (one spelling everywhere):

=========================  ==========================================================
``--judge KIND``           ``rule`` (offline), ``openai`` (any OpenAI-compatible
                           URL), ``hf`` (a local model); c2-syn: turns the gate on
``--judge-options JSON``   keyword options of the judge, e.g. ``'{"max_tokens": 8}'``
``--judge-model NAME``     option ``model`` (openai: model name; hf: folder/Hub id)
``--judge-base-url URL``   option ``base_url``, e.g. ``http://localhost:8000/v1``
``--judge-api-key-env V``  option ``api_key_env``: the variable holding the key
``--judge-concurrency N``  option ``concurrency`` (openai requests at once)
``--judge-cache PATH``     option ``cache_path`` (the SQLite verdict cache)
``--no-judge-cache``       option ``use_cache=false``: neither read nor write it
``--judge-check``          option ``endpoint_check``: one 1-token request to the
                           endpoint before judging (``--no-judge-check`` skips it;
                           c2-judge's default); ``--judge-probe`` is its old name
``--max-invalid RATE``     fail (exit 1) when more than RATE of the verdicts are
                           invalid (default 0.05 = 5%)
``--allow-invalid``        never fail on invalid verdicts (they are still reported)
``--allow-judge-errors``   exit 0 even when some judgments failed (label ``error``)
=========================  ==========================================================

Precedence, lowest first: the tool's defaults < ``$C2_EVAL_JUDGE_OPTIONS``
(JSON) < ``--judge-options`` (c2-eval: metadata ``judge_options``) < the
dedicated flags. The kind is ``--judge``, else ``$C2_EVAL_JUDGE``, else
``rule``. ``$C2_EVAL_JUDGE_OPTIONS`` applies only when the kind being built is
the one ``$C2_EVAL_JUDGE`` names, so options meant for an API judge never leak
into ``--judge rule``. ``use_cache``, ``progress`` and ``endpoint_check`` are tool
conveniences: a judge that has no such option (``rule``) simply ignores them. The
option's old name ``probe`` is still read (it is renamed here) so that it is never
mistaken for the ``probe`` judge.
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import (
    COURSE_CORRECTION,
    JUDGE_KINDS,
    Judge,
    JudgeConfigError,
    judge_class,
    make_judge,
    parse_options,
)
from .record import DEFAULT_MAX_INVALID, InvalidPolicy

ENV_KIND = "C2_EVAL_JUDGE"
ENV_OPTIONS = "C2_EVAL_JUDGE_OPTIONS"
DEFAULT_KIND = "rule"

# dedicated flag (argparse dest) -> judge option
OPTION_FLAGS: dict[str, str] = {
    "judge_model": "model",
    "judge_base_url": "base_url",
    "judge_api_key_env": "api_key_env",
    "judge_concurrency": "concurrency",
    "judge_cache": "cache_path",
}
# options a tool may set for any judge; dropped for a kind that has no such option
CONVENIENCES = frozenset({"use_cache", "progress", "endpoint_check"})
# old option names -> current ones (still accepted in --judge-options, the environment, metadata)
RENAMED_OPTIONS = {"probe": "endpoint_check"}
# old flag spellings -> the flag they stand for (accepted, hidden from --help)
DEPRECATED_FLAGS = {"--judge-probe": "--judge-check"}

log = logging.getLogger(__name__)

# flag -> add_argument keywords (dest is derived from the flag by argparse)
FLAGS: dict[str, dict[str, Any]] = {
    "--judge": {
        "metavar": "KIND",
        "help": f"judge kind: {', '.join(JUDGE_KINDS)} (default ${ENV_KIND}, else {DEFAULT_KIND})",
    },
    "--judge-options": {
        "metavar": "JSON",
        "help": f"JSON object of judge options (over ${ENV_OPTIONS}, under the flags below)",
    },
    "--judge-model": {
        "metavar": "NAME",
        "help": "judge model (openai: model name; hf: folder or Hub id)",
    },
    "--judge-base-url": {
        "metavar": "URL",
        "help": "OpenAI-compatible judge endpoint, e.g. http://localhost:8000/v1",
    },
    "--judge-api-key-env": {
        "metavar": "VAR",
        "help": "environment variable holding the judge's API key (default OPENAI_API_KEY)",
    },
    "--judge-concurrency": {
        "type": int,
        "metavar": "N",
        "help": "concurrent judge requests (openai; default 32)",
    },
    "--judge-cache": {
        "metavar": "PATH",
        "help": "SQLite verdict cache file (default in the project cache folder)",
    },
    "--no-judge-cache": {
        "action": "store_true",
        "default": None,
        "help": "neither read nor write the verdict cache",
    },
    "--judge-check": {
        "action": argparse.BooleanOptionalAction,
        "default": None,
        "help": "openai: send one 1-token request first to check the endpoint "
        "(default: on, except in c2-judge)",
    },
    "--max-invalid": {
        "type": float,
        "metavar": "RATE",
        "help": f"fail when more than this share of verdicts is invalid "
        f"(default {DEFAULT_MAX_INVALID:g})",
    },
    "--allow-invalid": {
        "action": "store_true",
        "default": None,
        "help": "do not fail on invalid verdicts (they are still reported)",
    },
    "--allow-judge-errors": {
        "action": "store_true",
        "default": None,
        "help": "exit 0 even when some judgments failed",
    },
}


def add_judge_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    *,
    aliases: Mapping[str, str] | None = None,
    skip: tuple[str, ...] = (),
    help_text: Mapping[str, str] | None = None,
) -> None:
    """Add the judge flags to ``parser`` (or an argument group).

    ``aliases`` maps an old spelling to the flag it stands for (e.g.
    ``{"--cache-path": "--judge-cache"}``): accepted, hidden from ``--help``.
    ``skip`` leaves out flags a tool does not use; ``help_text`` rewords a flag's help
    where the tool uses it differently (the meaning of the value never changes).
    The :data:`DEPRECATED_FLAGS` come along with the flags they stand for, hidden.
    """
    for flag, kwargs in FLAGS.items():
        if flag not in skip:
            parser.add_argument(
                flag, **{**kwargs, "help": (help_text or {}).get(flag, kwargs["help"])}
            )
    for old, new in DEPRECATED_FLAGS.items():
        if new not in skip:
            dest = new[2:].replace("-", "_")
            parser.add_argument(old, **dict(FLAGS[new], help=argparse.SUPPRESS, dest=dest))
    for old, new in (aliases or {}).items():
        new = DEPRECATED_FLAGS.get(new, new)
        kwargs = dict(FLAGS[new], help=argparse.SUPPRESS, dest=new[2:].replace("-", "_"))
        if kwargs.get("action") is argparse.BooleanOptionalAction:
            kwargs["action"] = "store_true"  # the old spelling was a plain switch
        parser.add_argument(old, **kwargs)


def explicit_settings(args: argparse.Namespace) -> tuple[str | None, dict[str, Any]]:
    """``(kind or None, options)`` as the flags give them: ``--judge-options``, then the
    dedicated flags over it. Nothing from the environment (see :func:`resolve`)."""
    options = parse_options(getattr(args, "judge_options", None), "--judge-options")
    for dest, option in OPTION_FLAGS.items():
        value = getattr(args, dest, None)
        if value is not None:
            options[option] = value
    if getattr(args, "no_judge_cache", None):
        options["use_cache"] = False
    if getattr(args, "judge_check", None) is not None:
        options["endpoint_check"] = args.judge_check
    return getattr(args, "judge", None) or None, options


def renamed(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` with old option names (:data:`RENAMED_OPTIONS`) under their current names."""
    out = {}
    for name, value in options.items():
        current = RENAMED_OPTIONS.get(name, name)
        if current in options and current != name:
            continue  # the current name wins over the old one in the same layer
        out[current] = value
    return out


def invalid_policy(args: argparse.Namespace) -> InvalidPolicy:
    """The invalid-verdict policy the flags give (``--max-invalid``, ``--allow-invalid``)."""
    rate = getattr(args, "max_invalid", None)
    return InvalidPolicy(
        max_rate=DEFAULT_MAX_INVALID if rate is None else rate,
        allow=bool(getattr(args, "allow_invalid", None)),
    )


def accepts(kind: str, option: str) -> bool:
    """Whether judge ``kind``'s constructor takes ``option`` (imports only that judge's module)."""
    cls = judge_class(kind)
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return False
    return option in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


@dataclass(frozen=True)
class JudgeSettings:
    """A resolved judge configuration: what :func:`make_judge` gets."""

    kind: str
    options: dict[str, Any] = field(default_factory=dict)

    def build(self, rubric: str = COURSE_CORRECTION) -> Judge:
        """The judge, checked (:meth:`Judge.check`) and with a name usable in lm-eval's keys.

        ``rubric``: what it judges (``overrefusal``: the over-refusal judge of this kind).
        """
        judge = make_judge(self.kind, rubric=rubric, **self.options)
        judge.check()
        if "," in judge.name:
            raise JudgeConfigError(f"judge name {judge.name!r} must not contain a comma")
        return judge

    def key(self) -> str:
        """Canonical text of this configuration (one judge object per key in a process)."""
        return json.dumps([self.kind, self.options], sort_keys=True, default=str)


def resolve(
    kind: Any = None,
    options: Any = None,
    *,
    defaults: Mapping[str, Any] | None = None,
    kind_source: str = "--judge",
    options_source: str = "--judge-options",
    env: Mapping[str, str] | None = None,
) -> JudgeSettings:
    """The judge settings from explicit values, the environment and a tool's ``defaults``.

    See the module docstring for the precedence. ``kind_source`` and
    ``options_source`` name where the explicit values came from, for errors.
    """
    env = os.environ if env is None else env
    env_kind = (env.get(ENV_KIND) or "").strip().lower() or None
    if kind is not None and not isinstance(kind, str):
        raise JudgeConfigError(f"{kind_source}: expected a judge kind, got {kind!r}")
    chosen = ((kind or "").strip() or env_kind or DEFAULT_KIND).lower()
    if chosen not in JUDGE_KINDS:
        raise JudgeConfigError(f"unknown judge {chosen!r}; choose one of: {', '.join(JUDGE_KINDS)}")
    if options is not None and not isinstance(options, Mapping):
        raise JudgeConfigError(f"{options_source}: expected an object, got {options!r}")
    merged: dict[str, Any] = renamed(defaults or {})
    if env.get(ENV_OPTIONS):
        if chosen == env_kind:
            merged.update(renamed(parse_options(env[ENV_OPTIONS], f"${ENV_OPTIONS}")))
        elif env_kind is None:
            log.warning(
                "$%s is ignored: set $%s to the judge kind it is for", ENV_OPTIONS, ENV_KIND
            )
    merged.update(renamed(options or {}))
    for option in CONVENIENCES & merged.keys():
        if not accepts(chosen, option):
            del merged[option]
    return JudgeSettings(chosen, merged)


def judge_from_args(
    args: argparse.Namespace,
    *,
    defaults: Mapping[str, Any] | None = None,
    rubric: str = COURSE_CORRECTION,
) -> Judge:
    """Resolve the flags (:func:`explicit_settings`, :func:`resolve`) and build the checked judge
    (``rubric``: what it judges, see :func:`cc_tasks.judges.make_judge`)."""
    kind, options = explicit_settings(args)
    return resolve(kind, options, defaults=defaults).build(rubric)


__all__ = [
    "CONVENIENCES",
    "DEPRECATED_FLAGS",
    "ENV_KIND",
    "ENV_OPTIONS",
    "FLAGS",
    "OPTION_FLAGS",
    "RENAMED_OPTIONS",
    "JudgeSettings",
    "accepts",
    "add_judge_flags",
    "explicit_settings",
    "invalid_policy",
    "judge_from_args",
    "renamed",
    "resolve",
]
