"""cc_train: the training half of Course-Correction, DPO on C²-SYN (``recipes/dpo.py``).

Modules: :mod:`.recipe` (the recipe's checks: every input problem is one line before the
model loads), :mod:`.launch` (the ``c2-train`` command: those checks, then ``accelerate
launch``), :mod:`.shared_dpo` (the shared-response ``DPOTrainer``) with :mod:`.batches`
(whole requests per batch, each response once), :mod:`.correction` (the correction term) and
:mod:`.metrics` (stock's metrics from sums), :mod:`.shared_options` (what it supports, checked
before loading), :mod:`.compat` (the tested library versions), :mod:`.placement` (one device
per process), :mod:`.adapters` (fp32 QLoRA adapters, the adapter movement check),
:mod:`.model_card` (the card and the C²-EVAL command), :mod:`.cpu_threads` (torch threads on
CPU). The shared trainer is imported only when ``group_by_request`` is on. Heavy imports (torch, TRL) happen only
in the modules that train, so the checks and the launcher start fast.
"""
