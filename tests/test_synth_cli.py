"""`c2-syn` talks: every option of every subcommand documents itself and its default, a run
shows progress per request, a backend is one class plus one registry line, and a run that
generated but kept nothing fails with exit 1 and says what to do."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from synth.backends import BACKEND_KINDS, Backend, Decoding, Generation, Turn
from synth.cli import build_parser, main
from synth.responses import read_records, responses_dir

FILLER = " ".join(f"word{i}" for i in range(85))


def pku_row(i: int, prompt: str | None = None) -> dict[str, Any]:
    """A PKU-SafeRLHF v0 row that qualifies for C²-SYN (a how-request, a long unsafe response
    with ten punctuation marks), unless ``prompt`` says otherwise."""
    return {
        "prompt": f"How can I do bad thing {i}?" if prompt is None else prompt,
        "response_0": f"First, get item {i}. Then, {FILLER}; next: wait! Done? yes - really.",
        "response_1": "I can't help with that.",
        "is_response_0_safe": False,
        "is_response_1_safe": True,
        "better_response_id": 1,
        "safer_response_id": 1,
    }


def write_source(path: Path, n: int) -> Path:
    """``n`` qualifying rows as a JSONL source."""
    path.write_text("".join(json.dumps(pku_row(i)) + "\n" for i in range(n)), encoding="utf-8")
    return path


class ToyBackend(Backend):
    """A whole backend in one class: its flag, its default decoding, the packages it records."""

    kind = "toy"
    summary = "a toy that says --toy-reply"
    default_decoding = "beam"
    packages = ()

    @classmethod
    def add_arguments(cls, group: argparse._ArgumentGroup) -> None:
        group.add_argument(
            "--toy-reply",
            default="I cannot help with that.",
            help="what the toy says to every turn (default: %(default)s)",
        )

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> dict[str, Any]:
        return {**super().from_args(args), "reply": args.toy_reply}

    def __init__(
        self, model: str, decoding: Decoding, *, reply: str, system_prompt: str | None = None
    ) -> None:
        super().__init__(model, decoding, system_prompt)
        self.reply = reply

    def generate(self, turns: Sequence[Turn]) -> list[Generation]:
        return [Generation(text=" " + self.reply, tokens=len(self.reply.split())) for _ in turns]


@pytest.fixture
def toy(monkeypatch: pytest.MonkeyPatch) -> str:
    """The one registry line that adds the toy backend."""
    monkeypatch.setitem(BACKEND_KINDS, "toy", f"{__name__}:ToyBackend")
    return "toy"


def toy_run(source: Path, out: Path, *extra: str) -> list[str]:
    return ["run", "--source", str(source), "--out", str(out), "--backend", "toy",
            "--model", "toy-model", "--no-progress", *extra]  # fmt: skip


def subcommand_names() -> list[str]:
    """The subcommands, as `c2-syn --help` lists them: {generate,pairs,...}."""
    return re.search(r"\{([\w,-]+)\}", build_parser().format_usage())[1].split(",")


def help_entries(text: str) -> dict[str, str]:
    """Each option's help text in `--help` output (wrapped lines joined), by its first flag."""
    entries: dict[str, str] = {}
    flag = None
    for line in text.splitlines():
        if m := re.match(r"^  (-[^ ,]+)\S*(?: [^ ]+)*?(?:\s{2,}(.*))?$", line):
            flag = m[1]
            entries[flag] = m[2] or ""
        elif flag and line.startswith("    ") and line.strip():
            entries[flag] += " " + line.strip()
        else:
            flag = None
    return entries


REQUIRED = {"push": ["--repo-id", "ORG/NAME"]}  # besides --out


@pytest.mark.parametrize("name", subcommand_names())
def test_every_option_has_help_and_its_default(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main([name, "--help"])  # every %(...)s expands
    entries = help_entries(capsys.readouterr().out)
    given = ["--out", "OUT", *REQUIRED.get(name, [])]
    defaults = vars(build_parser().parse_args([name, *given]))
    assert "--out" in entries and len(entries) > 2, entries
    for flag, text in entries.items():
        if flag in ("-h", *given):
            continue
        assert text.strip(), f"c2-syn {name} {flag}: no help text"
        dest = flag.lstrip("-").replace("-", "_")
        assert dest in defaults, f"c2-syn {name} {flag}: no option {dest!r} in the parsed flags"
        if defaults[dest] not in (None, False):  # shown in --help
            assert str(defaults[dest]) in text, (
                f"c2-syn {name} {flag}: help does not show the default {defaults[dest]!r}"
            )


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
    source = write_source(tmp_path / "rows.jsonl", 2)
    args = ["run", "--source", str(source), "--out", str(tmp_path / "out"),
            "--model", tiny_model_dir, "--max-requests", "2", "--max-new-tokens", "8",
            "--decoding", "sample", "--batch-size", "1"]  # fmt: skip
    assert main(args) == 0
    err = capsys.readouterr().err
    states = re.findall(r"(\d)/2 \[", err)
    assert "1" in states and "2" in states, err[-2000:]  # 1/2 shown before 2/2
    assert states.index("1") < len(states) - 1 - states[::-1].index("2")
    assert re.search(r"1/2 \[\d+:\d+<\d+:\d+", err), err[-2000:]  # elapsed < remaining (ETA)


def test_a_backend_is_one_class_and_one_registry_line(
    toy: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The toy backend above plus its registry line: its flag, help group, summary and default
    decoding appear in `c2-syn run --help`, and a real run passes its flag to it."""
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "toy backend: --toy-reply TOY_REPLY what the toy says to every turn" in out
    assert "{hf,vllm,openai,toy}" in out and "or a toy that says --toy-reply" in out
    assert "greedy for vllm/openai, beam for toy" in out

    source = write_source(tmp_path / "rows.jsonl", 2)
    reply = "Stop: I will not go on with this."
    assert main(toy_run(source, tmp_path / "out", "--toy-reply", reply)) == 0
    manifest, records = read_records(tmp_path / "out")
    assert [r["responses"][0] for r in records] == [reply, reply]  # r0: the toy's plain reply
    assert all(r["continuations"][1:] == [" " + reply] * 4 for r in records)
    assert manifest["synthesizer"]["backend"] == "toy"
    assert manifest["synthesizer"]["decoding"].startswith("beam(")  # the class's default
    assert list(manifest["software"]) == ["course-correction"]  # the class's packages
    assert (tmp_path / "out" / "README.md").is_file()


def test_building_the_parser_imports_no_backend_library() -> None:
    """Backend classes are imported to build `c2-syn --help`: their heavy imports stay inside
    methods, so the parser (and every bad-flag error) comes without torch, vLLM or openai."""
    code = (
        "import sys; from synth.cli import build_parser; build_parser(); "
        "print(sorted({'torch', 'transformers', 'vllm', 'openai'} & set(sys.modules)))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"


def test_run_whose_gate_drops_every_request_exits_1_and_says_what_to_do(
    toy: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Regression: `c2-syn run --judge rule` generated, the gate dropped every request, and the
    run exited 2 ("no pairs to publish"), the code for "nothing expensive has run". Now it is
    exit 1 with one line that names the cause and the fix, and the fix works."""
    source = write_source(tmp_path / "rows.jsonl", 3)
    out = tmp_path / "out"
    complies = "Sure, here are the steps."  # the rule judge sees no refusal, no correction
    args = toy_run(source, out, "--toy-reply", complies, "--max-requests", "3", "--judge", "rule")
    assert main(args) == 1  # after generation: a failed run, not bad input
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("c2-syn: error: no pairs to publish: of 3 requests, 3 failed the ")
    assert f"`c2-syn pairs --out {out} --gate-action flag`" in err[0]
    assert len(list(responses_dir(out).glob("chunk-*.jsonl"))) == 1  # the generation is kept
    assert not (out / "README.md").exists()

    assert main(["pairs", "--out", str(out), "--gate-action", "flag"]) == 0  # the advice works
    assert main(["card", "--out", str(out)]) == 0
    assert (out / "README.md").is_file()
