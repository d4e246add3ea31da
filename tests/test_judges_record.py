"""The verdict record and the invalid-verdict check, the same for c2-eval, c2-judge and the gate."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from test_c2_eval import pku_row, write_jsonl

from cc_tasks.errors import RunFailure
from cc_tasks.judges import ERROR, INVALID, JUDGE_KINDS, NO, YES, Judge, JudgeItem, Verdict
from cc_tasks.judges.record import (
    InvalidPolicy,
    InvalidReport,
    example,
    invalid_report,
    judge_batch,
    verdict_record,
)


class ReplyJudge(Judge):
    """Answers every item with one fixed verdict (a judge that ignores the answer format)."""

    kind = "reply"

    def __init__(self, label: str = INVALID, raw: str = "Let me think\n\x1b[31mabout it") -> None:
        self.verdict = Verdict(label, raw=raw)

    def judge(self, items: Sequence[JudgeItem]) -> list[Verdict]:
        return [self.verdict] * len(items)


def test_record_is_plain_json_in_one_shape():
    record = verdict_record(Verdict(YES, "I'm sorry", 3), "rule", "one two three I'm sorry")
    assert record == {
        "continuation": "one two three I'm sorry",
        "label": "yes",
        "corrected": True,
        "position": 3,
        "raw": "I'm sorry",
        "judge": "rule",
    }
    assert json.loads(json.dumps(record)) == record and type(record) is dict
    short = verdict_record(Verdict(INVALID, "x" * 500), "j", raw_chars=200)
    assert "continuation" not in short and len(short["raw"]) == 200
    assert short["corrected"] is None


def test_report_and_policy_threshold():
    verdicts = [Verdict(YES)] * 19 + [Verdict(INVALID, "Maybe")]
    report = invalid_report("j", verdicts)
    assert (report.invalid, report.total, report.example, report.rate) == (1, 20, "Maybe", 0.05)
    assert InvalidPolicy().failure(report) is None  # exactly 5%: allowed
    worse = report + invalid_report("j", [Verdict(INVALID, "??")])
    assert (worse.invalid, worse.total, worse.example) == (2, 21, "Maybe")
    message = InvalidPolicy().failure(worse)
    assert message and "2 of 21 verdicts invalid (9.5%)" in message and "--allow-invalid" in message
    assert InvalidPolicy(allow=True).failure(worse) is None
    assert InvalidPolicy(max_rate=0.1).failure(worse) is None
    with pytest.raises(RunFailure, match=r"more than --max-invalid 0\.05") as err:
        InvalidPolicy().check(worse)
    assert err.value.exit_code == 1
    records = [verdict_record(v, "j") for v in verdicts]  # records count like verdicts
    assert invalid_report("j", records) == report
    assert InvalidReport("j", 0, 0).warning() == "" and not InvalidPolicy().exceeded(
        InvalidReport("j", 0, 0)
    )


def test_example_reply_is_escaped_and_truncated():
    text = "Let me think\n\x1b[31m" + "a" * 200
    shown = example(text)
    assert "\n" not in shown and "\x1b" not in shown and "\\n" in shown and "\\x1b" in shown
    assert shown.endswith("...") and len(shown) < 100
    assert example("Maybe") == "'Maybe'"


def test_batch_must_have_one_verdict_per_item():
    class Short(ReplyJudge):
        def judge(self, items: Sequence[JudgeItem]) -> list[Verdict]:
            return super().judge(items)[:-1]

    items = [JudgeItem("r", "p", "c")] * 3
    verdicts, report = judge_batch(ReplyJudge(), items)
    assert len(verdicts) == 3 and report.invalid == 3
    with pytest.raises(RunFailure, match="returned 2 verdicts for 3 items"):
        judge_batch(Short(), items)


# --------------------------------------------------------------------------- the three callers
def test_c2_eval_filter_reports_invalid_verdicts_with_an_example(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    from cc_tasks.c2_eval import utils

    monkeypatch.setitem(JUDGE_KINDS, "reply", f"{__name__}:ReplyJudge")
    docs = [{"row_id": i, "prompt": f"How {i}?", "prefill": "Sure, step", "k": 10} for i in (1, 2)]
    judge_filter = utils.JudgeFilter(judge="reply", task="c2_eval_k10")
    with caplog.at_level(logging.WARNING, logger="lm_eval.c2_eval"):
        records = judge_filter.apply([["a"], ["b"]], docs)
    record = records[0][0]  # the filter hands lm-eval each record as its JSON text
    assert json.loads(record) == verdict_record(ReplyJudge().verdict, "reply", "a")
    assert judge_filter.run.accounting.entries[-1]["invalid"] == 2
    assert "c2_eval_k10: judge reply: 2 of 2 verdicts invalid (100.0%)" in caplog.text
    assert "'Let me think\\n\\x1b[31mabout it'" in caplog.text


def test_gate_stops_before_the_chunk_on_invalid_or_failed_verdicts(
    caplog: pytest.LogCaptureFixture,
):
    from synth.gate import Gate, judge_records

    def records() -> list[dict[str, Any]]:
        return [
            {
                "prompt": "How?",
                "responses": ["r0"],
                "assistant_prefixes": [f"Sure {i}" for i in range(4)],
                "continuations": ["", "c1", "c2", "c3", "c4"],
            }
            for _ in range(2)
        ]

    recs = records()
    with pytest.raises(RunFailure, match=r"10 of 10 verdicts invalid \(100\.0%\)"):
        judge_records(ReplyJudge(), recs)  # a bare judge gets the default policy
    assert not any("gate" in r for r in recs)  # nothing stored: the chunk is not written
    with caplog.at_level(logging.WARNING):
        judge_records(Gate(ReplyJudge(), InvalidPolicy(allow=True)), recs)
    assert [v["label"] for v in recs[0]["gate"]] == [INVALID] * 5
    assert recs[0]["gate"][0]["judge"] == "reply" and "10 of 10 verdicts invalid" in caplog.text
    failing = ReplyJudge(ERROR, raw="HTTP 401 (AuthenticationError): bad key")
    with pytest.raises(RunFailure, match=r"10 of 10 judgments failed .*HTTP 401"):
        judge_records(Gate(failing), records())
    allowed = records()
    judge_records(Gate(failing, allow_errors=True), allowed)
    assert allowed[0]["gate"][0]["label"] == ERROR
    fine = records()
    judge_records(ReplyJudge(NO, raw="no"), fine)
    assert fine[0]["gate"][0] == {
        "label": "no",
        "corrected": False,
        "position": None,
        "raw": "no",
        "judge": "reply",
    }


def test_c2_eval_exit_status_follows_invalid_verdicts(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tiny_model_dir: str,
):
    """In c2-eval, all invalid verdicts fail the run instead of exiting 0 in silence."""
    from lm_eval._cli import HarnessCLI

    from cc_tasks.c2_eval.options import task_options
    from cc_tasks.cli.eval import main

    def fake_execute(self: Any, args: Any) -> None:  # the accounting as the judge filter fills it
        entry = {"task": "c2_eval_k10", "judge": "x", "paths": 40, "yes": 0, "no": 0}
        task_options(dict(args.metadata)).accounting.add({**entry, "invalid": 40, "errors": 0})

    monkeypatch.setattr(HarnessCLI, "execute", fake_execute)
    rows = write_jsonl(tmp_path / "rows.jsonl", [pku_row(1), pku_row(2)])
    base = ["--data", str(rows), "--model_args", f"pretrained={tiny_model_dir}"]
    assert main(base) == 1
    err = capsys.readouterr().err
    assert "40 of 40 verdicts invalid (100.0%)" in err and "--allow-invalid" in err
    assert main([*base, "--allow-invalid"]) == 0
    assert "warning: judge x: 40 of 40 verdicts invalid" in capsys.readouterr().err
    assert main([*base, "--max-invalid", "2"]) == 2
    assert "--max-invalid: expected a share between 0 and 1" in capsys.readouterr().err
