"""Drive a generated flow through real child processes that really die.

:class:`ChildDriver` is the counterpart of ``harness.Driver`` with real processes: the
same ledgers after every process, checked by the same ``harness.check_books``.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from helpers import REPO, TIMEOUT, child_env, kitaru_command

from kitaru._config import store_url
from kitaru._flow_handle import FlowHandle
from kitaru._stores import new_store
from kitaru.runtime.ownership import process_started

from .crashing import DEATH_EXIT_CODE, CrashPoint, Mortal
from .harness import EchoProvider, Journey, Ledger, answer_waits, take_ledger

__all__ = ["ChildDriver", "Segment"]


Segment = CrashPoint | float | None
"""How one child process ends: it dies at a crash point, it is SIGKILLed from outside
after that many seconds, or (None) it runs to its end or to a wait."""


class ChildDriver:
    """Runs executions of the interpreter flow in real child processes that really die.

    The first process runs ``python -m tests.prop_flows.interpreter run``. A process
    that must die at an ``append``/``torn``/``body`` point is the interpreter with
    ``--crash`` (it calls ``os._exit``); at an ``llm`` point the fake provider SIGKILLs
    it while its request is in flight. Every other resume is the real
    ``kitaru executions resume ID`` command, started in a folder with no flow code, and
    SIGKILLed after a delay when the segment says so.
    """

    def __init__(
        self,
        location: str | Path,
        provider: EchoProvider,
        elsewhere: Path,
        *,
        module: str = "tests.prop_flows.interpreter",
        env: Mapping[str, str] | None = None,
    ):
        self.url = store_url(str(location))
        self.env = dict(env or {})
        """More environment for every child (e.g. ``PROP_FLUSH_AFTER``)."""
        self.module = module
        """The module whose flow runs the steps (``interpreter`` or ``async_interpreter``)."""
        self.provider = provider
        self.elsewhere = elsewhere
        self.observer = new_store(self.url)
        self.max_segments = 30

    def close(self) -> None:
        self.observer.close()

    def _env(self) -> dict[str, str]:
        return child_env(KITARU_STORE=self.url, PYTHONUNBUFFERED="1", **self.env)

    def _command(self, exec_id: str | None, steps: Any, log: Path, segment: Segment) -> list[str]:
        crash = (
            ["--crash", str(segment)]
            if isinstance(segment, CrashPoint) and segment.kind != "llm"
            else []
        )
        interpreter = [sys.executable, "-m", self.module]
        if exec_id is None:
            return [*interpreter, "run", json.dumps(steps), str(log), *crash]
        if crash:
            return [*interpreter, "resume", exec_id, *crash]
        return kitaru_command("executions", "resume", exec_id, "-o", "json")

    def _run_segment(self, command: list[str], segment: Segment) -> str | None:
        """Run one child to its end or its death; return where it died, if it did."""
        cwd = REPO if command[1:3] == ["-m", self.module] else self.elsewhere
        proc = subprocess.Popen(
            command,
            cwd=cwd,
            env=self._env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        if isinstance(segment, CrashPoint) and segment.kind == "llm":
            counter = Mortal(segment)

            def on_request() -> None:
                if counter.due("llm"):
                    proc.send_signal(signal.SIGKILL)
                    deadline = time.monotonic() + TIMEOUT
                    while process_started(proc.pid) is not None:
                        assert time.monotonic() < deadline, "a killed child lived on"
                        time.sleep(0.002)

            self.provider.on_request = on_request
        try:
            if isinstance(segment, float):
                try:
                    proc.wait(timeout=segment)
                except subprocess.TimeoutExpired:
                    proc.send_signal(signal.SIGKILL)
            out, err = proc.communicate(timeout=TIMEOUT)
        finally:
            self.provider.on_request = None
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        if proc.returncode in (-signal.SIGKILL, DEATH_EXIT_CODE):
            how = "SIGKILL" if proc.returncode < 0 else "os._exit"
            if isinstance(segment, float):
                return f"{how} after {segment:.3f} s"
            return f"{how} at {segment}"
        assert proc.returncode == 0, (command, proc.returncode, out, err)
        assert "Traceback" not in err, err
        return None

    def drive(self, steps: list[list[Any]], log: Path, segments: list[Segment]) -> Journey:
        since = self.provider.count
        exec_id: str | None = None
        ledgers = [Ledger(None, Counter(), Counter())]
        for number in range(self.max_segments):
            segment = segments[number] if number < len(segments) else None
            died_at = self._run_segment(self._command(exec_id, steps, log, segment), segment)
            if exec_id is None:
                rows = self.observer.list_executions()
                assert len(rows) <= 1, rows
                exec_id = rows[0].exec_id if rows else None
            ledger = take_ledger(
                self.observer,
                exec_id,
                died_at=died_at,
                log=log,
                provider=self.provider,
                since=since,
            )
            ledgers.append(ledger)
            if exec_id is None:
                continue
            assert self.observer.live_lease(exec_id) is None, "a dead process still holds its lease"
            if ledger.status == "completed":
                result = FlowHandle(exec_id, store=self.observer).get()
                return Journey(exec_id, result, ledgers)
            answer_waits(self.observer, exec_id)
        raise AssertionError(f"no end after {self.max_segments} processes: {ledgers[-1]}")
