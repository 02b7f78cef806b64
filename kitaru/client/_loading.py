"""``kitaru.load()``: read a saved artifact, or a call's output, of any execution.

It only reads the journal, so it is the client's ``artifacts.find(...).load()`` under
the short name Kitaru documents; it can be called anywhere, a checkpoint included.
"""

from __future__ import annotations

from typing import Any

__all__ = ["load"]


def load(exec_id: str, name: str) -> Any:
    """Load an artifact saved by ``exec_id``, or one of its checkpoint outputs, by name."""
    from kitaru.client import KitaruClient

    return KitaruClient().artifacts.find(exec_id, name).load()
