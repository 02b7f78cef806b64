"""Lines a checkpoint prints reach the journal while it runs, not only when it ends.

So output printed before a crash is kept, ``kitaru executions logs --follow`` shows a
line within a second of its print, and a resumed attempt's lines are not mixed with or
shown as those of the attempt that crashed.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from helpers import REPO, TIMEOUT, background, child_env, kitaru, kitaru_command, started

from kitaru import checkpoint, flow
from kitaru._stores import open_store
from kitaru.client import KitaruClient
from kitaru.journal.events import LogsCaptured
from kitaru.runtime.live_logs import SHIP_EVERY
from kitaru.runtime.writer import FLUSH_AFTER

SHIPPED_WITHIN = SHIP_EVERY + 2 * FLUSH_AFTER + 0.1
"""How far the journal may be behind a print, with room for a loaded machine."""


def messages(exec_id: str) -> list[tuple[int, str]]:
    return [(line.attempt, line.message) for line in KitaruClient().executions.logs(exec_id)]


def wait_until(predicate: Any, timeout: float, what: str) -> float:
    """Poll ``predicate`` until true; return how long it took."""
    begun = time.monotonic()
    while not predicate():
        if time.monotonic() - begun > timeout:
            pytest.fail(f"{what} did not happen within {timeout} s")
        time.sleep(0.01)
    return time.monotonic() - begun


class LineReader:
    """Reads a process's stdout on a thread, noting when each line arrived."""

    def __init__(self, proc: subprocess.Popen[str]):
        assert proc.stdout is not None
        self.lines: list[tuple[float, dict[str, Any]]] = []
        self._stdout = proc.stdout
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self._stdout:
            self.lines.append((time.monotonic(), json.loads(line)))

    def arrival(self, message: str, timeout: float) -> float:
        """When the line with ``message`` arrived, waiting up to ``timeout`` seconds."""
        found: list[float] = []

        def seen() -> bool:
            found.extend(at for at, row in list(self.lines) if row["message"] == message)
            return bool(found)

        wait_until(seen, timeout, f"the follower showing {message!r}")
        return found[0]

    def messages(self) -> list[str]:
        self._thread.join(TIMEOUT)
        return [row["message"] for _, row in self.lines]


_release = threading.Event()


@checkpoint
def waits_for_release() -> str:
    print("before release")
    _release.wait(TIMEOUT)
    print("after release")
    return "done"


@flow
def held() -> str:
    return waits_for_release()  # type: ignore[return-value]


@checkpoint
def floods(lines: int) -> int:
    for i in range(lines):
        print(f"line {i}")
    return lines


@flow
def flood(lines: int) -> int:
    return floods(lines)  # type: ignore[return-value]


class TestLinesOfARunningAttempt:
    def test_the_client_reads_lines_while_the_checkpoint_runs(self) -> None:
        """``executions.logs()`` returns a line printed by a checkpoint that has not ended."""
        _release.clear()
        handle = held.run(background=True)
        try:
            wait_until(
                lambda: (1, "before release") in messages(handle.exec_id),
                SHIPPED_WITHIN + 1,
                "the line reaching the journal",
            )
            assert KitaruClient().executions.get(handle.exec_id).status == "running"
        finally:
            _release.set()
        assert handle.wait() == "done"
        assert messages(handle.exec_id) == [(1, "before release"), (1, "after release")]

    def test_many_lines_are_journaled_in_few_events_and_capped(self) -> None:
        """A burst of prints is batched into a few events, and an attempt keeps 10,000 lines."""
        handle = flood.run(10_050)
        assert handle.wait() == 10_050
        lines = KitaruClient().executions.logs(handle.exec_id)
        assert [line.message for line in lines] == [f"line {i}" for i in range(10_000)]
        events = open_store().read_events(handle.exec_id)
        chunks = [e.event for e in events if isinstance(e.event, LogsCaptured)]
        assert 1 <= len(chunks) <= 20


_slow_printed = threading.Event()
_fast_done = threading.Event()
_slow_release = threading.Event()


@checkpoint
def prints_and_holds() -> str:
    print("held line")
    _slow_printed.set()
    _slow_release.wait(TIMEOUT)
    return "held"


@checkpoint
def prints_after_the_held_one() -> str:
    _slow_printed.wait(TIMEOUT)
    print("later line")
    return "quick"


@flow
def side_by_side() -> list[str]:
    held_call = prints_and_holds.submit()
    quick_call = prints_after_the_held_one.submit()
    quick = quick_call.load()
    _fast_done.set()
    return [held_call.load(), quick]


class TestLinesReachTheJournalInPrintOrder:
    def test_an_attempt_that_ends_takes_earlier_lines_of_running_ones_along(self) -> None:
        """When a checkpoint ends, lines a concurrent one printed before are journaled too."""
        for event in (_slow_printed, _fast_done, _slow_release):
            event.clear()
        handle = side_by_side.run(background=True)
        try:
            assert _fast_done.wait(TIMEOUT)
            # The held checkpoint's line was printed before the other one's, so it is in
            # the journal no later than it, not a shipping interval later.
            assert messages(handle.exec_id) == [(1, "held line"), (1, "later line")]
            events = [e.event for e in open_store().read_events(handle.exec_id)]
            calls = [e.call for e in events if isinstance(e, LogsCaptured)]
            assert calls == ["prints_and_holds", "prints_after_the_held_one"]
        finally:
            _slow_release.set()
        assert handle.wait() == ["held", "quick"]


class TestCrashKeepsPrintedLines:
    @pytest.mark.slow
    def test_sigkill_mid_checkpoint_keeps_lines_and_resume_adds_its_own(
        self, tmp_path: Path
    ) -> None:
        """Lines printed before a SIGKILL are in the journal; the resumed attempt's follow once."""
        printed, release = tmp_path / "printed", tmp_path / "release"
        env = child_env(STALL_PRINTED=str(printed), STALL_RELEASE=str(release))
        with background(
            [sys.executable, "-m", "tests.mgmt_flows.stalled_printer"], cwd=REPO, env=env
        ) as runner:
            exec_id = started(runner)
            wait_until(printed.exists, TIMEOUT, "the checkpoint printing")
            # The bound this test checks: the journal is at most this far behind a print.
            time.sleep(SHIPPED_WITHIN)
            runner.send_signal(signal.SIGKILL)
            runner.wait(timeout=TIMEOUT)
        crashed = [
            (1, "warming up"),
            (1, "first words"),
            (1, "logged while running"),
            (1, "second words"),
        ]
        assert messages(exec_id) == crashed
        release.touch()
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        resumed = kitaru("executions", "resume", exec_id, "-o", "json", cwd=elsewhere, env=env)
        assert resumed.returncode == 0, resumed.stderr
        assert messages(exec_id) == [
            *crashed,
            (2, "warming up"),
            (2, "first words"),
            (2, "logged while running"),
            (2, "second words"),
            (2, "released"),
        ]


class TestFollowIsLive:
    @pytest.mark.slow
    def test_follow_shows_a_line_within_a_second_of_its_print(self, tmp_path: Path) -> None:
        """``logs --follow`` prints a line within 1 s while its checkpoint still runs."""
        go, printed, release = tmp_path / "go", tmp_path / "printed", tmp_path / "release"
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        env = child_env(STALL_GO=str(go), STALL_PRINTED=str(printed), STALL_RELEASE=str(release))
        with background(
            [sys.executable, "-m", "tests.mgmt_flows.stalled_printer"], cwd=REPO, env=env
        ) as runner:
            exec_id = started(runner)
            with background(
                kitaru_command("executions", "logs", exec_id, "--follow", "-o", "json"),
                cwd=elsewhere,
                env=env,
            ) as follower:
                reader = LineReader(follower)
                # The follower is up and polling once it shows the line printed before
                # the checkpoint held.
                reader.arrival("warming up", TIMEOUT)
                go.touch()
                wait_until(printed.exists, TIMEOUT, "the checkpoint printing")
                begun = time.monotonic()
                shown_after = reader.arrival("first words", 2.0) - begun
                assert not release.exists()
                assert KitaruClient().executions.get(exec_id).status == "running"
                release.touch()
                assert follower.wait(timeout=TIMEOUT) == 0
                shown = reader.messages()  # read to the end before the pipe is drained
            assert runner.wait(timeout=TIMEOUT) == 0
        assert shown_after < 1.0, f"shown {shown_after:.2f} s after its print"
        assert shown == [
            "warming up",
            "first words",
            "logged while running",
            "second words",
            "released",
        ]


class TestDashboardFollowsARunningAttempt:
    @pytest.mark.slow
    def test_the_logs_api_lists_lines_of_a_checkpoint_still_running(self, tmp_path: Path) -> None:
        """``/api/executions/{id}/logs`` holds the lines a running checkpoint has printed."""
        pytest.importorskip("starlette")
        from ui_support import dashboard

        printed, release = tmp_path / "printed", tmp_path / "release"
        env = child_env(STALL_PRINTED=str(printed), STALL_RELEASE=str(release))
        with background(
            [sys.executable, "-m", "tests.mgmt_flows.stalled_printer"], cwd=REPO, env=env
        ) as runner:
            exec_id = started(runner)
            wait_until(printed.exists, TIMEOUT, "the checkpoint printing")
            with dashboard(tmp_path) as ui:
                shown: list[dict[str, Any]] = []

                def second_words_shown() -> bool:
                    shown[:] = [ui.request(f"/api/executions/{exec_id}/logs")[1]]
                    return "second words" in [line["message"] for line in shown[0]["items"]]

                wait_until(second_words_shown, SHIPPED_WITHIN + 5, "the dashboard showing it")
            release.touch()
            assert runner.wait(timeout=TIMEOUT) == 0
        assert shown[0]["following"] is True
        assert [line["message"] for line in shown[0]["items"]] == [
            "warming up",
            "first words",
            "logged while running",
            "second words",
        ]
