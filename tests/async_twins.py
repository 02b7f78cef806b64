"""A second async ``search`` checkpoint, in another module than ``test_async.search``."""

from __future__ import annotations

from kitaru import checkpoint


@checkpoint
async def search(topic: str) -> str:
    return f"other {topic}"
