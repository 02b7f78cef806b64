"""Answering a wait at the terminal of the program that runs it.

When a flow started from a terminal (stdin and stdout both a TTY) reaches
``kitaru.wait()``, the question is shown there and the answer typed at it goes to the
wait, as on Kitaru's local stack. The answer travels exactly as one from another shell
does: checked against the wait's schema, then left in the store's mailbox, where the
waiting loop picks it up and records it. So the two race safely: whichever answer is
posted first is the one, and the other is refused with ``WaitAlreadyAnsweredError``.

The prompt reads the terminal on a thread of its own, a line at a time, and gives up
the terminal as soon as the wait ends for any reason (answered elsewhere, timed out,
cancelled), so nothing is left reading stdin behind the program's back. Only one prompt
is shown at a time: waits reached together (``asyncio.gather``) are asked in turn.

``KITARU_WAIT_PROMPT=0`` turns the prompt off. The ``kitaru`` command turns it off for
the runs it drives, since it prints how to answer a wait from another shell instead.
"""

from __future__ import annotations

import json
import os
import selectors
import shlex
import sys
import threading
from collections.abc import Callable
from typing import Any

from kitaru._config import STORE_ENV, WAIT_PROMPT_ENV
from kitaru.errors import KitaruUsageError, WaitAlreadyAnsweredError
from kitaru.journal.events import WaitRequested
from kitaru.journal.store import Store
from kitaru.runtime.values import UnencodableValueError, encode_value

__all__ = ["TerminalPrompt", "prompt_wanted"]

_OFF = ("0", "false", "no", "off")
_YES = ("y", "yes", "true")
_NO = ("n", "no", "false")
_POLL_SECONDS = 0.1

_terminal = threading.Lock()
"""Held by the prompt that owns the terminal, so two waits never ask at once."""


def prompt_wanted() -> bool:
    """True when waits should ask at this process's terminal."""
    if os.environ.get(WAIT_PROMPT_ENV, "").strip().lower() in _OFF:
        return False
    try:
        return sys.stdin.isatty() and sys.stdout.isatty()
    except (AttributeError, ValueError):  # replaced or closed streams: no terminal
        return False


def _parse(raw: str, schema: dict[str, Any] | None) -> Any:
    """The typed answer as a value: yes/no for a bool, JSON, else the text itself for
    a wait that takes a string (so ``ship it`` needs no quotes)."""
    kind = (schema or {}).get("type")
    if kind == "boolean" and raw.lower() in _YES + _NO:
        return raw.lower() in _YES
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        if kind == "string" or not schema:
            return raw
        if kind == "boolean":
            raise KitaruUsageError("Answer y or n.") from None
        raise KitaruUsageError(f"That is not valid JSON ({exc.msg}); try again.") from None


class TerminalPrompt:
    """Asks one wait's question at the terminal until it is answered or the wait ends."""

    def __init__(
        self,
        store: Store,
        exec_id: str,
        request: WaitRequested,
        convert: Callable[[Any], Any],
    ) -> None:
        self._store = store
        self._exec_id = exec_id
        self._request = request
        self._convert = convert
        self._done = threading.Event()
        self._offered = False
        self._thread: threading.Thread | None = None

    def offer(self) -> None:
        """Start asking, the first time only, if this process runs at a terminal."""
        if self._offered:
            return
        self._offered = True
        if prompt_wanted():
            name = f"kitaru-wait-prompt-{self._request.identity}"
            self._thread = threading.Thread(target=self._run, name=name, daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """End the prompt (the wait is over); returns once it no longer reads stdin."""
        self._done.set()
        if self._thread is not None:
            self._thread.join(timeout=2 * _POLL_SECONDS + 1)

    # -- the prompt's thread ---------------------------------------------------------

    def _say(self, text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    def _run(self) -> None:
        while not _terminal.acquire(timeout=_POLL_SECONDS):
            if self._done.is_set():
                return
        try:
            if not self._done.is_set():
                self._ask()
        except (OSError, ValueError):
            pass  # the terminal went away: the wait goes on for an answer from elsewhere
        finally:
            _terminal.release()

    def _describe(self) -> str:
        request = self._request
        lines = [f"\nExecution {self._exec_id} waits at '{request.name}'."]
        if request.question:
            lines.append(f"  {request.question}")
        kind = (request.schema or {}).get("type")
        if kind == "boolean":
            lines.append("  Answer y or n.")
        elif kind == "string":
            lines.append("  Answer with text.")
        elif request.schema:
            lines.append(f"  Answer with JSON of the shape {json.dumps(request.schema)}.")
        command = f"kitaru executions input {self._exec_id} --wait {shlex.quote(request.name)}"
        store = os.environ.get(STORE_ENV)
        if store:
            command = f"{STORE_ENV}={shlex.quote(store)} {command}"
        lines.append(f"  ('abort' refuses it; or answer from another shell: {command} ...)")
        return "\n".join(lines) + "\n"

    def _ask(self) -> None:
        self._say(self._describe() + "> ")
        fd = sys.stdin.fileno()
        pending = b""
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while not self._done.is_set():
                if not selector.select(timeout=_POLL_SECONDS):
                    continue
                chunk = os.read(fd, 4096)
                if not chunk:  # end of input: stop asking; other shells can still answer
                    return
                pending += chunk
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    if self._take(line.decode(errors="replace").strip()):
                        return
                    self._say("> ")
        self._say("\n")  # the wait ended without an answer from here: leave the line

    def _take(self, raw: str) -> bool:
        """Post the typed answer; False (having said why) when it must be typed again."""
        if not raw:
            return False
        aborted = raw.lower() == "abort"
        data: bytes | None = None
        if not aborted:
            try:
                value = _parse(raw, self._request.schema)
                self._convert(value)
                data = encode_value(value)
            except KitaruUsageError as exc:
                self._say(f"  {exc}\n")
                return False
            except UnencodableValueError as exc:
                self._say(f"  That answer cannot be recorded: {exc}.\n")
                return False
        if self._done.is_set():
            return True  # the wait ended while the answer was typed: it is not posted
        try:
            self._store.post_wait_input(
                self._exec_id, self._request.identity, data, aborted=aborted
            )
        except WaitAlreadyAnsweredError:
            self._say("  It was answered from elsewhere first; that answer stands.\n")
            return True
        self._say("  Refused.\n" if aborted else "  Answer recorded.\n")
        return True
