"""C²-SYN: synthetic course-correction preference data (SPEC section 3).

Stages: :mod:`.generate` (rows -> six ranked responses, resumable shards),
:mod:`.pairs` (15 preference pairs per request), :mod:`.hub` (dataset card,
Hub folder, push); :mod:`.truncate` holds the punctuation prefixes and the
triggers, :mod:`.backends` the synthesisers, :mod:`.cli` the ``c2-syn`` command.
"""

from .truncate import PUNCTUATION, TRIGGERS, plan_request

__all__ = ["PUNCTUATION", "TRIGGERS", "plan_request"]
