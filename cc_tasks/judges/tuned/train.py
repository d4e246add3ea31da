"""Training the ``tuned`` judge: stored states, the fit, leave-one-source-out CV, and the CLI.

``python -m cc_tasks.judges.tuned cv --data FILE`` trains without each model-written source
of the gold dev split in turn and scores the held-out source (the way the judge will meet
a new model's text), next to the shipped ``probe`` on the same items;
``... train --data FILE`` fits the shipped weights on the whole dev split. The test split
is never read. The frozen lower blocks run once per item; their token states are kept in
``--cache`` (a folder outside the package) so a second command reuses them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..base import NO, YES, JudgeConfigError
from .judge import CONFIG_FILE, JUDGE_VERSION, WEIGHTS_DIR, WEIGHTS_FILE, rule_verdict, weights_sha
from .model import Bottom, Top, TunedConfig

EPOCHS = 2
LEARNING_RATE = 5e-4
# at most this many "no" items per source are trained on (seeded by item id): the model's own
# text is mostly "no", and capping keeps a fit to CPU minutes while every "yes" stays
MAX_NO_PER_SOURCE = 150
BATCH = 8
SEED = 0


def _item_key(model: str, split: int, ids: Sequence[int]) -> str:
    return hashlib.sha256(json.dumps([model, split, list(ids)]).encode()).hexdigest()[:24]


def bottom_states(
    bottom: Bottom, items: Sequence[Any], model: str, split: int, cache: Path | None
) -> tuple[list[Any], list[tuple[int, int]]]:
    """Token states at the split and continuation spans for ``items``, reusing ``cache``."""
    import torch

    encoded = [bottom.encode(item) for item in items]
    keys = [_item_key(model, split, e.ids) for e in encoded]
    stored: dict[str, Any] = {}
    path = cache / f"states-{split}.pt" if cache else None
    if path and path.is_file():
        stored = torch.load(path)
    todo = [i for i, key in enumerate(keys) if key not in stored]
    if todo:
        fresh = bottom.states([encoded[i] for i in todo], progress=True)
        for i, state in zip(todo, fresh, strict=True):
            stored[keys[i]] = state.to(torch.float16)
        if path:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            torch.save(stored, tmp)
            tmp.replace(path)
    return [stored[k] for k in keys], [(e.cont_start, e.cont_end) for e in encoded]


def fit(
    model: str,
    config: TunedConfig,
    states: Sequence[Any],
    spans: Sequence[tuple[int, int]],
    labels: Sequence[str],
    *,
    epochs: int = EPOCHS,
    lr: float = LEARNING_RATE,
    seed: int = SEED,
    log: Any = print,
) -> Top:
    """Train LoRA + head on stored states; classes weighted equally (few ``yes``)."""
    import torch

    from cc_tasks.seeding import stable_rng

    top = Top(model, config, seed=seed)
    y = torch.tensor([label == YES for label in labels], dtype=torch.float32)
    pos = float(y.sum())
    pos_weight = torch.tensor((len(y) - pos) / max(pos, 1.0))
    params = top.parameters()
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    # batches of similar length (little padding), their order shuffled per epoch from a stable seed
    by_len = sorted(range(len(states)), key=lambda i: (states[i].shape[0], i))
    batches = [by_len[s : s + BATCH] for s in range(0, len(by_len), BATCH)]
    total = epochs * len(batches)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0 - step / max(total, 1))
    top.train(True)
    start = time.perf_counter()
    for epoch in range(epochs):
        order = list(range(len(batches)))
        stable_rng("tuned-judge-epoch", seed, epoch).shuffle(order)
        seen, loss_sum = 0, 0.0
        for b in order:
            batch = batches[b]
            logits = top.logits([states[i] for i in batch], [spans[i] for i in batch])
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                logits, y[batch], pos_weight=pos_weight
            )
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            schedule.step()
            opt.zero_grad()
            seen += len(batch)
            loss_sum += float(loss.detach()) * len(batch)
        log(
            f"epoch {epoch + 1}/{epochs}: loss {loss_sum / max(seen, 1):.4f} "
            f"({time.perf_counter() - start:.0f} s)"
        )
    top.train(False)
    return top


def predict(top: Top, states: Sequence[Any], spans: Sequence[tuple[int, int]]) -> list[float]:
    import torch

    order = sorted(range(len(states)), key=lambda i: (states[i].shape[0], i))
    out = [0.0] * len(states)
    with torch.inference_mode():
        for s in range(0, len(order), 16):
            batch = order[s : s + 16]
            probs = torch.sigmoid(top.logits([states[i] for i in batch], [spans[i] for i in batch]))
            for i, p in zip(batch, probs.tolist(), strict=True):
                out[i] = float(p)
    return out


def source_of(gold_item: Any) -> str:
    """The CV group of a gold item: its model condition, or ``handwritten:<kind>``."""
    return gold_item.condition if gold_item.source == "model" else f"handwritten:{gold_item.kind}"


def capped(
    ids: Sequence[str], labels: Sequence[str], sources: Sequence[str], cap: int
) -> list[int]:
    """Indices to train on: every ``yes``, and at most ``cap`` ``no`` per source (by a stable
    hash of the item id, so the same items are kept on every machine)."""
    from cc_tasks.seeding import stable_seed

    keep, taken = [], {}
    order = sorted(range(len(ids)), key=lambda i: stable_seed("tuned-judge-cap", ids[i]))
    for i in order:
        if labels[i] == NO:
            if taken.get(sources[i], 0) >= cap:
                continue
            taken[sources[i]] = taken.get(sources[i], 0) + 1
        keep.append(i)
    return sorted(keep)


def agreement(truth: Sequence[str], said: Sequence[str]) -> dict[str, Any]:
    from cc_tasks.stats import cohen_kappa, point_metrics

    m = point_metrics(truth, said)
    kappa = cohen_kappa(truth, said)
    return {
        "n": len(truth),
        "yes": sum(t == YES for t in truth),
        "said_yes": sum(s == YES for s in said),
        "kappa": None if kappa is None else round(kappa, 4),
        "precision_yes": None if m.get("precision") is None else round(m["precision"], 4),
        "recall_yes": None if m.get("recall") is None else round(m["recall"], 4),
    }


def main(argv: Sequence[str] | None = None) -> int:
    from cc_tasks.errors import CCError, cli_exit

    parser = argparse.ArgumentParser(
        prog="python -m cc_tasks.judges.tuned",
        description="Train the tuned judge on the gold dev split (never the test split).",
    )
    parser.add_argument("command", choices=("train", "cv"))
    parser.add_argument("--data", help="the 500-row C²-EVAL file (default: $C2_EVAL_DATA)")
    parser.add_argument("--gold", help="gold file (default: the shipped gold.jsonl)")
    parser.add_argument("--cache", type=Path, help="folder for the frozen blocks' states")
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR, help="weights folder (train)")
    parser.add_argument("--model", help="model folder (default: the embedded SmolLM2)")
    parser.add_argument("--split-layer", type=int, default=TunedConfig.split)
    parser.add_argument("--rank", type=int, default=TunedConfig.rank)
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--lr", type=float, default=LEARNING_RATE)
    parser.add_argument(
        "--max-no-per-source",
        type=int,
        default=MAX_NO_PER_SOURCE,
        help=f"'no' items trained on per source ({MAX_NO_PER_SOURCE}; 0: all)",
    )
    parser.add_argument(
        "--hold-out", nargs="*", help="cv: the sources to hold out (default: every model source)"
    )
    parser.add_argument("--json", type=Path, help="cv: write the per-source results here")
    args = parser.parse_args(argv)
    try:
        from cc_tasks.embedded import embedded_model_path

        from .. import gold as gold_mod
        from ..card import canonical_model

        dev = [
            g
            for g in gold_mod.load_gold("dev", data_path=args.data, gold_path=args.gold)
            if rule_verdict(g.item) is None  # the judge answers these without the network
        ]
        if not dev:
            raise JudgeConfigError("tuned: no trainable items in the gold dev split")
        model = args.model or embedded_model_path()
        config = TunedConfig(split=args.split_layer, rank=args.rank)
        bottom = Bottom(model, config.split)
        states, spans = bottom_states(
            bottom, [g.item for g in dev], canonical_model(model), config.split, args.cache
        )
        labels = [g.label for g in dev]
        sources = [source_of(g) for g in dev]
        if args.command == "cv":
            return _cv(args, model, config, dev, states, spans, labels, sources)
        train = _train_rows(args, dev, labels, sources, range(len(dev)))
        top = fit_rows(args, model, config, states, spans, labels, train)
        from safetensors.torch import save_file

        args.out.mkdir(parents=True, exist_ok=True)
        save_file(top.state_dict(), str(args.out / WEIGHTS_FILE))
        meta = {
            "judge_version": JUDGE_VERSION,
            "model": canonical_model(model),
            "trained_on": "gold dev split, items the rules do not decide",
            "gold_version": gold_mod.gold_version(args.gold),
            "n": len(train),
            "yes": sum(labels[i] == YES for i in train),
            "max_no_per_source": args.max_no_per_source,
            "epochs": args.epochs,
            "learning_rate": args.lr,
            "batch": BATCH,
            "seed": SEED,
        }
        (args.out / CONFIG_FILE).write_text(replace(config, meta=meta).to_json(), encoding="utf-8")
        print(f"wrote {args.out} (sha256 {weights_sha(args.out)[:12]}, {len(train)} items)")
        return 0
    except (CCError, OSError) as err:
        return cli_exit("tuned", err)


def frozen_baseline(
    states: Sequence[Any], spans: Sequence[tuple[int, int]], labels: Sequence[str], test: Any
) -> list[str]:
    """The probe's method retrained on the same items: ridge logistic regression on the mean
    of the frozen states over the continuation (what fine-tuning has to beat)."""
    import numpy as np

    from ..probe.train import fit_logistic

    def pooled(idx: Sequence[int]) -> Any:
        rows = []
        for i in idx:
            start, end = spans[i]
            span = states[i][start:end] if end > start else states[i][start - 1 : start]
            rows.append(span.float().mean(0).numpy())
        return np.asarray(rows, dtype=np.float64)

    held = set(test)
    train = [i for i in range(len(states)) if i not in held]
    x = pooled(train)
    mean, scale = x.mean(0), np.maximum(x.std(0), 1e-6)
    y = np.array([labels[i] == YES for i in train], dtype=np.float64)
    coef, intercept = fit_logistic((x - mean) / scale, y)
    p = 1.0 / (1.0 + np.exp(-(((pooled(test) - mean) / scale) @ coef + intercept)))
    return [YES if v >= 0.5 else NO for v in p]


def fit_rows(args, model, config, states, spans, labels, rows) -> Top:
    """:func:`fit` on the items ``rows`` with the command line's epochs and learning rate."""
    return fit(
        model,
        config,
        [states[i] for i in rows],
        [spans[i] for i in rows],
        [labels[i] for i in rows],
        epochs=args.epochs,
        lr=args.lr,
    )


def _train_rows(args, dev, labels, sources, rows) -> list[int]:
    rows = list(rows)
    if not args.max_no_per_source:
        return rows
    keep = capped(
        [dev[i].id for i in rows],
        [labels[i] for i in rows],
        [sources[i] for i in rows],
        args.max_no_per_source,
    )
    return [rows[j] for j in keep]


def _cv(args, model, config, dev, states, spans, labels, sources) -> int:
    from ..probe.judge import ProbeJudge

    model_sources = sorted({s for s, g in zip(sources, dev, strict=True) if g.source == "model"})
    held = args.hold_out or model_sources
    probe = ProbeJudge(progress=False)
    results = {}
    for source in held:
        test = [i for i, s in enumerate(sources) if s == source]
        train = _train_rows(
            args, dev, labels, sources, [i for i, s in enumerate(sources) if s != source]
        )
        if not test:
            raise JudgeConfigError(f"tuned: no dev items of source {source!r}")
        print(f"hold out {source}: train {len(train)}, test {len(test)}", flush=True)
        top = fit_rows(args, model, config, states, spans, labels, train)
        probs = predict(top, [states[i] for i in test], [spans[i] for i in test])
        truth = [labels[i] for i in test]
        said = [YES if p >= config.threshold else NO for p in probs]
        probe_said = [v.label for v in probe.judge([dev[i].item for i in test])]
        import numpy as np

        try:
            frozen = agreement(truth, frozen_baseline(states, spans, labels, test))
        except np.linalg.LinAlgError:  # too few items or degenerate states (tiny test models)
            frozen = None
        results[source] = {
            "tuned": agreement(truth, said),
            "probe": agreement(truth, probe_said),
            "frozen_lr": frozen,
        }
        print(f"  {source}: {json.dumps(results[source])}", flush=True)
    if args.json:
        record = {
            "config": {
                "split": config.split,
                "rank": config.rank,
                "epochs": args.epochs,
                "lr": args.lr,
            },
            "held_out": results,
        }
        args.json.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
