"""Capture of prints and log records made inside checkpoint bodies.

Each checkpoint attempt keeps what its thread printed to stdout/stderr and what it
logged through ``logging``. Whole lines go to the journal while the attempt runs
(see runtime.live_logs), so a crash keeps what was printed before it and followers
see lines as they come; the boundary journals the rest with the attempt's outcome.
Output still reaches the terminal as before: capture only copies it.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

from kitaru._redaction import redact
from kitaru.journal.events import LogEntry, journal_text
from kitaru.runtime import live_logs
from kitaru.runtime.context import CallScope, current_call, current_execution

__all__ = ["divert_stdout_to_stderr", "ensure_capturing", "take_logs"]

_lock = threading.Lock()
_MAX_ENTRIES = 10_000
"""Per attempt; a runaway loop of prints must not fill the journal."""


def _keep(source: str, level: str, message: str) -> None:
    scope = current_call.get()
    if scope is None or len(scope.logs) >= _MAX_ENTRIES:
        return
    scope.logs.append(LogEntry(time.time(), level, source, journal_text(redact(message))))
    if not scope.shipping:
        ctx = current_execution.get()
        if ctx is not None:
            live_logs.ship(scope, ctx.writer)


class _Tee:
    """A text stream that writes through and copies whole lines to the current call."""

    def __init__(self, wrapped: TextIO, source: str):
        self._wrapped = wrapped
        self._source = source
        self._level = "ERROR" if source == "stderr" else "INFO"

    def write(self, text: str) -> int:
        written = self._wrapped.write(text)
        scope = current_call.get()
        if scope is not None and text:
            pending = scope.partial.get(self._source, "") + text
            *lines, rest = pending.split("\n")
            scope.partial[self._source] = rest
            for line in lines:
                _keep(self._source, self._level, line)
        return written

    def flush(self) -> None:
        self._wrapped.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._wrapped, name)


class _CallLogHandler(logging.Handler):
    """Copies log records made inside a checkpoint body to that call."""

    def emit(self, record: logging.LogRecord) -> None:
        if current_call.get() is None or record.name.startswith("kitaru"):
            return
        try:
            _keep(record.name, record.levelname, self.format(record))
        except Exception:
            self.handleError(record)


_handler = _CallLogHandler()


def ensure_capturing() -> None:
    """Wrap the current stdout/stderr and hook the root logger, once each."""
    if isinstance(sys.stdout, _Tee) and isinstance(sys.stderr, _Tee) and _handler_installed():
        return
    with _lock:
        if not isinstance(sys.stdout, _Tee):
            sys.stdout = _Tee(sys.stdout, "stdout")
        if not isinstance(sys.stderr, _Tee):
            sys.stderr = _Tee(sys.stderr, "stderr")
        if not _handler_installed():
            logging.getLogger().addHandler(_handler)


def divert_stdout_to_stderr() -> tuple[TextIO, Callable[[], None]]:
    """Send whatever is printed to stdout to stderr instead, until the undo is called.

    For a command whose stdout must hold nothing but its JSON: prints made in
    checkpoints still reach the terminal (on stderr) and are still journaled as
    ``stdout`` lines. Return the real stdout (to write the JSON to) and the undo.
    """
    ensure_capturing()
    out, err = sys.stdout, sys.stderr
    if isinstance(out, _Tee) and isinstance(err, _Tee):
        real = out._wrapped
        out._wrapped = err._wrapped

        def undo() -> None:
            out._wrapped = real

        return real, undo
    # Something replaced the streams after capture began: divert without the copy.
    sys.stdout = err

    def put_back() -> None:
        sys.stdout = out

    return out, put_back


def _handler_installed() -> bool:
    return _handler in logging.getLogger().handlers


def take_logs(scope: CallScope) -> list[LogEntry]:
    """What the attempt printed or logged and is not journaled yet, including a last
    unterminated line. Later lines of the attempt are no longer shipped live."""
    for source, rest in scope.partial.items():
        if rest and len(scope.logs) < _MAX_ENTRIES:
            level = "ERROR" if source == "stderr" else "INFO"
            scope.logs.append(LogEntry(time.time(), level, source, journal_text(redact(rest))))
    scope.partial.clear()
    return live_logs.finish(scope)
