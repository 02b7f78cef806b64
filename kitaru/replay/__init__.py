"""Pure replay logic: fold events into state, match calls, report divergence."""

from kitaru.replay.matching import Divergence, Verdict, describe, match_call, unmade_calls, verdict
from kitaru.replay.state import (
    AttemptRecord,
    CallRecord,
    ExecutionState,
    JournalShapeError,
    fold,
    merge_metadata,
)

__all__ = [
    "AttemptRecord",
    "CallRecord",
    "Divergence",
    "ExecutionState",
    "JournalShapeError",
    "Verdict",
    "describe",
    "fold",
    "match_call",
    "merge_metadata",
    "unmade_calls",
    "verdict",
]
