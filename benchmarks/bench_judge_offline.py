"""Offline judging vs generation on this CPU: is judging a run cheaper than producing it?

The target for the ``probe`` judge: judging the 4,000 paths of a full C²-EVAL run takes
no longer than generating them on the same CPU. Both sides run in this one process, one after
the other, on the same continuations:

* ``generate``: the embedded SmolLM2 writes the continuations of the first ``--rows`` rows of
  the data file x k = 10..80, as ``c2-eval`` does (lm-eval ``HFLM``, the ``c2_eval`` tasks,
  the sampling of method section 2.4, batch ``--batch-size``; the rule judge runs inside and is negligible);
* ``judge <kind>``: each offline judge in ``--judges`` (default ``probe`` and ``rule``) judges
  exactly those continuations (request, prefill and continuation from the samples), built as
  ``c2-judge`` builds it (model loading included in the wall time).

Reported: seconds per path for each side and the projection to 4,000 paths (time x 4000 / n).
Set ``OMP_NUM_THREADS=1`` (the machine is shared) or pass ``--threads``.
"""

from __future__ import annotations

from typing import Any

import _common as c

FULL_RUN = 4000


def generate(model_path: str, data: str, rows: int, batch_size: int) -> list[Any]:
    """JudgeItems of the continuations lm-eval generates for ``rows`` rows x 8 k."""
    from cc_tasks.judges import JudgeItem

    results, _ = c.run_c2_eval(model_path, data, rows, batch_size=batch_size, device="cpu")
    items = []
    for name, samples in sorted(results["samples"].items()):
        if not name.startswith("c2_eval_k"):
            continue
        for sample in samples:
            doc = sample["doc"]
            for resps in sample["resps"]:
                items += [JudgeItem(doc["prompt"], doc["prefill"], text) for text in resps]
    return items


def judge_all(kind: str, items: list[Any], batch_size: int) -> list[str]:
    from cc_tasks.judges import make_judge
    from cc_tasks.judges.settings import accepts

    options: dict[str, Any] = {}
    if accepts(kind, "progress"):
        options["progress"] = False
    if accepts(kind, "batch_size"):
        options["batch_size"] = batch_size
    judge = make_judge(kind, **options)
    judge.check()
    return [v.label for v in judge.judge(items)]


def main() -> int:
    parser = c.base_parser(__doc__.splitlines()[0])
    c.add_data_arg(parser)
    parser.add_argument("--rows", type=int, default=20, help="rows x 8 k paths (default 20: 160)")
    parser.add_argument("--batch-size", type=int, default=16, help="generation batch (16)")
    parser.add_argument("--judge-batch-size", type=int, default=16, help="probe batch (16)")
    parser.add_argument("--judges", default="probe,rule", help="comma-separated offline kinds")
    args = parser.parse_args()
    if args.quick:
        args.rows = min(args.rows, 2)
    data = c.require_data(args.data)
    c.set_threads(args.threads)

    from cc_tasks.embedded import embedded_model_path

    model_path = embedded_model_path()
    info = c.machine()
    c.header(f"offline judging vs generation: {args.rows} rows x 8 k", info)
    c.warm_up(model_path, "lm_eval", "cc_tasks.judges.probe")

    sides: list[dict[str, Any]] = []
    with c.Stopwatch() as sw:
        items = generate(model_path, data, args.rows, args.batch_size)
    n = len(items)
    sides.append(
        {"side": "generate (c2-eval, hf, method sampling)", "seconds": round(sw.seconds, 2)}
    )
    print(f"  generated {n} paths in {sw.seconds:.1f} s", flush=True)
    verdicts: dict[str, list[str]] = {}
    for kind in [k.strip() for k in args.judges.split(",") if k.strip()]:
        with c.Stopwatch() as sw:
            verdicts[kind] = judge_all(kind, items, args.judge_batch_size)
        sides.append({"side": f"judge {kind}", "seconds": round(sw.seconds, 2)})
        print(f"  judged {n} paths with {kind} in {sw.seconds:.1f} s", flush=True)
    for side in sides:
        side["s_per_path"] = round(side["seconds"] / n, 4)
        side["projected_4000_min"] = round(side["seconds"] * FULL_RUN / n / 60, 1)
    gen = sides[0]["seconds"]
    for side in sides[1:]:
        side["share_of_generation"] = round(side["seconds"] / gen, 3)
    print()
    print(
        c.table(
            ["side", "wall s", "s / path", "projected 4,000 paths (min)", "vs generation"],
            [
                [
                    s["side"],
                    s["seconds"],
                    s["s_per_path"],
                    s["projected_4000_min"],
                    s.get("share_of_generation", 1.0),
                ]
                for s in sides
            ],
        )
    )
    said_yes = {kind: labels.count("yes") for kind, labels in verdicts.items()}
    print(f"\n{n} paths; 'yes' verdicts: {said_yes}")
    return c.finish(
        args,
        info,
        {
            "benchmark": "judge_offline",
            "paths": n,
            "rows": args.rows,
            "batch_size": args.batch_size,
            "judge_batch_size": args.judge_batch_size,
            "sides": sides,
            "said_yes": said_yes,
        },
    )


if __name__ == "__main__":
    raise SystemExit(main())
