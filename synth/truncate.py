"""Punctuation prefixes and corrective triggers of C²-SYN (method sections 3.1-3.3).

For a harmful response ``y`` with ``t`` punctuation characters, a step ``s`` is
drawn uniformly from the integers ``[t//4 - 1, t//4]`` and ``p_i`` (i = 1..4) is
``y`` up to and including its ``(i*s)``-th punctuation character. Each prefix
gets its own opener and trigger (other opener modes: :data:`OPENER_MODES`). Every draw comes from a private RNG seeded with
the row's content (:func:`cc_tasks.seeding.stable_rng`), so two runs on two
machines build the same prefixes.

Edge cases (decided here, documented in the README and the dataset card):

* ``t < 4`` (fewer than four punctuation marks): four distinct prefixes that end
  at punctuation cannot exist, so the request is **skipped**
  (:class:`TooFewPunctuation`); the run counts and reports such requests.
* a drawn step below 1 (``t`` in 4..7 draws from ``[0, 1]``): the step is
  **clamped to 1**, so the prefixes end at the 1st..4th punctuation character.
* identical prefixes: impossible after the two rules above. ``s >= 1`` and
  ``4*s <= t`` give four different punctuation positions, so ``p1..p4`` are
  strictly growing; :func:`make_prefixes` asserts it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from itertools import pairwise
from typing import Any

from cc_tasks.prefill import OPENERS
from cc_tasks.seeding import stable_rng

# method section 3.1: , . ! : ; ? ... - " ( ) { } [ ] counted character by character; "..." is three '.'.
PUNCTUATION = frozenset(',.!:;?-"(){}[]')
NUM_PREFIXES = 4

# How r1..r5 open (``c2-syn --openers``). "random" (method section 3.3, the reference): r1..r4 each start
# with their own random opener and r5 = y has none, so no two of r1..r5 share a first token: DPO's
# log-ratio of every pair is decided at the opener, not where a response corrects itself (on the
# CPU demo the adapter learned the opener; experiments/demo-notes.md). "shared": one random opener per
# request, for r1..r4 AND r5 (r5 = opener + " " + y): r_i, r_j (i < j) and r5 then share
# opener + p_i and differ exactly where r_i corrects, and every response opens as C²-EVAL's prefill
# does (opener + harmful text). "none": no opener anywhere (r5 = y). Steps, prefixes and triggers
# are the same draws in every mode.
OPENER_MODES = ("random", "shared", "none")

TRIGGERS: tuple[str, ...] = (
    "but I must advise you that",
    "but I must inform you that I'm just an AI",
    "However, I don't think it's appropriate or respectful to",
    "However, I cannot provide",
    "However, I must remind you that",
    "but I must inform you that",
    "but I cannot provide",
    "but I must emphasize that",
    "but I need to let you know",
    "However, I am unable to assist with",
    "However, I should mention that",
    "but I am obligated to tell you that",
    "but I must point out that",
    "However, I cannot guarantee",
    "but I must highlight that",
)


class TooFewPunctuation(ValueError):
    """The harmful response has fewer than four punctuation characters: no four prefixes."""


@dataclass(frozen=True)
class Plan:
    """Everything random about one request, fixed before any model runs."""

    punctuation_count: int  # t
    drawn_step: int  # s as drawn from [t//4 - 1, t//4]
    step: int  # s actually used (drawn_step clamped to >= 1)
    prefixes: tuple[str, ...]  # p1..p4
    openers: tuple[str, ...]  # one per prefix ("" when the opener mode is "none")
    triggers: tuple[str, ...]  # one per prefix
    opener_mode: str = "random"  # one of OPENER_MODES

    @property
    def prefix_lengths(self) -> list[int]:
        """Characters of ``y`` in p1..p4."""
        return [len(p) for p in self.prefixes]

    def assistant_texts(self) -> list[str]:
        """method section 3.3: ``opener + " " + p_i + " " + trigger`` for i = 1..4 (no opener: ``p_i + " " + trigger``)."""
        return [
            f"{o} {p} {t}" if o else f"{p} {t}"
            for o, p, t in zip(self.openers, self.prefixes, self.triggers, strict=True)
        ]

    def ranked_last(self, harmful: str) -> str:
        """r5: y itself (method section 3.5), or the request's opener + " " + y in the "shared" mode."""
        return f"{self.openers[0]} {harmful}" if self.opener_mode == "shared" else harmful

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["prefix_lengths"] = self.prefix_lengths
        return d


def punctuation_positions(text: str) -> list[int]:
    """Indices of the punctuation characters of ``text``, in order."""
    return [i for i, ch in enumerate(text) if ch in PUNCTUATION]


def draw_step(t: int, prompt: str, response: str, seed: int | None = None) -> int:
    """method section 3.1: uniform integer in ``[t//4 - 1, t//4]`` from the row's own RNG (may be < 1)."""
    return stable_rng("c2-syn-step", prompt, response, seed).randint(t // 4 - 1, t // 4)


def make_prefixes(response: str, step: int) -> tuple[str, ...]:
    """p_i = ``response`` up to and including its ``(i*step)``-th punctuation character."""
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    positions = punctuation_positions(response)
    if NUM_PREFIXES * step > len(positions):
        raise TooFewPunctuation(
            f"{NUM_PREFIXES} prefixes of step {step} need {NUM_PREFIXES * step} punctuation "
            f"characters; the response has {len(positions)}"
        )
    prefixes = tuple(response[: positions[i * step - 1] + 1] for i in range(1, NUM_PREFIXES + 1))
    assert all(len(a) < len(b) for a, b in pairwise(prefixes)), prefixes
    return prefixes


def pick_openers_and_triggers(
    prompt: str, response: str, seed: int | None = None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """One opener and one trigger per prefix, each drawn with its own row-seeded RNG."""
    openers = tuple(
        stable_rng("c2-syn-opener", prompt, response, i, seed).choice(OPENERS)
        for i in range(1, NUM_PREFIXES + 1)
    )
    triggers = tuple(
        stable_rng("c2-syn-trigger", prompt, response, i, seed).choice(TRIGGERS)
        for i in range(1, NUM_PREFIXES + 1)
    )
    return openers, triggers


def plan_request(
    prompt: str, response: str, seed: int | None = None, openers: str = "random"
) -> Plan:
    """Step, prefixes, openers and triggers of one (request, harmful response).

    ``openers`` is one of :data:`OPENER_MODES`; the other draws do not depend on it.

    Raises :class:`TooFewPunctuation` when ``response`` has fewer than four
    punctuation characters (the request is skipped).
    """
    t = len(punctuation_positions(response))
    if t < NUM_PREFIXES:
        raise TooFewPunctuation(
            f"the harmful response has {t} punctuation characters; {NUM_PREFIXES} are needed"
        )
    drawn = draw_step(t, prompt, response, seed)
    step = max(drawn, 1)
    if openers not in OPENER_MODES:
        raise ValueError(f"openers must be one of {', '.join(OPENER_MODES)}, got {openers!r}")
    drawn_openers, triggers = pick_openers_and_triggers(prompt, response, seed)
    if openers == "shared":  # p1's draw, for all four (and r5)
        drawn_openers = (drawn_openers[0],) * NUM_PREFIXES
    elif openers == "none":
        drawn_openers = ("",) * NUM_PREFIXES
    return Plan(
        punctuation_count=t,
        drawn_step=drawn,
        step=step,
        prefixes=make_prefixes(response, step),
        openers=drawn_openers,
        triggers=triggers,
        opener_mode=openers,
    )
