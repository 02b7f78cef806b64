"""A ``fetch`` checkpoint that reads "the database": same short name as ``drift_web.fetch``."""

from __future__ import annotations

from kitaru import checkpoint


@checkpoint
def fetch(key: str) -> str:
    return f"db:{key}"
