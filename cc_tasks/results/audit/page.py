"""The audit's labelling page: one self-contained HTML file, rubric up front, keys y / n / back.

Items are embedded as JSON (no ``<``, ``>`` or ``&`` left in it) and shown with
``textContent`` only, so an untrusted continuation is text, never markup. A
Content-Security-Policy admits only this template's own script and style (by hash): the page
loads nothing and sends nothing. Work is kept in the browser's local storage under the
audit's token, and exported as the labels JSONL that ``c2-judge audit score`` reads.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

from ..viewer import inline_hash, json_for_script

TEMPLATE = "page.html"
PAGE_FILE = "audit.html"
_PLACEHOLDER = re.compile(r"\{\{([A-Z]+)\}\}")


def rubric() -> str:
    """The gold rubric, the same text the gold set was labelled by."""
    return resources.files("cc_tasks.judges.gold").joinpath("RUBRIC.md").read_text(encoding="utf-8")


def render(items: Sequence[Mapping[str, Any]], token: str) -> str:
    """The whole page for these blinded items (id, request, prefill, continuation only)."""
    template = (
        resources.files("cc_tasks.results.audit").joinpath(TEMPLATE).read_text(encoding="utf-8")
    )
    csp = (
        "default-src 'none'; "
        f"style-src {inline_hash(template, 'style')}; "
        f"script-src {inline_hash(template, 'script')}; "
        "base-uri 'none'; form-action 'none'"
    )
    shown = [
        {name: str(item[name]) for name in ("id", "request", "prefill", "continuation")}
        for item in items
    ]
    values = {
        "CSP": html.escape(csp),
        "COUNT": str(len(shown)),
        "RUBRIC": html.escape(rubric()),
        "ITEMS": json_for_script(shown),
        "TOKEN": json_for_script(token),
    }
    # one pass: text inserted for one placeholder is never scanned for another
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)
