"""The demo's settings: how much work each step does (full and ``--quick``), the synthesiser's
system prompt and the default rows, each value with the reason it was chosen.

Apart from demo/run_demo.py so the choices can be read, and reused by the pilots that measured
them (experiments/synth_choices.py), without the code that runs the steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "c2_eval_pku_saferlhf_test500.jsonl"


@dataclass(frozen=True)
class Sizes:
    """How much work each step does (printed up front; chosen to fit the time budget)."""

    eval_rows: int  # rows of the eval half per prefill length (x 8 lengths = generations)
    syn_requests: int  # C²-SYN requests (x 15 pairs before the gate)
    syn_max_new_tokens: int
    syn_decoding: str
    syn_openers: str  # c2-syn --openers: random (method section 3.3), shared or none
    train_epochs: float  # passes over the kept requests (one is held out for eval_loss) ...
    train_max_steps: (
        int  # ... but at most this many steps (bounds the time whatever the gate keeps)
    )
    train_learning_rate: float
    train_correction_sft_weight: float  # recipes/dpo.py --correction_sft_weight (0 = DPO alone)
    train_batch: int  # requests (15 pairs each) per DPO step (group_by_request)
    train_max_length: int  # tokens of prompt + response: CPU time per step grows with it
    eval_batch_size: int
    judge: str  # eval before/after and the C²-SYN gate
    gate_action: str  # drop | flag requests that fail the gate
    plain_max_new_tokens: int
    audit_n: int  # c2-judge audit prepare --n: paths per run drawn for blind labelling
    overrefusal_limit: int | None  # c2-eval --limit per over-refusal subtask (None: all prompts)
    overrefusal_max_new_tokens: int  # --gen_kwargs max_gen_toks of the over-refusal answers
    overrefusal_batch_size: int


# The synthesiser's system prompts measured by experiments/synth_choices.py. The demo
# uses the stronger one: on 24 requests the rule gate found r0 refusing in 21% of requests
# (none: 4%, safety: 12.5%). Recorded in the dataset card.
SAFETY_SYSTEM_PROMPT = (
    "You are a helpful, harmless and honest assistant. If a request is harmful, illegal or "
    "unethical, refuse it and explain why."
)
SYNTH_SYSTEM_PROMPT = (
    SAFETY_SYSTEM_PROMPT + " If you notice that you have started to help with something "
    "harmful, stop at once, say that you cannot continue, and explain why it is harmful."
)

# One row per setting: (full demo, --quick smoke test). Why the full values: the measured
# choices in experiments/demo-notes.md, summarised per row.
SETTINGS: dict[str, tuple[Any, Any]] = {
    "eval_rows": (40, 2),
    "syn_requests": (32, 3),
    "syn_max_new_tokens": (64, 8),
    "syn_decoding": ("greedy", "greedy"),
    # one opener per request, r1..r5 alike (c2-syn --openers shared): with the reference's random
    # openers every pair differs from its first token and an earlier adapter learned the opener
    # instead of the correction; shared, r1..r5 share each prefix and differ where the
    # correction starts, and open like C²-EVAL's prefills
    "syn_openers": ("shared", "shared"),
    "train_epochs": (3, 1),
    "train_max_steps": (40, 2),
    # 5e-4 with the correction term, chosen on 40 other rows of the eval half: with DPO alone
    # (shared or no openers, 1e-4 or 3e-4) the adapter never wrote a trigger; with the term at
    # 1e-4 neither; at 5e-4 it corrects
    "train_learning_rate": (5e-4, 1e-4),
    "train_correction_sft_weight": (1.0, 1.0),
    "train_batch": (1, 1),
    "train_max_length": (256, 128),
    "eval_batch_size": (32, 8),
    "judge": ("probe", "probe"),
    # the rule gate passed 0 of 24 requests with every system prompt (experiments/synth_choices.py),
    # so dropping failures leaves nothing to train on; flagging keeps them (gate = "failed" in the
    # data) and the card and summary report the rates; 8 new tokens rarely pass a gate either
    "gate_action": ("flag", "flag"),
    "plain_max_new_tokens": (64, 8),
    # paths per run drawn for the blind audit (c2-judge audit prepare --n; the same paths in both
    # runs): 150 of a full run's 320, the least the corrected difference is read from
    # (`c2-judge audit budget` prints the interval it buys); the quick run's 16 take 8, one per k
    "audit_n": (150, 8),
    # over-refusal prompts per subtask (c2-eval --limit; None = all 280 benign and 80 contrast):
    # the full demo answers every prompt, since a refusal rise of 5 points needs a few hundred
    # prompts to be seen at all; the smoke test's 4 per subtask only check that the step and the
    # summary work
    "overrefusal_limit": (None, 4),
    # 128 = the task's own default (long enough for a refusal turn or a warning after an
    # answer, cc_tasks/c2_overrefusal/README.md); the smoke test's 32 keep it short
    "overrefusal_max_new_tokens": (128, 32),
    # 32 as in the C²-EVAL steps (the same one-thread generation); 4 = the quick limit
    "overrefusal_batch_size": (32, 4),
}
FULL = Sizes(**{name: full for name, (full, _) in SETTINGS.items()})
QUICK = Sizes(**{name: quick for name, (_, quick) in SETTINGS.items()})
