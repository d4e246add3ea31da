"""C²-SYN: synthetic course-correction preference data (method section 3).

Stages: :mod:`.generate` (rows -> six ranked responses, resumable shards),
:mod:`.pairs` (15 preference pairs per request), :mod:`.hub` (dataset card,
Hub folder, push), :mod:`.dataset` (the one reader of that folder and the held-out
split by request); :mod:`.truncate` holds the punctuation prefixes and the
triggers, :mod:`.backends` the synthesisers, :mod:`.claims` the chunk claims of
concurrent runs, :mod:`.cli` the ``c2-syn`` command. :mod:`.recipe` and
:mod:`.model_card` serve ``recipes/dpo.py``. See ``synth/README.md``.
"""

from .truncate import PUNCTUATION, TRIGGERS, plan_request

__all__ = ["PUNCTUATION", "TRIGGERS", "plan_request"]
