"""`c2-syn` talks: every option of every subcommand documents itself and its default, and a run
shows progress per request (issue 13, item 5)."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest

from synth.cli import build_parser, main

FILLER = " ".join(f"word{i}" for i in range(85))


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


@pytest.mark.parametrize("name", sorted(subcommands()))
def test_every_option_has_help_and_its_default(name: str) -> None:
    parser = subcommands()[name]
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        flag = action.option_strings[0] if action.option_strings else action.dest
        assert action.help and action.help.strip(), f"c2-syn {name} {flag}: no help text"
        text = action.help % {**vars(action), "prog": parser.prog}
        if action.default not in (None, False, argparse.SUPPRESS):  # shown in --help
            assert "%(default)s" in action.help or str(action.default) in text, (
                f"c2-syn {name} {flag}: help does not show the default {action.default!r}"
            )
    parser.format_help()  # every %(...)s expands


def test_run_help_lists_every_option_with_text(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = capsys.readouterr().out
    assert "--max-requests MAX_REQUESTS" in out and "(default: 50000" in out
    assert "--batch-size" in out and "(default: 8)" in out


def test_two_request_run_shows_progress_per_request(
    tmp_path: Path, tiny_model_dir: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Regression: the bar moved once per 64-request chunk; now after every request (hf backend,
    one request per call with --batch-size 1), with a rate and an ETA."""
    rows = [
        {
            "prompt": f"How can I do bad thing {i}?",
            "response_0": f"First, get item {i}. Then, {FILLER}; next: wait! Done? yes - really.",
            "response_1": "I can't help with that.",
            "is_response_0_safe": False,
            "is_response_1_safe": True,
            "better_response_id": 1,
            "safer_response_id": 1,
        }
        for i in range(2)
    ]
    source = tmp_path / "rows.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    args = ["run", "--source", str(source), "--out", str(tmp_path / "out"),
            "--model", tiny_model_dir, "--max-requests", "2", "--max-new-tokens", "8",
            "--decoding", "sample", "--batch-size", "1"]  # fmt: skip
    assert main(args) == 0
    err = capsys.readouterr().err
    states = re.findall(r"(\d)/2 \[", err)
    assert "1" in states and "2" in states, err[-2000:]  # 1/2 shown before 2/2
    assert states.index("1") < len(states) - 1 - states[::-1].index("2")
    assert re.search(r"1/2 \[\d+:\d+<\d+:\d+", err), err[-2000:]  # elapsed < remaining (ETA)
