"""A fan-out flow that shows who ran what, and whether two owners ever ran a call at once.

Environment, read at call time:

- ``OWNERS_SIDE``: a folder. Every ``work`` body holds an exclusive lock on
  ``running-<i>`` there while it runs (a lock dies with its process, unlike a marker
  file); if it cannot take it, another live process is running the same call, and the
  body appends its tag to ``overlaps``. Every body also appends ``work:<i>`` (or
  ``finish``) to ``effects``.
- ``OWNERS_GATE``: a folder. A ``work`` body writes ``ready-<i>-<pid>`` there, then
  waits until ``release`` appears (60 s at most).
- ``OWNERS_PAUSE``: seconds each ``work`` body sleeps (when there is no gate).

``python -m tests.flows.owners run N`` runs the flow with N parallel calls and prints
``{"exec_id": ..., "result": ...}``; ``fork N`` does the same in a child forked by
``multiprocessing`` after kitaru was imported (as gunicorn --preload or a Pool does).
A kitaru error ends the process with exit code 3 and the message on stderr.
"""

from __future__ import annotations

import fcntl
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path

from kitaru import KitaruError, checkpoint, flow


def _effect(tag: str) -> None:
    side = os.environ.get("OWNERS_SIDE")
    if side:
        with open(Path(side, "effects"), "a", encoding="utf-8") as file:
            file.write(tag + "\n")


def _wait_for_gate(i: int) -> None:
    gate = os.environ.get("OWNERS_GATE")
    if not gate:
        time.sleep(float(os.environ.get("OWNERS_PAUSE", "0")))
        return
    Path(gate, f"ready-{i}-{os.getpid()}").write_text("")
    deadline = time.monotonic() + 60
    while not Path(gate, "release").exists() and time.monotonic() < deadline:
        time.sleep(0.01)


@checkpoint
def work(i: int) -> int:
    side = os.environ.get("OWNERS_SIDE")
    fd = os.open(Path(side, f"running-{i}"), os.O_CREAT | os.O_RDWR) if side else -1
    try:
        if side:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                with open(Path(side, "overlaps"), "a", encoding="utf-8") as file:
                    file.write(f"work:{i}\n")
        _effect(f"work:{i}")
        _wait_for_gate(i)
        return i * i
    finally:
        if fd >= 0:
            os.close(fd)


@checkpoint
def finish(values: list[int]) -> int:
    _effect("finish")
    return sum(values)


@flow
def owned(n: int) -> int:
    squares = work.map(range(n))
    return finish(squares).load()


def _run(n: int) -> None:
    try:
        handle = owned.run(n)
        print(json.dumps({"exec_id": handle.exec_id, "result": handle.wait()}), flush=True)
    except KitaruError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        sys.exit(3)


if __name__ == "__main__":
    how, count = sys.argv[1], int(sys.argv[2])
    if how == "fork":
        child = multiprocessing.get_context("fork").Process(target=_run, args=(count,))
        child.start()
        child.join()
        sys.exit(child.exitcode)
    _run(count)
