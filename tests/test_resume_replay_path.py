"""A resume's recorded calls: outputs read only when used, and unreadable ones named clearly."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import TIMEOUT, store_file

import kitaru
from kitaru import KitaruUserCodeError
from kitaru.client import ExecutionsClient
from kitaru.journal.sqlite import SqliteStore


class CountingStore(SqliteStore):
    """The SQLite store, counting the payloads it hands out."""

    def __init__(self, path: Path):
        super().__init__(path)
        self.payload_reads = 0

    def read_payload(self, digest: str) -> bytes:
        self.payload_reads += 1
        return super().read_payload(digest)


@dataclass
class Note:
    text: str


@dataclass
class Memo:
    """Only the unreadable-value test decodes it (decoded classes are remembered)."""

    text: str


FAIL = {"finish": True}


@kitaru.checkpoint
def draft(topic: str) -> Note:
    return Note(f"notes on {topic}: " + "lorem ipsum " * 40)  # stored as a payload


@kitaru.checkpoint
def shorten(note: Note) -> str:
    return note.text[:12]


@kitaru.checkpoint
def finish(summary: str) -> str:
    if FAIL["finish"]:
        raise RuntimeError("finish failed, as the test asked")
    return summary.upper()


@kitaru.flow
def summarise(topic: str) -> Any:
    return finish(shorten(draft(topic)))


@kitaru.flow
def reads_the_note(topic: str) -> Any:
    note = draft(topic)
    finish("first")
    return note.load().text[:5]


@kitaru.checkpoint
def jot(topic: str) -> Memo:
    return Memo(f"memo on {topic}")


@kitaru.flow
def reads_the_memo(topic: str) -> Any:
    memo = jot(topic)
    finish("first")
    return memo.load().text[:4]


def failed(flow: Any) -> str:
    """Run ``flow`` until ``finish`` fails; return the execution id."""
    FAIL["finish"] = True
    handle = flow.run("kitaru")
    with pytest.raises(KitaruUserCodeError):
        handle.wait(timeout=TIMEOUT)
    FAIL["finish"] = False
    return str(handle.exec_id)


class TestRecordedOutputsAreReadWhenUsed:
    """A retry reads a recorded output only when the flow body or a live call uses it."""

    def test_an_output_only_passed_to_recorded_calls_is_never_read(self) -> None:
        """A large recorded output handed only to a call that replays is not read back."""
        exec_id = failed(summarise)
        store = CountingStore(store_file())
        assert ExecutionsClient(store).retry(exec_id).wait(timeout=TIMEOUT) == "NOTES ON KIT"
        assert store.payload_reads == 0

    def test_an_output_the_body_loads_is_read(self) -> None:
        """The same output, loaded in the flow body, is read and is the recorded value."""
        exec_id = failed(reads_the_note)
        store = CountingStore(store_file())
        assert ExecutionsClient(store).retry(exec_id).wait(timeout=TIMEOUT) == "notes"
        assert store.payload_reads == 1


class TestUnreadableRecordedOutputs:
    """A recorded output that cannot be rebuilt fails the run, saying so, when it is used."""

    def test_a_recorded_value_of_a_removed_class_fails_clearly(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The retry fails naming the value that cannot be read, not with a bare traceback."""
        exec_id = failed(reads_the_memo)
        monkeypatch.delattr(sys.modules[__name__], "Memo")
        retried = ExecutionsClient(SqliteStore(store_file())).retry(exec_id)
        with pytest.raises(KitaruUserCodeError, match="recorded value cannot be read") as raised:
            retried.wait(timeout=TIMEOUT)
        assert "Memo cannot be imported any more; restore it" in str(raised.value)
        assert raised.value.exec_id == exec_id
