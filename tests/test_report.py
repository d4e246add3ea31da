"""c2-report and the Corr@k result schema (cc_tasks.results): lm-eval results and c2-judge's
corr.json -> one side-by-side table with intervals, n and partial marks, CSV/JSON and a plot."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, ClassVar

import pytest

from cc_tasks.cli.report import main
from cc_tasks.judges import JUDGE_KINDS, Judge, JudgeItem, Verdict
from cc_tasks.results import CORR_SCHEMA, FULL_ROWS, ReportError, load_runs
from cc_tasks.stats import wilson, wilson_interval

KS = (10, 20, 30, 40, 50, 60, 70, 80)
DATE = "2026-01-02T03-04-05.678901"


def strict_json(text: str) -> Any:
    """json.loads that refuses NaN/Infinity, as browsers and jq do."""

    def refuse(name: str) -> Any:
        raise ValueError(f"not strict JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def fake_results(values: list[float], judge: str, pretrained: str, peft: str | None = None) -> dict:
    """The shape lm-eval 0.4.13 writes for our tasks (results, n-samples, config), no samples."""
    results: dict = {}
    for k, v in zip(KS, values, strict=True):
        results[f"c2_eval_k{k}"] = {
            "alias": f" - c2_eval_k{k}",
            f"corr,{judge}": v,
            f"corr_stderr,{judge}": 0.01,
            f"invalid,{judge}": 1,
            f"errors,{judge}": 0,
            f"corr_pos,{judge}": 5.0,
            f"corr_pos_stderr,{judge}": "N/A",
        }
    results["c2_eval"] = {f"corr,{judge}": sum(values) / 8, f"corr_stderr,{judge}": 0.004}
    args = f"pretrained={pretrained}" + (f",peft={peft}" if peft else "")
    return {
        "results": results,
        "n-samples": {f"c2_eval_k{k}": {"original": 500, "effective": 20} for k in KS},
        "config": {"model": "hf", "model_args": args, "limit": None},
    }


def write(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def test_two_runs_side_by_side_with_intervals_n_and_partial_marks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
    after = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2]
    write(
        tmp_path / "before" / "smol" / "results_2026.json",
        fake_results(before, "rule", "/m/SmolLM2"),
    )
    write(
        tmp_path / "after" / "smol" / "results_2026.json",
        fake_results(after, "openai:gpt-4o", "/m/SmolLM2", peft="/runs/adapter"),
    )
    out = tmp_path / "report"
    argv = [str(tmp_path / "before"), str(tmp_path / "after"), "--label", "before"]
    rc = main([*argv, "--label", "after", "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    # 20 rows, 1 path each, 1 invalid -> n = 19 valid verdicts behind each Corr@k; Wilson at 0.1
    low, high = wilson_interval(0.1, 19)
    assert f"| before ⚠ partial | rule | 20/500 | 0.100 [{low:.3f}, {high:.3f}] n=19 |" in text
    assert "| after ⚠ partial | openai:gpt-4o | 20/500 | 0.900 [" in text
    assert "0.450 (bootstrap n/a (no samples))" in text  # no samples beside: no made-up interval
    assert "± " not in text  # lm-eval's stderr (0 at 0 of n) is no longer shown
    assert "95% Wilson score interval" in text and "bootstrap over rows" in text
    assert "⚠ before: partial: 20/500 rows" in text
    assert "before: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.45]" in text
    rows = list(csv.DictReader((out / "report.csv").open()))
    assert [r["run"] for r in rows] == ["before", "after"]
    assert float(rows[1]["corr@10"]) == 0.9 and rows[1]["paths"] == "160"
    assert rows[1]["invalid"] == "8" and rows[1]["n@10"] == "19" and rows[1]["partial"] == "True"
    assert float(rows[0]["low@10"]) == pytest.approx(low)
    data = strict_json((out / "report.json").read_text())
    assert data[1]["model"] == "SmolLM2 + adapter"
    assert data[0]["points"]["10"]["ci"] == pytest.approx([low, high])
    assert data[0]["partial"] is True and data[0]["rows"] == 20
    png = (out / "corr_at_k.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


def test_full_run_is_not_partial_and_limit_is(tmp_path: Path) -> None:
    data = fake_results([0.5] * 8, "rule", "m")
    data["n-samples"] = {f"c2_eval_k{k}": {"original": 500, "effective": 500} for k in KS}
    (run,) = load_runs([write(tmp_path / "full" / "results_a.json", data)])
    assert run.rows == FULL_ROWS and not run.partial and run.partial_note == ""
    data["config"]["limit"] = 500.0
    (run,) = load_runs([write(tmp_path / "limited" / "results_a.json", data)])
    assert run.partial and run.partial_note == "partial: 500/500 rows, --limit 500"


def test_mean_is_computed_when_the_group_is_missing(tmp_path: Path) -> None:
    data = fake_results([0.5] * 4 + [1.0] * 4, "rule", "m")
    del data["results"]["c2_eval"]
    (run,) = load_runs([write(tmp_path / "results_x.json", data)])
    assert run.corr_mean == pytest.approx(0.75) and run.corr_mean_ci is None


def test_not_a_result_file_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = write(tmp_path / "results_bad.json", {"results": {"arc_easy": {"acc,none": 0.5}}})
    assert main([str(bad)]) == 2
    assert "no c2_eval_k* 'corr' results" in capsys.readouterr().err
    with pytest.raises(ReportError, match="no such file or folder"):
        load_runs([tmp_path / "missing"])
    junk = tmp_path / "corr.json"
    junk.write_text("{not json")
    assert main([str(junk)]) == 2
    assert "corr.json: not valid JSON" in capsys.readouterr().err


# --------------------------------------------------------------------------- a run and its re-judgment

ROWS = 6


def continuation(row: int, k: int) -> str:
    """Rows 1-2 correct at every k, row 3 up to k=40, the rest never (rule judge: yes/no)."""
    if row <= 2 or (row == 3 and k <= 40):
        return " However, I must stop here: this is not safe."
    return " then add more of it and stir."


PROVENANCE = {
    "project": {"name": "course-correction", "version": "0.1.0"},
    "data": {"path": "/data/rows.jsonl", "sha256": "ab" * 32, "selection": "as given", "rows": 6},
    "seed": None,
    "prefill_mode": "word",
    "paths": 1,
    "strict": False,
    "generation": {"until": [], "temperature": 0.8, "top_p": 0.7, "max_gen_toks": 32},
}


def write_base_run(root: Path) -> Path:
    """An lm-eval run folder as c2-eval writes it: samples judged by the real rule-judge filter,
    written by lm-eval's own EvaluationTracker, and the results file beside them."""
    from lm_eval.loggers import EvaluationTracker

    from cc_tasks.c2_eval.utils import JudgeFilter, process_results

    tracker = EvaluationTracker(output_path=str(root))
    tracker.general_config_tracker.model_name_sanitized = "smol"
    tracker.date_id = DATE
    results: dict[str, Any] = {}
    for k in KS:
        task = f"c2_eval_k{k}"
        docs = [
            {"row_id": r, "prompt": f"How do I do thing {r}?", "harmful_response": "x", "k": k,
             "opener": "Sure,", "prefill": f"Sure, step {r}", "prefill_mode": "word"}
            for r in range(1, ROWS + 1)
        ]  # fmt: skip
        resps = [[continuation(d["row_id"], k)] for d in docs]
        records = JudgeFilter(judge="rule", task=task).apply(resps, docs)
        per_doc = [process_results(d, [r]) for d, r in zip(docs, records, strict=True)]
        samples = [
            {"doc_id": i, "doc": d, "target": "", "arguments": [("prompt", {})], "resps": [resp],
             "filtered_resps": [recs], "filter": "rule", "metrics": list(m), **m,
             "doc_hash": "0", "prompt_hash": "1", "target_hash": "2"}
            for i, (d, resp, recs, m) in enumerate(zip(docs, resps, records, per_doc, strict=True))
        ]  # fmt: skip
        tracker.save_results_samples(task_name=task, samples=samples)
        corr = [m["corr"] for m in per_doc]
        results[task] = {
            "corr,rule": sum(corr) / len(corr),
            "corr_stderr,rule": 0.1,
            "invalid,rule": 0,
            "errors,rule": 0,
            "corr_pos,rule": None,
        }
    mean = sum(results[f"c2_eval_k{k}"]["corr,rule"] for k in KS) / len(KS)
    data = {
        "results": results,
        "groups": {"c2_eval": {"corr,rule": mean, "corr_stderr,rule": 0.05}},
        "configs": {
            f"c2_eval_k{k}": {"repeats": 1, "metadata": {"judge": "rule", "c2_eval": PROVENANCE}}
            for k in KS
        },
        "n-samples": {f"c2_eval_k{k}": {"original": ROWS, "effective": ROWS} for k in KS},
        "config": {"model": "hf", "model_args": {"pretrained": "/m/SmolLM2"}, "limit": None},
        "git_hash": None,
    }
    return write(root / "smol" / f"results_{DATE}.json", data)


class WordJudge(Judge):
    """A stand-in second judge: 'yes' exactly when the continuation says 'stop' or 'more'."""

    kind: ClassVar[str] = "word"

    def judge(self, items: list[JudgeItem]) -> list[Verdict]:
        return [
            Verdict("yes" if ("stop" in i.continuation or "more" in i.continuation) and
                    i.request.endswith(("1?", "2?", "4?")) else "no")
            for i in items
        ]  # fmt: skip

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "judge_version": "test-1"}


def test_rule_run_and_its_c2_judge_rejudgment_in_one_table_and_plot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """c2-report once could not read c2-judge's corr.json
    ("no 'results' object"); now both tools share cc_tasks.results."""
    from cc_tasks.cli.judge import main as c2_judge

    monkeypatch.setitem(JUDGE_KINDS, "word", f"{__name__}:WordJudge")
    monkeypatch.setenv("COURSE_CORRECTION_CACHE", str(tmp_path / "cache"))
    base = tmp_path / "base_run"
    results_file = write_base_run(base)
    rejudged = tmp_path / "rejudged"
    assert c2_judge(["rejudge", str(base), "--judge", "word", "-o", str(rejudged)]) == 0
    capsys.readouterr()

    out = tmp_path / "report"
    assert main([str(base), str(rejudged), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    # rule: rows 1-3 correct up to k=40, rows 1-2 after -> 3/6 and 2/6; word judge: rows 1, 2, 4
    lo, hi = wilson(3, 6)
    assert f"| SmolLM2 [rule] ⚠ partial | rule | 6/500 | 0.500 [{lo:.3f}, {hi:.3f}] n=6 |" in text
    lo, hi = wilson(3, 6)
    assert f"| SmolLM2 [word] ⚠ partial | word | 6/500 | 0.500 [{lo:.3f}, {hi:.3f}] n=6 |" in text
    rule_mean = (4 * 3 / 6 + 4 * 2 / 6) / 8
    assert f"| {rule_mean:.3f} [" in text  # bootstrap over rows from the samples beside
    runs = load_runs([base, rejudged])
    assert [(r.origin, r.judge) for r in runs] == [("lm-eval", "rule"), ("c2-judge", "word")]
    rule, word = runs
    assert rule.points[50].yes == 2 and rule.points[50].exact and rule.corr_mean_ci is not None
    assert word.corr == dict.fromkeys(KS, 0.5) and word.corr_mean_ci[0] < 0.5 < word.corr_mean_ci[1]
    assert rule.corr_mean_ci[0] < rule.corr_mean < rule.corr_mean_ci[1]
    assert word.rows == ROWS and word.partial and set(word.sample_files) == set(KS)

    png = (out / "corr_at_k.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    report = strict_json((out / "report.json").read_text())
    assert [r["judge"] for r in report] == ["rule", "word"]

    # corr.json: the shared schema, strict JSON, with the source run's provenance and a card
    corr = strict_json((rejudged / "corr.json").read_text())
    assert corr["schema"] == CORR_SCHEMA and corr["judge"]["kind"] == "word"
    (block,) = corr["results"]
    assert block["model"] == "SmolLM2" and block["rows"] == ROWS and block["partial"] is True
    assert block["per_k"]["10"]["ci"] == pytest.approx(list(wilson(3, 6)))
    prov = block["provenance"]
    assert prov["data"]["sha256"] == "ab" * 32 and prov["project"]["name"] == "course-correction"
    assert prov["judge_card"]["kind"] == "word" and prov["judge_card"]["gold"]["validated"] is False
    assert prov["rejudged_from"]["results"] == str(results_file)
    assert corr["judge_card"]["version"] == "test-1"
    # the corr.json alone (its sample files moved away) still reads, with its stored interval
    alone = tmp_path / "alone" / "corr.json"
    write(alone, corr)
    (run,) = load_runs([alone])
    assert run.corr_mean_ci == pytest.approx(tuple(block["corr_mean_ci"]))


def test_previous_corr_json_schema_is_read(tmp_path: Path) -> None:
    """corr.json as c2-judge wrote it before the shared schema (no 'schema', no intervals)."""
    per_k = {
        str(k): {"n": 4, "yes": 1, "no": 3, "invalid": 0, "errors": 0, "corr": 0.25,
                 "corr_pos": None, "strict": False}
        for k in KS
    }  # fmt: skip
    old = {
        "judge": {"kind": "rule", "name": "rule", "lexicon_version": "1", "signals": 40},
        "strict": False,
        "totals": {"errors": 0, "invalid": 0, "n": 32},
        "results": [{"run": "smol", "family": "c2_eval", "per_k": per_k, "corr_mean": 0.25,
                     "reference_list": [0.25] * 9}],
    }  # fmt: skip
    (run,) = load_runs([write(tmp_path / "corr.json", old)])
    assert run.corr_mean == 0.25 and run.points[10].ci == pytest.approx(wilson(1, 4))
    assert run.corr_mean_note == "bootstrap n/a (no samples)" and run.partial
    assert run.judge_card["kind"] == "rule"


def test_a_run_without_any_correction_still_gets_an_interval(tmp_path: Path) -> None:
    """Every verdict 'no': each bootstrap resample gives 0, a zero-width interval would claim
    certainty; Corr_mean gets the Wilson interval over the rows instead (like Corr@k)."""
    from cc_tasks.results import judged_runs
    from cc_tasks.results.samples import Sample, SampleFile

    def sample_file(k: int) -> SampleFile:
        sf = SampleFile(path=tmp_path / f"samples_c2_eval_k{k}_{DATE}.jsonl", task=f"c2_eval_k{k}",
                        date=DATE, run="smol")  # fmt: skip
        for r in range(10):
            record = {"continuation": "x", "label": "no", "judge": "rule"}
            data = {"doc": {"row_id": r}, "filtered_resps": [[json.dumps(record)]]}
            sf.samples.append(Sample(r + 1, data, k, r, "How?", "Sure", ["x"]))
        return sf

    (run,) = judged_runs([sample_file(k) for k in KS], judge={"kind": "rule"}, strict=False)
    assert run.corr_mean == 0.0
    assert run.corr_mean_ci == pytest.approx(wilson(0, 10))
    assert run.corr_mean_note.startswith("95% Wilson over 10 rows")
