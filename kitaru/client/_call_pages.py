"""Some calls of an execution, folded from their own events through the call index.

``execution_calls`` keeps, per call, the seqs between which its events lie. A view of
one page of calls (or of one call) reads the execution's summary events and the events
of those seqs, keeps the ones that belong to the wanted calls, and folds that
selection: each wanted call's record comes out as the whole journal's fold makes it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

from kitaru.journal.events import ArtifactSaved, MetadataLogged, event_tag
from kitaru.journal.read_model import call_touch
from kitaru.journal.store import CallIndexRow, Store, StoredEvent
from kitaru.replay.selection import fold_selection
from kitaru.replay.state import SUMMARY_EVENTS, CallRecord, ExecutionState

__all__ = ["CallSnapshot", "original_call_ids"]

_ARTIFACT_EVENTS = frozenset({str(ArtifactSaved.__struct_config__.tag)})


def _merged(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Inclusive seq ranges, overlapping or touching ones joined, in order."""
    out: list[tuple[int, int]] = []
    for first, last in sorted(ranges):
        if out and first <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], last))
        else:
            out.append((first, last))
    return out


class CallSnapshot:
    """The calls of one execution up to the event a summary of it ended at."""

    def __init__(self, summary: ExecutionState, store: Store, events: Sequence[StoredEvent]):
        """``events``: what the summary was folded from (``SUMMARY_EVENTS`` and the last)."""
        self.exec_id = summary.exec_id
        self.last_seq = summary.last_seq
        self._store = store
        # What decides the execution's status and retries; a call's metadata comes with
        # that call's events, and the last event read only marked how far the journal went.
        self._summary = [
            e
            for e in events
            if e.seq <= self.last_seq
            and event_tag(e.event) in SUMMARY_EVENTS
            and not (isinstance(e.event, MetadataLogged) and e.event.call is not None)
        ]

    def rows(self, identities: Collection[str]) -> list[CallIndexRow]:
        """The index rows of these calls, as far as the snapshot goes."""
        found = self._store.call_rows(self.exec_id, identities)
        return [row for row in found if row.first_seq <= self.last_seq]

    def fold(
        self, rows: Sequence[CallIndexRow], extra: Sequence[StoredEvent] = ()
    ) -> ExecutionState:
        """The summary folded with every event of the calls of ``rows`` (and ``extra``)."""
        wanted = {row.identity for row in rows}
        ranges = _merged((row.first_seq, min(row.last_seq, self.last_seq)) for row in rows)
        picked = {e.seq: e for e in self._summary}
        for stored in self._store.read_event_ranges(self.exec_id, ranges):
            touch = call_touch(stored.event)
            if touch is not None and touch.identity in wanted:
                picked[stored.seq] = stored
        for stored in extra:
            if stored.seq <= self.last_seq:
                picked[stored.seq] = stored
        return fold_selection(self.exec_id, [picked[seq] for seq in sorted(picked)])

    def call_ids(self, state: ExecutionState, identities: Iterable[str]) -> dict[str, str]:
        """Call ids of the calls with these identities (read from their first start
        when the state does not hold them)."""
        found = {i: state.calls[i].call_id for i in identities if i in state.calls}
        missing = {i for i in identities if i not in found}
        if missing:
            for stored in self._first_events(self.rows(missing)):
                call_id = getattr(stored.event, "call_id", None)
                identity = getattr(stored.event, "identity", None)
                if isinstance(call_id, str) and isinstance(identity, str):
                    found[identity] = call_id
        return found

    def _first_events(self, rows: Sequence[CallIndexRow]) -> list[StoredEvent]:
        ranges = _merged((row.first_seq, row.first_seq) for row in rows)
        return self._store.read_event_ranges(self.exec_id, ranges)

    def saved(self) -> ExecutionState:
        """The summary folded with every ``kitaru.save()`` event and the first start of
        each call that saved: what saved artifacts are listed (and named) from."""
        saved = [
            e
            for e in self._store.read_events(self.exec_id, only=_ARTIFACT_EVENTS)
            if isinstance(e.event, ArtifactSaved) and e.seq <= self.last_seq
        ]
        callers = {e.event.call for e in saved if isinstance(e.event, ArtifactSaved)}
        firsts = self._first_events(self.rows(callers)) if callers else []
        return self.fold([], [*firsts, *saved])


def _call_ids_at(store: Store, exec_id: str, rows: Sequence[CallIndexRow]) -> dict[str, str]:
    """Identity -> call id of the indexed calls ``rows``, from their first starts."""
    ranges = _merged((row.first_seq, row.first_seq) for row in rows)
    found: dict[str, str] = {}
    for stored in store.read_event_ranges(exec_id, ranges):
        call_id = getattr(stored.event, "call_id", None)
        identity = getattr(stored.event, "identity", None)
        if isinstance(call_id, str) and isinstance(identity, str):
            found[identity] = call_id
    return found


def original_call_ids(
    store: Store, records: Sequence[CallRecord]
) -> tuple[dict[str, str], list[CallRecord]]:
    """For calls that reused another execution's output: that execution's call of the
    same identity, found through its call index (not by folding its journal).

    Returns the call ids found, and the calls whose original has another identity (a
    replay matches those by position or output): those need the other execution's fold.
    """
    by_source: dict[str, list[CallRecord]] = {}
    for record in records:
        source = record.reused_from or record.cached_from
        if source is not None:
            by_source.setdefault(source, []).append(record)
    found: dict[str, str] = {}
    rest: list[CallRecord] = []
    for source, group in by_source.items():
        if store.get_execution(source) is None:
            continue  # gone: the call has no original to name
        rows = store.call_rows(source, {record.identity for record in group})
        ids = _call_ids_at(store, source, rows)
        for record in group:
            if record.identity in ids:
                found[record.identity] = ids[record.identity]
            else:
                rest.append(record)
    return found, rest
