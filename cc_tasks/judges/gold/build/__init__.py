"""The tools that build the judge gold set (``cc_tasks/judges/gold/gold.jsonl``).

A build step of the judges, run from the repository root (outputs under ``runs/gold``)::

    OMP_NUM_THREADS=1 python -m cc_tasks.judges.gold.build candidates --out runs/gold/runs
    python -m cc_tasks.judges.gold.build items --candidates runs/gold/runs/candidates.jsonl --out runs/gold
    # annotators write labels_a.jsonl / labels_b.jsonl (id, label, borderline, reason);
    # each A/B disagreement gets a line in settled.jsonl (id, label, reason)
    python -m cc_tasks.judges.gold.build merge --force   # rewrites the package's gold.jsonl

- ``candidates`` (:mod:`.make_candidates`): the model's continuations, generated through ``c2-eval``;
- ``items`` (:mod:`.build_items`): ids, the split and the unlabelled file for the annotators,
  joining the candidates with the hand-written hard cases (``handwritten.jsonl`` here);
- ``merge`` (:mod:`.merge_labels`): manifest + labels -> ``gold.jsonl``, with the counts table.

Each step is also a module of its own (``python -m cc_tasks.judges.gold.build.merge_labels``).
"""
