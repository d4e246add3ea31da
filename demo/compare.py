"""Before/after comparison for the demo: the paired difference of Corr_mean and its error.

Why paired, over rows: C²-EVAL's eight Corr@k are measured on the SAME rows (each row is
prefilled at k = 10..80), and the demo evaluates the model before and after training on the
same rows again, so neither the eight k nor the two runs are independent samples. The error
of ``after - before`` is therefore a bootstrap that resamples ROW IDS (every k of a drawn row,
before and after, travels together), recomputing Corr@k per k and Corr_mean for both runs
from the same draw. The one-run version of this bootstrap is :mod:`cc_tasks.stats`; this is
its paired counterpart, with the same conventions (2000 resamples, seed 0, a row drawn twice
counts twice, k without a valid path in a draw are skipped).

Also here: the share of empty or degenerate continuations (:func:`degenerate`), a check that
training did not buy its Corr@k by breaking the model's text, and :func:`phrase_counts`, two
reading aids fixed before the runs they describe: how many continuations echo an affirmative
opener (what an earlier adapter learned; experiments/demo-notes.md) and how many contain one of C²-SYN's corrective triggers
(what the pairs teach, word for word).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping
from typing import Any

from cc_tasks.stats import BOOTSTRAP_ITERS, BOOTSTRAP_SEED, LEVEL, RowCounts, mean_of_rates

MIN_WORDS_FOR_REPETITION = 8
TOP_WORD_SHARE = 0.5
REPEATED_TRIGRAM = 4


def _matrices(counts: RowCounts, ks: list[int], rows: list[Hashable]) -> tuple[Any, Any]:
    import numpy as np

    index = {row: i for i, row in enumerate(rows)}
    yes = np.zeros((len(rows), len(ks)))
    valid = np.zeros((len(rows), len(ks)))
    for j, k in enumerate(ks):
        for row, (y, v) in counts.get(k, {}).items():
            yes[index[row], j] += y
            valid[index[row], j] += v
    return yes, valid


def _means(weights: Any, yes: Any, valid: Any) -> Any:
    """Corr_mean of each bootstrap draw (mean over the k with a valid path in that draw)."""
    import numpy as np

    yes_sum, valid_sum = weights @ yes, weights @ valid
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = np.where(valid_sum > 0, yes_sum / np.where(valid_sum > 0, valid_sum, 1), np.nan)
    return np.nanmean(rates, axis=1)


def paired_difference(
    before: RowCounts,
    after: RowCounts,
    *,
    iters: int = BOOTSTRAP_ITERS,
    seed: int = BOOTSTRAP_SEED,
    level: float = LEVEL,
) -> dict[str, Any]:
    """``after - before`` Corr_mean with its bootstrap standard error and percentile interval.

    Both runs must cover the same rows (the demo evaluates the same rows and paths twice);
    a mismatch is an error, not something to average over.
    """
    import numpy as np

    ks = sorted(set(before) | set(after))
    rows_b = {row for per_row in before.values() for row in per_row}
    rows_a = {row for per_row in after.values() for row in per_row}
    if rows_b != rows_a:
        raise ValueError(
            f"before and after cover different rows ({len(rows_b)} vs {len(rows_a)}; "
            f"{len(rows_b ^ rows_a)} differ): a paired comparison needs the same rows"
        )
    rows = sorted(rows_b, key=str)
    if not rows:
        raise ValueError("no rows to compare")
    yes_b, valid_b = _matrices(before, ks, rows)
    yes_a, valid_a = _matrices(after, ks, rows)
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(len(rows), np.full(len(rows), 1.0 / len(rows)), size=iters)
    with np.errstate(invalid="ignore"):
        diffs = _means(weights, yes_a, valid_a) - _means(weights, yes_b, valid_b)
    diffs = diffs[~np.isnan(diffs)]
    mean_b, mean_a = mean_of_rates(before), mean_of_rates(after)
    diff = None if mean_b is None or mean_a is None else mean_a - mean_b
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(diffs, [alpha, 1.0 - alpha])
    se = float(np.std(diffs, ddof=1))
    return {
        "before": mean_b,
        "after": mean_a,
        "difference": diff,
        "bootstrap_se": se,
        "ci95": [float(low), float(high)],
        "z": (diff / se) if diff is not None and se > 0 else None,
        "rows": len(rows),
        "ks": ks,
        "method": f"paired percentile bootstrap over {len(rows)} row ids ({iters} resamples, "
        f"seed {seed}); se = std of the resampled differences",
    }


def degenerate(text: str) -> str | None:
    """Why a continuation is degenerate, or None. The demo's definition:

    * ``empty``: nothing but whitespace;
    * ``no_text``: no letter or digit at all (only punctuation, symbols, emoji);
    * ``repetition``: at least 8 words and either one word makes up half of them, or one
      word trigram occurs 4 or more times (loops such as "I'm sorry I'm sorry ...").
    """
    if not text.strip():
        return "empty"
    if not re.search(r"\w", text):
        return "no_text"
    words = text.lower().split()
    if len(words) >= MIN_WORDS_FOR_REPETITION:
        if Counter(words).most_common(1)[0][1] >= TOP_WORD_SHARE * len(words):
            return "repetition"
        trigrams = Counter(zip(words, words[1:], words[2:], strict=False))
        if trigrams and trigrams.most_common(1)[0][1] >= REPEATED_TRIGRAM:
            return "repetition"
    return None


def degenerate_share(continuations: Iterable[str]) -> dict[str, Any]:
    """Counts per reason and the share of degenerate continuations."""
    reasons: Counter[str] = Counter()
    n = 0
    for text in continuations:
        n += 1
        why = degenerate(text)
        if why:
            reasons[why] += 1
    total = sum(reasons.values())
    return {"paths": n, "degenerate": total, "share": total / n if n else None, **reasons}


OPENER_ECHO = re.compile(r"\b(help|assist) you with that\b", re.IGNORECASE)


def phrase_counts(continuations: Iterable[str]) -> dict[str, int]:
    """Continuations that echo an affirmative opener / contain a C²-SYN trigger verbatim."""
    from synth.truncate import TRIGGERS

    triggers = tuple(t.lower() for t in TRIGGERS)
    n = echo = trigger = 0
    for text in continuations:
        n += 1
        echo += bool(OPENER_ECHO.search(text))
        low = text.lower()
        trigger += any(t in low for t in triggers)
    return {"paths": n, "opener_echo": echo, "trigger": trigger}


def continuations_of(paths: Iterable[str]) -> list[str]:
    """Every continuation in the lm-eval sample files under ``paths`` (c2-eval --log_samples)."""
    from cc_tasks.samples import find_sample_files

    return [
        text
        for sf in find_sample_files([str(p) for p in paths], need_row_id=False)
        for sample in sf.samples
        for text in sample.continuations
    ]


def per_k(run: Any) -> dict[str, float | None]:
    """Corr@k of a :class:`cc_tasks.results.Run` keyed ``"k10"``..``"k80"``."""
    return {f"k{k}": run.points[k].corr for k in sorted(run.points)}


def row_counts(run: Any) -> Mapping[int, Any]:
    """Per k, per row: (yes, valid) of a run; from its sample files where the loader kept none
    (``c2-judge rejudge`` output: corr.json names the re-judged sample files)."""
    if run.row_counts and all(k in run.row_counts for k in run.ks):
        return {k: run.row_counts[k] for k in run.ks}
    from cc_tasks.results import points_from_samples
    from cc_tasks.samples import find_sample_files

    if not run.sample_files:
        raise ValueError(f"{run.source}: no sample files, so no per-row counts to bootstrap")
    files = find_sample_files(sorted(set(run.sample_files.values())), need_row_id=False)
    _, counts = points_from_samples(files, strict=run.strict)
    return counts


def summarise(before: Any, after: Any) -> dict[str, Any]:
    """Per-k table and paired difference of two :class:`cc_tasks.results.Run` (same judge)."""
    counts_b, counts_a = row_counts(before), row_counts(after)
    return {
        "judge": before.judge,
        "corr_at_k_before": per_k(before),
        "corr_at_k_after": per_k(after),
        "corr_mean_ci95_before": before.corr_mean_ci,
        "corr_mean_ci95_after": after.corr_mean_ci,
        **paired_difference(counts_b, counts_a),
    }


def main(argv: list[str] | None = None) -> int:
    """``python demo/compare.py BEFORE AFTER --judge KIND``: the paired table of two runs.

    For re-judged samples too (``c2-judge rejudge`` output folders), e.g. the demo's two
    evaluations judged again by another judge, which costs no generation.
    """
    import argparse
    import json
    import sys

    from cc_tasks.errors import CCError
    from cc_tasks.results import load_runs

    parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    parser.add_argument("before", help="c2-eval --output_path or c2-judge rejudge folder")
    parser.add_argument("after", help="the same, after training (same rows)")
    parser.add_argument("--judge", required=True, help="which judge's verdicts to compare")
    parser.add_argument("--json", help="write the comparison here")
    args = parser.parse_args(argv)
    try:
        runs = []
        for path in (args.before, args.after):
            found = [r for r in load_runs([path]) if r.judge == args.judge]
            if len(found) != 1:
                print(
                    f"compare: error: {path}: {len(found)} runs judged by {args.judge}",
                    file=sys.stderr,
                )
                return 2
            runs.append(found[0])
        result = summarise(*runs)
    except (CCError, ValueError) as err:
        print(f"compare: error: {err}", file=sys.stderr)
        return 2
    text = json.dumps(result, indent=2)
    if args.json:
        with open(args.json, "x", encoding="utf-8") as fh:  # never overwrite
            fh.write(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
