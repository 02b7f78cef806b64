"""Reading an execution's state back from its journal: the read every path starts with.

Apart from the runner, so that the client's read-only paths (``get``, ``list``, logs)
load the journal without importing what runs a flow.
"""

from __future__ import annotations

from kitaru.errors import KitaruStateError
from kitaru.journal.store import Store
from kitaru.replay.state import ExecutionState, fold
from kitaru.runtime.collector import collector_paused

__all__ = ["load_state", "read_state"]


def load_state(store: Store, exec_id: str) -> ExecutionState:
    """Read and fold an execution's journal; unknown ids raise ``KitaruStateError``."""
    if store.get_execution(exec_id) is None:
        raise KitaruStateError(
            f"No execution {exec_id} in the journal {store.location}. "
            "List executions with `kitaru executions list`.",
            exec_id=exec_id,
        )
    return read_state(store, exec_id)


def read_state(store: Store, exec_id: str) -> ExecutionState:
    """Read and fold an execution's whole journal, with the collector paused meanwhile.

    The events are folded as they are read, a batch at a time: a resume of a long
    journal never holds every event at once.
    """
    events = store.stream_events(exec_id)
    try:
        with collector_paused():
            return fold(exec_id, events)
    finally:
        # A fold that stops at a bad event lets go of the read now, not when the
        # exception and its traceback are gone.
        events.close()
