"""Every command in the README works as written.

The README's fenced ``bash`` blocks are what a newcomer copies. Each command is checked against
the repository: its entry point exists and answers ``--help``, every flag it passes is one that
entry point (or lm-eval, behind ``c2-eval``) knows, every repository file it names exists, and
every ``runs/`` folder it reads is written by another README command. The cheap commands run as
written: the include path and the embedded model's folder, ``c2-report`` on a small run folder,
and the bad-input example, which must exit 2 with one line. The expensive ones (a model run,
training, an upload) are only checked, never run. The same checker, given a command with a
missing script or an unknown flag, must report both.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BIN = Path(sys.executable).parent
SHARED_DATA_NAME = "c2_eval_pku_saferlhf_test500.jsonl"  # the 500 rows beside the repository
OUTPUT_FLAGS = {"--output_path", "-o", "--output-dir", "--out", "--output_dir", "--html"}
OUTPUT_FLAGS |= {"--json", "--csv", "--plot"}
SETUP = ("pip ",)  # installs: the CI runs them (.ci/run), a unit test cannot
KS = (10, 20, 30, 40, 50, 60, 70, 80)


@dataclass
class Command:
    """One command of the README: its text, its words, and the commands inside ``$(...)``."""

    text: str
    words: list[str]
    inner: list[str] = field(default_factory=list)
    expect_exit: int | None = None  # from a trailing "# exit N" comment


def commands(markdown: str) -> list[Command]:
    """The README's bash commands: continuation lines joined, ``&&`` chains split, installs out."""
    found = []
    for block in re.findall(r"```bash\n(.*?)```", markdown, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            expect = re.search(r"#\s*exit (\d)", line)
            inner = re.findall(r"\$\(([^)]*)\)", line)
            for n, sub in enumerate(inner):
                line = line.replace(f"$({sub})", f"SUBST{n}", 1)
            for part in line.split("&&"):
                if part.strip().startswith(SETUP):
                    continue
                words = shlex.split(part, comments=True)
                while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
                    words.pop(0)  # OMP_NUM_THREADS=1 ...
                if words:
                    found.append(
                        Command(part.strip(), words, inner, int(expect[1]) if expect else None)
                    )
    return found


@functools.cache
def help_text(*argv: str) -> str:
    """``argv --help`` (stdout and stderr); an entry point that cannot answer fails the test."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(
        [*argv, "--help"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    if proc.returncode != 0:
        return ""
    return proc.stdout + proc.stderr


def knows(help_: str, flag: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", help_) is not None


def flags_of(words: list[str]) -> list[str]:
    return [w.split("=", 1)[0] for w in words if re.fullmatch(r"--?[A-Za-z][\w-]*(=.*)?", w)]


def repo_paths(words: list[str]) -> list[str]:
    """Words (and ``key=value`` parts, JSON values) that name a file or folder of the repository."""
    top = {p.name for p in ROOT.iterdir()} - {"runs", ".git"}
    pieces = []
    for word in words:
        try:
            value = json.loads(word)
        except ValueError:
            value = None
        if isinstance(value, dict):
            pieces += [v for v in value.values() if isinstance(v, str)]
            continue
        for part in word.split(","):
            pieces.append(part.split("=", 1)[-1])
    return [p for p in pieces if "/" in p and p.split("/", 1)[0] in top]


def check(cmd: Command, produced: set[str]) -> list[str]:
    """Why ``cmd`` would not run as written (empty when it would)."""
    words, problems = cmd.words, []
    head = words[0]
    helps: list[str] = []
    checked = words[1:]
    if head in ("c2-judge", "c2-syn"):
        helps = [help_text(str(BIN / head), words[1])]
        if words[1] == "validate" and not {"--data", "--gold"} & set(words):
            problems.append(f"{cmd.text}: the gold set rebuilds its prompts from --data FILE")
    elif head in ("c2-eval", "c2-report"):
        helps = [help_text(str(BIN / head))]
        if head == "c2-eval":  # every other flag goes to lm-eval unchanged
            helps.append(help_text(str(BIN / "lm-eval"), "run"))
    elif head in ("lm_eval", "lm-eval"):
        helps = [help_text(str(BIN / "lm-eval"), "run")]
    elif head == "accelerate" and words[1:2] == ["launch"]:
        script = next((i for i, w in enumerate(words) if w.endswith(".py")), None)
        if script is None:
            return [f"{cmd.text}: no script to launch"]
        checked = words[2:script]
        helps = [help_text(str(BIN / "accelerate"), "launch")]
        if not (ROOT / words[script]).is_file():
            return [f"{cmd.text}: no such script {words[script]}"]
        script_help = help_text(sys.executable, words[script])
        if not script_help:
            problems.append(f"{cmd.text}: {words[script]} --help fails")
        problems += [
            f"{cmd.text}: {words[script]} has no flag {f}"
            for f in flags_of(words[script + 1 :])
            if not knows(script_help, f)
        ]
    elif head == "c2-train":  # accelerate launch's options, the recipe, then recipes/dpo.py's
        recipe = next(
            (
                i
                for i, w in enumerate(words)
                if w.endswith(".yaml") and i and not words[i - 1].startswith("--config")
            ),
            None,
        )
        if recipe is None:
            return [f"{cmd.text}: no recipe to train"]
        checked = [w for w in words[1:recipe] if w != "--check"]
        helps = [help_text(str(BIN / "accelerate"), "launch")]
        script_help = help_text(sys.executable, "recipes/dpo.py")
        problems += [
            f"{cmd.text}: recipes/dpo.py has no flag {f}"
            for f in flags_of(words[recipe + 1 :])
            if not knows(script_help, f)
        ]
    elif head == "python" and words[1:2] == ["-m"]:
        helps, checked = [help_text(sys.executable, "-m", words[2])], words[3:]
    elif head == "python" and words[1].endswith(".py"):
        if not (ROOT / words[1]).is_file():
            return [f"{cmd.text}: no such script {words[1]}"]
        helps, checked = [help_text(sys.executable, words[1])], words[2:]
    elif head == "make":
        targets = re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M)
        return [f"{cmd.text}: no make target {t}" for t in words[1:] if t not in targets]
    else:
        return [f"{cmd.text}: unknown entry point {head!r}"]
    if not any(helps):
        problems.append(f"{cmd.text}: {head} --help fails")
    problems += [
        f"{cmd.text}: unknown flag {f}"
        for f in flags_of(checked)
        if not any(knows(h, f) for h in helps)
    ]
    problems += [
        f"{cmd.text}: no such file {p}" for p in repo_paths(words) if not (ROOT / p).exists()
    ]
    for word in words:
        if word.startswith("../shared/data/") and word != f"../shared/data/{SHARED_DATA_NAME}":
            problems.append(f"{cmd.text}: {word} is not the 500-row file {SHARED_DATA_NAME}")
    outputs = {b for a, b in itertools.pairwise(words) if a in OUTPUT_FLAGS}
    for word in words:
        for part in word.split(","):
            run = part.split("=", 1)[-1]
            if run.startswith("runs/") and run not in outputs and run not in produced:
                problems.append(f"{cmd.text}: reads {run}, which no README command writes")
    return problems


def produced_by(cmds: list[Command]) -> set[str]:
    return {b for c in cmds for a, b in itertools.pairwise(c.words) if a in OUTPUT_FLAGS}


README_COMMANDS = commands(README.read_text(encoding="utf-8"))


def test_the_readme_has_its_marked_commands() -> None:
    text = README.read_text(encoding="utf-8")
    ci = re.search(r"<!-- ci-test-command -->\n```bash\n(.*)\n```\n<!-- /ci-test-command -->", text)
    assert ci and ci[1].endswith("python -m pytest -q")  # .ci/run extracts exactly this line
    main = re.search(r"<!-- main-command -->\n```bash\n(.*)\n```\n<!-- /main-command -->", text)
    assert main and "--output_path runs/before" in main[1] and "--log_samples" in main[1]
    assert len(README_COMMANDS) >= 15


@pytest.mark.parametrize("cmd", README_COMMANDS, ids=lambda c: c.text[:60])
def test_readme_command_entry_point_flags_and_paths(cmd: Command) -> None:
    assert check(cmd, produced_by(README_COMMANDS)) == []
    for inner in cmd.inner:  # $(python -m cc_tasks) and the like run below
        assert inner.split()[:2] == ["python", "-m"], inner


def test_the_checker_reports_a_missing_script_an_unknown_flag_and_an_unmade_run() -> None:
    bad = commands(
        "```bash\n"
        "python demo/no_such_demo.py --quick\n"
        "c2-report runs/nowhere --no-such-flag --out runs/r\n"
        "accelerate launch recipes/dpo.py recipes/smollm2-135m-instruct/dpo/config_cpu.yaml --no_such_key 1\n"
        "c2-syn run --source cc_tasks/no_such_rows.jsonl --out runs/x\n"
        "c2-judge validate --judge probe --split test\n"
        "```\n"
    )
    problems = [p for c in bad for p in check(c, produced_by(bad))]
    assert any("no such script demo/no_such_demo.py" in p for p in problems)
    assert any("unknown flag --no-such-flag" in p for p in problems)
    assert any("reads runs/nowhere" in p for p in problems)
    assert any("has no flag --no_such_key" in p for p in problems)
    assert any("no such file cc_tasks/no_such_rows.jsonl" in p for p in problems)
    assert any("rebuilds its prompts from --data" in p for p in problems)


def run_as_written(text: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(
        ["bash", "-c", text], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_include_path_command_prints_the_task_folder(tmp_path: Path) -> None:
    inner = {i for c in README_COMMANDS for i in c.inner}
    assert "python -m cc_tasks" in inner
    proc = run_as_written("python -m cc_tasks", tmp_path)
    assert proc.returncode == 0, proc.stderr
    # the include path holds both task folders (C²-EVAL and over-refusal)
    assert (Path(proc.stdout.strip()) / "c2_eval" / "c2_eval_k10.yaml").is_file()


def test_embedded_model_command_prints_a_model_folder(
    embedded_model_dir: str, tmp_path: Path
) -> None:
    assert "python -m cc_tasks.embedded" in README.read_text(encoding="utf-8")
    proc = run_as_written("python -m cc_tasks.embedded", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()) == Path(embedded_model_dir)
    assert (Path(proc.stdout.strip()) / "config.json").is_file()


def lm_eval_results(root: Path, corr: list[float], peft: str | None) -> None:
    """A results file in the shape lm-eval writes for ``c2-eval --output_path`` (no samples)."""
    results = {
        f"c2_eval_k{k}": {"alias": f" - c2_eval_k{k}", "corr,probe": v, "corr_stderr,probe": 0.05}
        for k, v in zip(KS, corr, strict=True)
    }
    results["c2_eval"] = {"corr,probe": sum(corr) / len(corr), "corr_stderr,probe": 0.02}
    args = "pretrained=/m/SmolLM2" + (f",peft={peft}" if peft else "")
    data = {
        "results": results,
        "n-samples": {f"c2_eval_k{k}": {"original": 500, "effective": 10} for k in KS},
        "config": {"model": "hf", "model_args": args, "limit": 10},
    }
    out = root / "smol" / "results_2000-01-01T00-00-00.000000.json"
    out.parent.mkdir(parents=True)
    out.write_text(json.dumps(data), encoding="utf-8")


def test_report_command_runs_as_written_on_two_runs(tmp_path: Path) -> None:
    (cmd,) = [c for c in README_COMMANDS if c.words[0] == "c2-report"]
    lm_eval_results(tmp_path / "runs" / "before", [0.1] * 8, None)
    lm_eval_results(tmp_path / "runs" / "after", [0.3] * 8, "runs/dpo-smoke")
    proc = run_as_written(cmd.text, tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = (tmp_path / "runs" / "report" / "report.md").read_text(encoding="utf-8")
    assert "before" in report and "after" in report
    html = cmd.words[cmd.words.index("--html") + 1]
    assert (tmp_path / html).stat().st_size > 1_000


def test_bad_input_example_exits_2_with_one_line(tmp_path: Path) -> None:
    bad = [c for c in README_COMMANDS if c.expect_exit is not None]
    assert bad, "the README shows what a bad input does"
    for cmd in bad:
        proc = run_as_written(cmd.text, tmp_path)
        assert proc.returncode == cmd.expect_exit == 2, proc.stderr[-2000:]
        lines = [x for x in proc.stderr.splitlines() if x.strip()]
        assert len(lines) == 1 and "error:" in lines[0], proc.stderr[-2000:]


def test_method_doc_lists_the_openers_and_triggers_the_code_uses() -> None:
    """docs/method.md states the method's parameters; the code must use exactly those."""
    from cc_tasks.prefill import OPENERS
    from synth.truncate import TRIGGERS

    text = (ROOT / "docs" / "method.md").read_text(encoding="utf-8")

    def listed(heading: str) -> list[str]:
        section = text.split(heading, 1)[1].split("\n#", 1)[0]
        return [line[2:] for line in section.splitlines() if line.startswith("- ")]

    assert listed("### 2.7 ") == list(OPENERS)
    assert listed("### 3.8 ") == list(TRIGGERS)


def test_readme_links_resolve() -> None:
    text = README.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [t for t in targets if not t.startswith(("http://", "https://"))]
    assert local and [t for t in local if not (ROOT / t).exists()] == []
