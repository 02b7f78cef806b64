"""A ``fetch`` checkpoint that reads "the web" (see ``drift``)."""

from __future__ import annotations

from kitaru import checkpoint


@checkpoint
def fetch(key: str) -> str:
    return f"web:{key}"
