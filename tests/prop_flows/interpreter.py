"""One generic flow that runs any generated flow, given as data.

A flow is a list of steps (JSON-able lists, passed as the flow's first argument, so a
resuming process finds them in the journal). Every durable call has an explicit,
unique identity (``key``), except ``map`` items, whose keys are the identities kitaru
gives them (``fan``, ``fan_2``, ...). Steps:

- ``["work", key, value, fails, pause]``: checkpoint ``work`` (``retries=2``) on the
  running value; its first ``fails`` attempts raise; each attempt sleeps ``pause``
  seconds (long enough, and the journal writer flushes the call's start on its own).
- ``["submit", [[key, value, fails, pause], ...]]``: the same, all submitted at once.
- ``["map", [key, ...], [value, ...]]``: ``fan.map`` over the values.
- ``["llm", key]``: ``kitaru.llm()`` in the flow body (a durable call of its own).
- ``["ask", key]``: checkpoint ``ask`` that makes one ``kitaru.llm()`` call inside.
- ``["wait", key]``: ``kitaru.wait(schema=str, timeout=0)``: the run pauses until
  someone answers.
- ``["doomed", key]``: checkpoint ``doomed`` (``retries=1``) that always fails; the flow
  body catches the error.
- ``["twin", key, value]``: ``twins.work``, a checkpoint with the same short name as
  ``work`` in another module (and a different result), on the running value.
- ``["jot", key]``: the flow body adds ``key`` to its notebook (a dataclass), then
  checkpoint ``jot`` appends to the notebook it is given and returns its length; the
  flow records what its own notebook then holds. Bodies get copies, so a live run and
  a resumed one record the same.

``DRIFT`` (in the child processes: the ``PROP_DRIFT`` environment variable, JSON) maps
a ``work``/``twin`` key to how the code has changed since the journal was written:
``"value"`` passes the step's value plus one, ``"module"`` calls the other module's
``work``.

Every checkpoint body first appends its key to the side-effect file ``log`` (one
``write`` to an ``O_APPEND`` file, so a kill leaves whole lines), so the file counts
how often each body was entered. A body that must fail decides from that count, so
planned failures stay planned across crashes. Prompts are ``[key] <running value>``.

``python -m tests.prop_flows.interpreter run STEPS_JSON LOG [--crash KIND:N]`` starts
an execution and ``... resume EXEC_ID [--crash KIND:N]`` continues one; both print
``EXEC_ID <id>`` first and a JSON line with the outcome last. ``PROP_PAUSE`` makes every
body sleep that many seconds after its side effect; ``PROP_HOLD=KEY`` holds the body
of ``KEY`` after its side effect until the process dies (to leave executions
interrupted in the middle of a call). ``PROP_FLUSH_AFTER`` sets how long a call may run
before its deferred start is written on its own (``kitaru.runtime.writer.FLUSH_AFTER``),
so that a test numbering the appends of a run is not thrown off by a slow moment.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kitaru
from kitaru import checkpoint, flow

try:
    from . import crashing
except ImportError:  # run as a script rather than as a package module
    import crashing  # type: ignore[import-not-found, no-redef]

MODEL = "openai/gpt-4o-mini"
WORK_RETRIES = 2
DOOMED_RETRIES = 1
MODULUS = 1_000_003

DRIFT: dict[str, str] = json.loads(os.environ.get("PROP_DRIFT") or "{}")
"""Key -> ``"value"`` or ``"module"``: the code changed at that step (see above)."""


@dataclass
class Notebook:
    """The flow body's state, passed into ``jot``."""

    entries: list[str] = field(default_factory=list)


def mix(prev: int, key: str, value: int) -> int:
    """A deterministic function of the running value, the key and the step's value."""
    return (prev * 31 + value * 7 + sum(map(ord, key))) % MODULUS


def prompt(key: str, running: int) -> str:
    return f"[{key}] {running}"


def prompt_key(content: str) -> str:
    """The key a prompt was made for (``[key] ...``)."""
    return content[1:].split("]", 1)[0] if content.startswith("[") else ""


def answer_for(key: str) -> str:
    """What the tests answer the wait ``key`` with."""
    return f"answer:{key}"


def side_effects(log: str | Path) -> Counter[str]:
    """How many times each checkpoint body was entered, by key."""
    try:
        text = Path(log).read_text(encoding="utf-8")
    except FileNotFoundError:
        return Counter()
    return Counter(text.split())


def _alive() -> None:
    mortal = crashing.current
    if mortal is not None:
        mortal.check()


def effect(log: str, key: str) -> int:
    """Leave this body's side effect; return how many times the body has now run."""
    _alive()
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{key}\n".encode())
    finally:
        os.close(fd)
    mortal = crashing.current
    if mortal is not None and mortal.due("body"):
        mortal.die(f"inside the body of {key}")
    if os.environ.get("PROP_HOLD") == key:
        threading.Event().wait()
    pause = float(os.environ.get("PROP_PAUSE", "0") or 0)
    if pause:
        time.sleep(pause)
    return side_effects(log)[key]


@checkpoint(retries=WORK_RETRIES)
def work(  # noqa: PLR0917  (one argument per field of the step)
    key: str, value: int, fails: int, pause: float, prev: int, log: str
) -> int:
    runs = effect(log, key)
    time.sleep(pause)
    if runs <= fails:
        raise ValueError(f"{key}: planned failure {runs} of {fails}")
    return mix(prev, key, value)


@checkpoint(type="tool_call")
def fan(key: str, value: int, prev: int, log: str) -> int:
    effect(log, key)
    return mix(prev, key, value)


@checkpoint(type="llm_call")
def ask(key: str, prev: int, log: str) -> str:
    effect(log, key)
    return str(kitaru.llm(prompt(key, prev), model=MODEL))


@checkpoint
def jot(notebook: Notebook, key: str, log: str) -> int:
    effect(log, key)
    notebook.entries.append(f"jotted {key}")
    return len(notebook.entries)


@checkpoint(retries=DOOMED_RETRIES)
def doomed(key: str, log: str) -> int:
    effect(log, key)
    raise ValueError(f"{key} is doomed")


def _worker(key: str, home: str) -> Any:
    """The ``work`` of the step's module (``interpreter`` or ``twins``), or of the other
    one where DRIFT says the code changed."""
    from . import twins

    here, there = (work, twins.work) if home == "interpreter" else (twins.work, work)
    return there if DRIFT.get(key) == "module" else here


def _value(running: Any) -> int:
    return int(running.load() if hasattr(running, "load") else running)


@flow
def interpret(steps: list[list[Any]], log: str) -> list[Any]:
    out: list[Any] = []
    running: Any = 0  # an int, or the handle of the last ``work`` call
    notebook = Notebook()
    for step in steps:
        _alive()
        kind = step[0]
        if kind == "work":
            _, key, value, fails, pause = step
            value += DRIFT.get(key) == "value"
            running = _worker(key, "interpreter")(key, value, fails, pause, running, log, id=key)
            out.append(running)
        elif kind == "twin":
            _, key, value = step
            value += DRIFT.get(key) == "value"
            running = _worker(key, "twins")(key, value, 0, 0.0, running, log, id=key)
            out.append(running)
        elif kind == "jot":
            notebook.entries.append(step[1])
            out.append(jot(notebook, step[1], log, id=step[1]))
            out.append(list(notebook.entries))
        elif kind == "submit":
            handles = [
                _worker(key, "interpreter").submit(
                    key, value + (DRIFT.get(key) == "value"), fails, pause, running, log, id=key
                )
                for key, value, fails, pause in step[1]
            ]
            running = sum(handle.load() for handle in handles) % MODULUS
            out.append(handles)
        elif kind == "map":
            _, keys, values = step
            mapped = fan.map(keys, values, prev=running, log=log)
            running = sum(mapped.load()) % MODULUS
            out.append(mapped)
        elif kind == "llm":
            text = kitaru.llm(prompt(step[1], _value(running)), model=MODEL, name=step[1]).load()
            running = len(text)
            out.append(text)
        elif kind == "ask":
            handle = ask(step[1], running, log, id=step[1])
            running = len(handle.load())
            out.append(handle)
        elif kind == "wait":
            out.append(kitaru.wait(schema=str, name=step[1], question="go on?", timeout=0))
        elif kind == "doomed":
            try:
                doomed(step[1], log, id=step[1])
            except ValueError as exc:
                out.append(f"caught {exc}")
        else:
            raise ValueError(f"unknown step {step!r}")
    return out


def main(argv: list[str], program: Any = None) -> int:
    """Run or resume an execution of ``program`` (default: ``interpret``) from the command line."""
    from kitaru import KitaruError
    from kitaru._config import store_url
    from kitaru.client import KitaruClient

    flush_after = os.environ.get("PROP_FLUSH_AFTER")
    if flush_after:
        from kitaru.runtime import writer

        writer.FLUSH_AFTER = float(flush_after)
    crash = None
    if "--crash" in argv:
        at = argv.index("--crash")
        crash = crashing.CrashPoint.parse(argv[at + 1])
        del argv[at : at + 2]
    crashing.install(store_url(), crashing.Mortal(crash, real=True))
    if argv[0] == "run":
        handle = (program or interpret).run(json.loads(argv[1]), argv[2], background=True)
    else:
        handle = KitaruClient().executions.resume(argv[1], background=True)
    print(f"EXEC_ID {handle.exec_id}", flush=True)
    try:
        result = handle.wait()
    except KitaruError as exc:
        # The client's execution is a snapshot taken when it started: ask afresh.
        status = KitaruClient().executions.get(handle.exec_id).status
        print(json.dumps({"status": status, "error": str(exc)}), flush=True)
        return 0 if status == "waiting" else 1
    status = KitaruClient().executions.get(handle.exec_id).status
    print(json.dumps({"status": status, "result": result}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
