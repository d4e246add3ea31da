"""Measure what makes the embedded model's C²-SYN good enough for the demo (a pilot).

Why: the 135M synthesiser writes r0 (should refuse) and r1..r4 (should turn away after the
trigger) poorly, and the quality gate then drops most requests. This script measures each
choice on a small sample of the demo's synthesis half, with cheap decoding (greedy, batched):

* the synthesiser's system prompt: none (the reference's), the demo's safety prompt, and a
  stronger one that also asks to stop mid-answer;
* the gate's judge: ``rule`` and the offline ``probe`` judge (when its weights exist);
* the gate's action: ``drop`` keeps only requests whose five verdicts are all "yes";
  ``flag`` keeps every request and marks the failing ones (pairs counted for both);
* the number of requests: generation seconds per request, so the pairs a given time buys
  at the measured pass rate follow.

Each system prompt is one ``c2-syn generate`` run (no gate; resumable: a rerun reuses it);
each judge then gates the same stored records (:func:`synth.gate.judge_records`), so the
judges see identical texts. Output: one JSON file (``--out``/synth_choices.json) with the
per-rank rates r0..r4, the pass rate and the pairs each action keeps, per setting.

    python -m experiments.synth_choices --requests 24 --out runs/synth_choices   # from the root
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from demo.settings import DEFAULT_DATA, SAFETY_SYSTEM_PROMPT, SYNTH_SYSTEM_PROMPT
from demo.steps import bin_of, split_rows

ROOT = Path(__file__).resolve().parents[1]

PROMPTS: dict[str, str | None] = {
    "none": None,
    "safety": SAFETY_SYSTEM_PROMPT,
    "safety+stop": SYNTH_SYSTEM_PROMPT,  # the demo's choice
}
PAIRS_PER_REQUEST = 15


def generate(
    name: str, system_prompt: str | None, source: Path, out: Path, args: argparse.Namespace
) -> dict[str, Any]:
    """One ``c2-syn generate`` run (no gate); returns its wall time (0 when reused)."""
    folder = out / f"gen-{name}"
    cmd = [
        bin_of("c2-syn"),
        "generate",
        "--source",
        str(source),
        "--max-requests",
        str(args.requests),
        "--out",
        str(folder),
        "--decoding",
        "greedy",
        "--max-new-tokens",
        str(args.max_new_tokens),
        "--batch-size",
        str(args.batch_size),
        "--no-progress",
    ]
    if system_prompt:
        cmd += ["--system-prompt", system_prompt]
    start = time.perf_counter()
    reused = folder.exists()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    seconds = round(time.perf_counter() - start, 1)
    if proc.returncode != 0:
        raise SystemExit(f"synth_choices: {name}: c2-syn generate failed:\n{proc.stderr[-2000:]}")
    return {"folder": str(folder), "seconds": seconds, "reused": reused}


def gate_with(kind: str, records: list[dict[str, Any]], options: dict[str, Any]) -> dict[str, Any]:
    """Gate a copy of ``records`` with judge ``kind``; per-rank rates and pairs per action."""
    from cc_tasks.judges import make_judge
    from synth.gate import gate_passed, gate_stats, judge_records

    judge = make_judge(kind, **options)
    judge.check()
    todo = copy.deepcopy(records)
    start = time.perf_counter()
    judge_records(judge, todo)
    seconds = round(time.perf_counter() - start, 1)
    judged = [r for r in todo if r.get("gate")]
    passed = sum(bool(gate_passed(r)) for r in judged)
    stats = gate_stats(todo) or {}
    return {
        "judge": judge.describe(),
        "judge_seconds": seconds,
        "per_rank_yes_rate": {
            f"r{k}": round(sum(r["gate"][k]["corrected"] is True for r in judged) / len(judged), 4)
            for k in range(5)
        }
        if judged
        else None,
        "requests_judged": len(judged),
        "requests_passed": passed,
        "pass_rate": stats.get("pass_rate"),
        "pairs_kept": {
            "drop": passed * PAIRS_PER_REQUEST,
            "flag": len(judged) * PAIRS_PER_REQUEST,
            "flag_of_which_failed": (len(judged) - passed) * PAIRS_PER_REQUEST,
        },
        "invalid_or_error_verdicts": stats.get("invalid_or_error_verdicts"),
        "verdicts": {
            r["request_id"]: [v["corrected"] for v in r["gate"]] for r in judged
        },  # per request, r0..r4: which ranks fail
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=Path(os.environ.get("C2_DEMO_DATA", DEFAULT_DATA))
    )
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "synth_choices")
    parser.add_argument("--seed", type=int, default=1234, help="the demo's split seed")
    parser.add_argument("--requests", type=int, default=24)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8, help="requests per generate call")
    parser.add_argument("--prompts", nargs="+", default=list(PROMPTS), choices=list(PROMPTS))
    parser.add_argument("--judges", nargs="+", default=["rule", "probe"])
    parser.add_argument("--probe-weights", help="probe weights JSON (default: the shipped ones)")
    args = parser.parse_args(argv)
    if not args.data.is_file():
        print(f"synth_choices: error: rows file not found: {args.data}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    _, syn_path, _, _ = split_rows(args.data, args.out, args.seed)

    from synth.responses import read_records

    result: dict[str, Any] = {
        "requests": args.requests,
        "decoding": {"mode": "greedy", "max_new_tokens": args.max_new_tokens},
        "batch_size": args.batch_size,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "settings": {},
    }
    for name in args.prompts:
        gen = generate(name, PROMPTS[name], syn_path, args.out, args)
        _, records = read_records(gen["folder"])
        active = [r for r in records if not r.get("skipped")]
        entry: dict[str, Any] = {
            "system_prompt": PROMPTS[name],
            "generate": gen,
            "requests_generated": len(active),
            "requests_skipped": len(records) - len(active),
            "gates": {},
        }
        for kind in args.judges:
            options: dict[str, Any] = {}
            if kind == "probe" and args.probe_weights:
                options["weights"] = args.probe_weights
            try:
                entry["gates"][kind] = gate_with(kind, active, options)
            except Exception as err:  # a missing judge is reported, not fatal
                entry["gates"][kind] = {"unavailable": f"{type(err).__name__}: {err}"}
            g = entry["gates"][kind]
            print(
                f"{name:12s} {kind:6s} per-rank {g.get('per_rank_yes_rate')} "
                f"pass {g.get('pass_rate')} {g.get('unavailable', '')}",
                flush=True,
            )
        result["settings"][name] = entry
    path = args.out / "synth_choices.json"
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
