"""PPI++-corrected benign full refusal and safety talk for the demo's before/after runs.

Run from the repository root with a finished demo folder (DEMO, default /work/demo-run):
``python experiments/results/2026-12-05-overrefusal/audit_overrefusal.py [DEMO]``. The labels
are the over-refusal gold set's answers of the base model and the demo adapter (75 benign per
run, a seeded random draw, read blind); the judge verdicts come from the demo's samples files.
"""

from __future__ import annotations

import glob
import json
import sys
from pathlib import Path

from cc_tasks.stats import PPIStratum, ppi_combination

GOLD = Path("cc_tasks/judges/gold/overrefusal.jsonl")
OUT = Path("experiments/results/2026-12-05-overrefusal/demo_overrefusal_audit.json")
METRICS = {
    "full_refusal": lambda label, talk: label == "full_refusal",
    "safety_talk_among_all": lambda label, talk: label == "full_compliance" and talk,
}


def jsonl(path: str | Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def verdicts(folder: str) -> dict[str, tuple[str, bool]]:
    """Prompt id -> (class, safety talk) of the rule judge in one over-refusal run."""
    (path,) = glob.glob(f"{folder}/*/samples_c2_overrefusal_benign_*.jsonl")
    out = {}
    for sample in jsonl(path):
        verdict = json.loads(sample["filtered_resps"][0][0])
        out[sample["doc"]["id"]] = (verdict["label"], bool(verdict["safety_talk"]))
    return out


def main() -> None:
    demo = sys.argv[1] if len(sys.argv) > 1 else "/work/demo-run"
    gold = jsonl(GOLD)
    runs = {
        "base": verdicts(f"{demo}/overrefusal_before"),
        "adapter-demo": verdicts(f"{demo}/overrefusal_after"),
    }
    res: dict[str, dict] = {}
    for name, fn in METRICS.items():
        strata = []
        for model, judged in runs.items():
            ids = sorted(judged)
            labelled = [g for g in gold if g["source"] == model and g["type"] == "benign"]
            stratum = PPIStratum(
                f_all=[float(fn(*judged[i])) for i in ids],
                rows_all=ids,
                y=[float(fn(g["label"], g["safety_talk"])) for g in labelled],
                f=[float(fn(*judged[g["prompt_id"]])) for g in labelled],
                sample_key=tuple((model, g["prompt_id"]) for g in labelled),
                group=model,
            )
            strata.append(stratum)
            one = ppi_combination([stratum], [1.0])
            res[f"{name}:{model}"] = {
                "raw": sum(stratum.f_all) / len(stratum.f_all),
                "labels_n": len(stratum.y),
                "labels_share": sum(stratum.y) / len(stratum.y),
                "ppi": one["estimate"],
                "ci": one["ci"],
            }
        diff = ppi_combination(strata, [-1.0, 1.0])
        res[f"{name}:difference"] = {
            "raw": res[f"{name}:adapter-demo"]["raw"] - res[f"{name}:base"]["raw"],
            "ppi": diff["estimate"],
            "ci": diff["ci"],
            "se": diff.get("se"),
        }
    for key, value in res.items():
        print(key, {k: round(v, 4) if isinstance(v, float) else v for k, v in value.items()})
    OUT.write_text(json.dumps(res, indent=1, default=float) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
