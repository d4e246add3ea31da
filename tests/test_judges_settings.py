"""Judge settings: one resolver and one set of flag names for c2-eval, c2-judge and the C²-SYN gate."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from cc_tasks.judges import JudgeConfigError
from cc_tasks.judges.rule import RuleJudge
from cc_tasks.judges.settings import (
    ENV_KIND,
    ENV_OPTIONS,
    FLAGS,
    add_judge_flags,
    explicit_settings,
    invalid_policy,
    judge_from_args,
    resolve,
)

OPENAI_ENV = {ENV_KIND: "openai", ENV_OPTIONS: json.dumps({"model": "gpt-4o"})}


def parse(*argv: str, **aliases: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(allow_abbrev=False)
    add_judge_flags(parser, aliases={k.replace("_", "-"): v for k, v in aliases.items()})
    return parser.parse_args(list(argv))


def test_precedence_defaults_env_options_flags():
    env = {ENV_KIND: "openai", ENV_OPTIONS: json.dumps({"model": "gpt-4o", "seed": 1})}
    assert resolve(env=env) == resolve(env=env)  # frozen value object
    s = resolve(env=env, defaults={"seed": 0, "timeout": 5.0})
    assert (s.kind, s.options) == ("openai", {"seed": 1, "timeout": 5.0, "model": "gpt-4o"})
    args = parse("--judge-options", '{"model": "m1", "max_tokens": 8}', "--judge-model", "m2")
    s = resolve(*explicit_settings(args), env=env)
    assert s.options == {"model": "m2", "seed": 1, "max_tokens": 8}  # flags > JSON > env
    assert resolve(env={}).kind == "rule" and resolve(env={}).options == {}


def test_env_options_apply_only_to_the_kind_the_env_names(caplog: pytest.LogCaptureFixture):
    """The options of $C2_EVAL_JUDGE=openai never reach another kind."""
    s = resolve("rule", None, env=OPENAI_ENV)
    assert (s.kind, s.options) == ("rule", {})
    assert isinstance(s.build(), RuleJudge)
    assert resolve("OpenAI ", None, env=OPENAI_ENV).options == {"model": "gpt-4o"}
    assert resolve("hf", {"model": "x"}, env=OPENAI_ENV).options == {"model": "x"}
    # options without a kind are ignored (with a warning), never applied to the default rule
    s = resolve(env={ENV_OPTIONS: '{"model": "gpt-4o"}'})
    assert (s.kind, s.options) == ("rule", {})
    assert "C2_EVAL_JUDGE_OPTIONS is ignored" in caplog.text


def test_conveniences_are_dropped_for_judges_without_them():
    args = parse("--judge", "rule", "--no-judge-cache", "--no-judge-probe")
    kind, options = explicit_settings(args)
    assert (kind, options) == ("rule", {"use_cache": False, "endpoint_check": False})
    s = resolve(kind, options, defaults={"progress": False}, env={})
    assert s.options == {}
    assert isinstance(s.build(), RuleJudge)
    s = resolve("openai", options, defaults={"progress": False}, env={})
    assert s.options == {"use_cache": False, "endpoint_check": False, "progress": False}
    # a real option is never dropped: the judge says it does not take it
    with pytest.raises(JudgeConfigError, match="judge 'rule'"):
        judge_from_args(parse("--judge", "rule", "--judge-model", "gpt-4o"))


def test_the_endpoint_check_flag_and_its_old_name(capsys: pytest.CaptureFixture[str]):
    """``--judge-check`` sets ``endpoint_check``; ``--judge-probe`` (its old name, easily taken
    for the probe judge) still works but is hidden."""
    for flag, value in [("--judge-check", True), ("--no-judge-check", False)]:
        assert explicit_settings(parse(flag))[1] == {"endpoint_check": value}
        old = flag.replace("check", "probe")
        assert explicit_settings(parse(old))[1] == {"endpoint_check": value}
    parser = argparse.ArgumentParser()
    add_judge_flags(parser)
    text = parser.format_help()
    assert "--judge-check" in text and "--judge-probe" not in text
    # an old spelling aliased to the old name (c2-judge's --probe) lands on the new option
    old_alias = parse("--probe", **{"--probe": "--judge-probe"})
    assert explicit_settings(old_alias)[1] == {"endpoint_check": True}
    s = resolve("openai", {"probe": False}, defaults={"endpoint_check": True}, env={})
    assert s.options == {"endpoint_check": False}  # the old option name, renamed in its layer


@pytest.mark.parametrize(
    ("kind", "options", "source", "message"),
    [
        ("gpt5", None, "--judge", "unknown judge 'gpt5'; choose one of: rule, openai, hf"),
        (3, None, "metadata 'judge'", "metadata 'judge': expected a judge kind"),
        ("rule", [1], "metadata 'judge_options'", "metadata 'judge_options': expected an object"),
    ],
)
def test_bad_settings_are_one_line_naming_the_source(kind, options, source, message):
    with pytest.raises(JudgeConfigError) as err:
        resolve(
            kind, options, kind_source=source, options_source="metadata 'judge_options'", env={}
        )
    assert message in str(err.value) and "\n" not in str(err.value)
    assert err.value.exit_code == 2


def test_bad_env_or_flag_json():
    with pytest.raises(JudgeConfigError, match=r"\$C2_EVAL_JUDGE_OPTIONS: not valid JSON"):
        resolve(env={ENV_KIND: "openai", ENV_OPTIONS: "{model: 1}"})
    with pytest.raises(JudgeConfigError, match="--judge-options: expected a JSON object"):
        explicit_settings(parse("--judge-options", "[1]"))


def test_invalid_policy_from_flags():
    assert invalid_policy(parse()).max_rate == 0.05 and not invalid_policy(parse()).allow
    policy = invalid_policy(parse("--max-invalid", "0", "--allow-invalid"))
    assert (policy.max_rate, policy.allow) == (0.0, True)
    with pytest.raises(JudgeConfigError, match="--max-invalid"):
        invalid_policy(parse("--max-invalid", "12"))


def test_every_cli_has_the_same_judge_flags(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """c2-eval, c2-judge and c2-syn take one set of judge flags (old spellings hidden)."""
    from cc_tasks.cli.eval import build_parser as eval_parser
    from cc_tasks.cli.judge import build_parser as judge_parser
    from synth.cli import build_parser as syn_parser
    from synth.gate import Gate
    from synth.stages import _judge

    def option_strings(parser: argparse.ArgumentParser) -> set[str]:
        return {s for action in parser._actions for s in action.option_strings}

    def sub(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
        (subparsers,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        return subparsers.choices[name]

    parsers = {
        "c2-eval": eval_parser(),
        "c2-judge": sub(judge_parser(), "rejudge"),
        "c2-syn generate": sub(syn_parser(), "generate"),
        "c2-syn run": sub(syn_parser(), "run"),
    }
    for name, parser in parsers.items():
        assert set(FLAGS) <= option_strings(parser), name
    # the gate's old spellings still parse into the shared names
    args = parsers["c2-syn generate"].parse_args(
        ["--out", str(tmp_path), "--gate-judge", "rule", "--gate-judge-options", "{}"]
    )
    assert (args.judge, args.judge_options) == ("rule", "{}")
    # for the gate too: the environment's openai options do not reach --judge rule
    monkeypatch.setenv(ENV_KIND, "openai")
    monkeypatch.setenv(ENV_OPTIONS, json.dumps({"model": "gpt-4o"}))
    gate = _judge(args)
    assert isinstance(gate, Gate) and isinstance(gate.judge, RuleJudge)
    assert gate.describe()["kind"] == "rule"
    # and the environment never turns the gate on
    assert _judge(parsers["c2-syn generate"].parse_args(["--out", str(tmp_path)])) is None


def test_c2_eval_task_side_uses_the_same_resolver(monkeypatch: pytest.MonkeyPatch):
    from cc_tasks.c2_eval.options import RunOptions, resolve_judge

    monkeypatch.setenv(ENV_KIND, "openai")
    monkeypatch.setenv(ENV_OPTIONS, json.dumps({"model": "gpt-4o"}))
    assert resolve_judge({"judge": "rule"}) == ("rule", {})
    # the option's old name "probe" is still read, under its new name "endpoint_check"
    assert resolve_judge({"judge_options": {"probe": False}}) == (
        "openai",
        {"model": "gpt-4o", "endpoint_check": False},
    )
    kind, options = resolve_judge({"judge": "rule", "judge_options": {"use_cache": False}})
    assert isinstance(RunOptions(judge=kind, judge_options=options).built_judge, RuleJudge)
