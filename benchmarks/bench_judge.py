"""Judging throughput: our ``openai`` judge vs a reference-style client, same items, same server.

The server is a loopback OpenAI-compatible chat-completions endpoint on 127.0.0.1 that answers
every request after a fixed latency (default 100 ms; its own process). Items are the C²-EVAL
prefills of the data file (rows x k = 10..80) with a stand-in continuation per item (the next
words of the harmful response plus the path number, so every item is distinct and neither side
can skip a duplicate). Sides, in this order:

* ``ours``: ``make_judge("openai", concurrency=32, cache_path=<fresh file>, probe=False)``;
* ``reference-style``: the official sync ``openai`` client in 30 threads
  (``ThreadPoolExecutor``), one request per item, the reply compared to "yes" (as the reference);
* ``ours, warm cache``: a new judge on the same cache file; the server must receive 0 requests;
* ``ours, cache off``: ``use_cache=False`` (what the verdict cache costs on a cold run);
* ``ours, concurrency N``: a fresh cache, more requests in flight (``--high-concurrency``).

Both sides send the same messages (``cc_tasks.judges.prompt.build_messages``). The server counts
every request and the most it held at once; the script asserts the counts.
"""

from __future__ import annotations

import os
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import _common as c

KS = (10, 20, 30, 40, 50, 60, 70, 80)


def build_items(data: str, n: int) -> list[Any]:
    """``n`` distinct JudgeItems: row by row, k = 10..80 for each row."""
    from cc_tasks.judges import JudgeItem
    from cc_tasks.pku import harmful_response, load_rows
    from cc_tasks.prefill import build_prefill

    rows, _ = load_rows(data, split="test", need_unsafe=True)
    items = []
    for row in rows:
        harmful = harmful_response(row) or ""
        words = harmful.split()
        for k in KS:
            _, prefill = build_prefill(row["prompt"], harmful, k)
            tail = " ".join(words[k : k + 24]) or "and that is all."
            items.append(JudgeItem(row["prompt"], prefill, f"{tail} (path {len(items) + 1})"))
            if len(items) == n:
                return items
    sys.exit(f"error: {data} gives only {len(items)} items (< {n}); lower --items")


def run_ours(
    items: list[Any], base_url: str, cache_path: str | None, concurrency: int
) -> list[Any]:
    """Our judge as c2-eval/c2-judge build it; ``cache_path=None``: the cache switched off."""
    from cc_tasks.judges import make_judge

    judge = make_judge(
        "openai",
        model="gpt-4o",
        base_url=base_url,
        concurrency=concurrency,
        cache_path=cache_path,
        use_cache=cache_path is not None,
        progress=False,
        probe=False,
    )
    judge.check()
    verdicts = judge.judge(items)
    return [v.label for v in verdicts]


def run_reference(items: list[Any], base_url: str, threads: int) -> list[str]:
    """The reference's client: sync ``openai`` calls in a thread pool, exact "yes" match."""
    from openai import OpenAI

    from cc_tasks.judges.prompt import build_messages

    client = OpenAI(api_key=os.environ["OPENAI_API_KEY"], base_url=base_url)

    def one(item: Any) -> str:
        response = client.chat.completions.create(
            model="gpt-4o",
            messages=build_messages(item),
            temperature=0,
            max_tokens=2,
            seed=42,
        )
        return "yes" if response.choices[0].message.content == "yes" else "no"

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(one, items))


def main() -> int:
    parser = c.base_parser(__doc__.splitlines()[0])
    c.add_data_arg(parser)
    parser.add_argument("--items", type=int, default=4000, help="judgments per side (4,000)")
    parser.add_argument("--latency", type=float, default=0.1, help="server seconds per request")
    parser.add_argument("--concurrency", type=int, default=32, help="ours (default 32)")
    parser.add_argument("--ref-threads", type=int, default=30, help="reference threads (30)")
    parser.add_argument(
        "--high-concurrency", type=int, default=128, help="ours again at this concurrency (0: skip)"
    )
    args = parser.parse_args()
    if args.quick:
        args.items = min(args.items, 200)
    data = c.require_data(args.data)
    os.environ.setdefault("OPENAI_API_KEY", "sk-benchmark-dummy")  # loopback server; no real key

    items = build_items(data, args.items)
    n = len(items)
    info = c.machine()
    c.header(f"judge: {n} items, server latency {args.latency * 1000:.0f} ms", info)
    sides: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-judge-") as tmp,
        c.loopback_openai(args.latency) as server,
    ):

        def measure(name: str, fn: Any, concurrency: int) -> list[Any]:
            before = server.stats(reset=True)["requests"]
            with c.Stopwatch() as sw:
                labels = fn()
            after = server.stats()
            sent = after["requests"] - before
            ideal = sent * args.latency / concurrency
            sides.append(
                {
                    "side": name,
                    "concurrency": concurrency,
                    "seconds": round(sw.seconds, 3),
                    "items_per_s": c.per_second(n, sw.seconds),
                    "requests_sent": sent,
                    "max_in_flight": after["max_in_flight"],
                    "ideal_seconds": round(ideal, 3),
                    "errors": sum(label == "error" for label in labels),
                }
            )
            print(f"  {name}: {sw.seconds:.2f} s, {sent} requests", flush=True)
            return labels

        cache = str(Path(tmp) / "judge-cache.sqlite")
        ours = measure(
            "ours",
            lambda: run_ours(items, server.base_url, cache, args.concurrency),
            args.concurrency,
        )
        ref = measure(
            "reference-style (sync openai, threads)",
            lambda: run_reference(items, server.base_url, args.ref_threads),
            args.ref_threads,
        )
        warm = measure(
            "ours, warm cache (rerun)",
            lambda: run_ours(items, server.base_url, cache, args.concurrency),
            args.concurrency,
        )
        measure(
            "ours, cache off",
            lambda: run_ours(items, server.base_url, None, args.concurrency),
            args.concurrency,
        )
        if args.high_concurrency:
            hi_cache = str(Path(tmp) / "judge-cache-high.sqlite")
            measure(
                f"ours, concurrency {args.high_concurrency}",
                lambda: run_ours(items, server.base_url, hi_cache, args.high_concurrency),
                args.high_concurrency,
            )

    # the claims this benchmark stands on
    assert sides[0]["requests_sent"] == n and sides[1]["requests_sent"] == n, sides
    assert sides[2]["requests_sent"] == 0, f"warm-cache rerun sent {sides[2]['requests_sent']}"
    assert all(s["errors"] == 0 for s in sides), sides
    assert ours == warm, "cached verdicts differ from the first run"
    agree = sum((o == "yes") == (r == "yes") for o, r in zip(ours, ref, strict=True))

    ref_s = sides[1]["seconds"]
    for s in sides:
        s["speedup_vs_reference"] = c.ratio(ref_s, s["seconds"])
    print()
    print(
        c.table(
            [
                "side",
                "concurrency",
                "max in flight",
                "wall s",
                "items/s",
                "requests sent",
                "ideal s",
                "vs reference",
            ],
            [
                [
                    s["side"],
                    s["concurrency"],
                    s["max_in_flight"],
                    s["seconds"],
                    s["items_per_s"],
                    s["requests_sent"],
                    s["ideal_seconds"],
                    f"{s['speedup_vs_reference']}x",
                ]
                for s in sides
            ],
        )
    )
    print(
        f"\nideal s = requests x latency / concurrency; max in flight is measured at the server. "
        f"Verdicts of ours and the reference agree on "
        f"{agree}/{n} items; the warm rerun sent 0 requests."
    )
    return c.finish(
        args,
        info,
        {
            "benchmark": "judge",
            "items": n,
            "latency_s": args.latency,
            "sides": sides,
            "ratio_ours_vs_reference": sides[0]["speedup_vs_reference"],
            "ratio_warm_vs_reference": sides[2]["speedup_vs_reference"],
            "verdict_agreement": agree,
        },
    )


if __name__ == "__main__":
    raise SystemExit(main())
