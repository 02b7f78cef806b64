"""Ctrl-C and SIGTERM on a process that runs executions.

The first SIGINT or SIGTERM asks every execution of the process to stop: no new durable
call starts (the next one raises ``Interrupted``), calls already running finish and are
recorded, and each execution lets go of its lease only once none of its threads can
record anything more. The signal then does what it did before: SIGINT raises
``KeyboardInterrupt`` in the main thread, SIGTERM raises ``SystemExit(143)``.

A second signal exits at once with ``os._exit``: no thread records anything after it,
and the leases die with the process (their kernel locks are dropped by the kernel).

The handlers are installed from the main thread, and only over Python's defaults: a
program that set its own handlers keeps them (it can call ``request_stop`` itself).
With no execution running, they behave exactly as the defaults.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from types import FrameType

__all__ = [
    "Interrupted",
    "install_stop_handlers",
    "request_stop",
    "running",
    "stop_requested",
]


class Interrupted(BaseException):
    """The process is stopping: this durable call does not start.

    A BaseException so that ``except Exception`` in user code cannot swallow it.
    """


class _ProcessState:
    """What this process knows about stopping; renewed in a forked child."""

    def __init__(self) -> None:
        self.stop = False
        """Set by the first signal; read by every thread before a durable call starts."""
        self.running = 0
        """Executions being run by this process right now."""
        # Reentrant, and never waited on by the handlers: Python runs a signal handler on
        # the main thread between any two bytecodes, also while that thread holds this
        # lock (in ``running`` or ``request_stop``). A plain lock would deadlock there,
        # and a second Ctrl-C would then hang instead of exiting.
        self.lock = threading.RLock()
        self.installed = False


_state = _ProcessState()


def stop_requested() -> bool:
    return _state.stop


def request_stop() -> None:
    """Start no new durable call in this process (calls already running finish).

    The request holds for the executions running now; once they have all let go, new
    executions run normally again.
    """
    with _state.lock:
        if _state.running:
            _state.stop = True


class running:  # noqa: N801  (a context manager, named like contextlib's)
    """Count an execution as running in this process for as long as the block lasts."""

    def __enter__(self) -> None:
        with _state.lock:
            if not _state.running:
                # Also cleared when the last one leaves; here too, in case a signal cut
                # that ``__exit__`` short (a program that caught the KeyboardInterrupt).
                _state.stop = False
            _state.running += 1

    def __exit__(self, *exc: object) -> None:
        with _state.lock:
            _state.running -= 1
            if not _state.running:
                _state.stop = False


def _say(text: str) -> None:
    # Straight to the descriptor: the handler may run while the main thread is inside a
    # write to ``sys.stderr``, and a reentrant write to a buffered stream raises.
    with contextlib.suppress(OSError):
        os.write(2, text.encode())


def _handle(signum: int, frame: FrameType | None) -> None:
    # No lock is taken here (see ``_ProcessState.lock``): reading an int is atomic.
    busy = _state.running > 0
    if not busy:
        # Nothing of ours runs: behave exactly as Python's default would.
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    if _state.stop:
        _say("kitaru: stopping now; interrupted executions stay resumable.\n")
        os._exit(128 + signum)
    _state.stop = True
    _say(
        "kitaru: stopping; durable calls already running finish first. "
        "Press Ctrl-C again to exit at once.\n"
    )
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise SystemExit(128 + signum)


def install_stop_handlers() -> None:
    """Install the handlers for SIGINT and SIGTERM, where Python's defaults are in place."""
    if _state.installed or threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _handle)
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _handle)
    _state.installed = True


def _after_fork_in_child() -> None:
    # A forked child runs none of its parent's executions and stops on its own signals;
    # the handlers it inherited stay installed.
    installed = _state.installed
    _state.__init__()  # type: ignore[misc]
    _state.installed = installed


os.register_at_fork(after_in_child=_after_fork_in_child)
