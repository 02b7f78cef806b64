"""The runtime: running flow bodies, durable calls, ownership and recovery.

``current_execution_id()`` (also ``kitaru.current_execution_id``) is public, and
``_get_current_execution_id`` is the name Kitaru's documentation imports it by.
"""

from __future__ import annotations

__all__ = ["_get_current_execution_id", "current_execution_id"]


def current_execution_id() -> str | None:
    """The id of the execution running this code (flow body or checkpoint), else None."""
    # Imported here: this package's modules import one another, and the package itself
    # must stay importable first.
    from kitaru.runtime.context import current_execution

    ctx = current_execution.get()
    return None if ctx is None else ctx.exec_id


def _get_current_execution_id() -> str | None:
    """Same as ``current_execution_id()``, under the name Kitaru's examples import."""
    return current_execution_id()
