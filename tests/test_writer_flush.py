"""The journal writer's deferred starts: they ride along with the next append, and a
call that runs long still gets its start written by the flusher thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from kitaru.journal.events import CallStarted, Event, MetadataLogged
from kitaru.runtime.ownership import Ownership
from kitaru.runtime.writer import FLUSH_AFTER, JournalWriter

# Generous: these tests pin that a start is written, not how fast a loaded machine is.
PATIENCE = 5.0


class RecordingStore:
    """Just enough of a Store for the writer: remembers every append."""

    def __init__(self) -> None:
        self.appends: list[tuple[int, list[Event], bool]] = []
        self.changed = threading.Condition()

    def append(
        self,
        exec_id: str,
        first_seq: int,
        events: Sequence[tuple[Event, float]],
        payloads: Mapping[str, bytes] | None = None,
        *,
        owner: str,
        sync: bool = True,
    ) -> None:
        assert owner == "owner-1"
        with self.changed:
            self.appends.append((first_seq, [event for event, _ in events], sync))
            self.changed.notify_all()

    def background_appends(self) -> list[tuple[int, list[Event], bool]]:
        return [a for a in self.appends if not a[2]]

    def wait_for_background(self, count: int) -> list[tuple[int, list[Event], bool]]:
        with self.changed:
            self.changed.wait_for(lambda: len(self.background_appends()) >= count, PATIENCE)
            return self.background_appends()


def _started(position: int) -> CallStarted:
    return CallStarted(
        position=position, identity=f"step_{position}", kind="checkpoint", name="step", call_id="c"
    )


def _done() -> MetadataLogged:
    return MetadataLogged(values={})


def _writer(store: RecordingStore) -> JournalWriter:
    ownership = Ownership(store, "exec-1", "owner-1", ttl=30.0)  # type: ignore[arg-type]
    return JournalWriter(store, ownership, last_seq=1)  # type: ignore[arg-type]


def _wait_until_parked(writer: JournalWriter) -> None:
    deadline = time.monotonic() + PATIENCE
    while not writer.parked:
        assert time.monotonic() < deadline, f"the flusher did not park within {PATIENCE} s"
        time.sleep(FLUSH_AFTER / 10)


def test_quick_calls_write_their_start_with_their_completion() -> None:
    store = RecordingStore()
    writer = _writer(store)
    try:
        for position in range(200):
            writer.defer(_started(position))
            writer.append([_done()])
    finally:
        writer.close()
    assert store.background_appends() == []
    assert len(store.appends) == 200
    assert all(len(events) == 2 and sync for _, events, sync in store.appends)
    assert [seq for seq, _, _ in store.appends] == list(range(2, 402, 2))


def test_a_long_call_gets_its_start_written_by_the_flusher() -> None:
    store = RecordingStore()
    writer = _writer(store)
    try:
        started = time.monotonic()
        writer.defer(_started(0))
        background = store.wait_for_background(1)
        assert time.monotonic() - started >= FLUSH_AFTER * 0.9
        assert background == [(2, [_started(0)], False)]
        writer.append([_done()])
    finally:
        writer.close()
    assert store.appends[-1] == (3, [_done()], True)


def test_a_long_call_after_a_burst_of_quick_ones_still_gets_its_start_written() -> None:
    """After quick calls the flusher is between checks, not parked, so nothing wakes it:
    it must find the new start on its own."""
    store = RecordingStore()
    writer = _writer(store)
    try:
        for position in range(50):
            writer.defer(_started(position))
            writer.append([_done()])
        writer.defer(_started(50))
        background = store.wait_for_background(1)
        assert background == [(102, [_started(50)], False)]
    finally:
        writer.close()


def test_a_long_call_after_the_flusher_parked_still_gets_its_start_written() -> None:
    """Once idle the flusher parks; a start deferred then wakes it, and it writes the start."""
    store = RecordingStore()
    writer = _writer(store)
    try:
        writer.defer(_started(0))
        writer.append([_done()])
        # After one idle look the flusher parks: from then on only a notify wakes it.
        _wait_until_parked(writer)
        writer.defer(_started(1))
        background = store.wait_for_background(1)
        assert background == [(4, [_started(1)], False)]
    finally:
        writer.close()


def test_close_stops_the_flusher() -> None:
    store = RecordingStore()
    writer = _writer(store)
    writer.defer(_started(0))
    writer.append([_done()])
    flusher: Any = writer._flusher
    writer.close()
    flusher.join(PATIENCE)
    assert not flusher.is_alive()
