"""A flow that ends each way an execution can, for copying journals between stores.

``python -m tests.flows.graduating KIND`` runs it once and prints its execution id;
``KIND`` is ``finish``, ``fail``, ``wait`` (waits for input with ``timeout=0``, so the
process lets the execution go while it waits) or ``crash`` (SIGKILLs its own process
after the first checkpoint completed, leaving the execution interrupted).

Environment, read at call time: ``GRADUATING_SIDE``, a file every checkpoint body
appends its tag to; ``GRADUATING_KILL=1`` arms the ``crash`` kill;
``GRADUATING_SCOPE``, a prefix for the memory scope (so two journals can hold memories
that do not collide).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys

import kitaru
from kitaru import checkpoint, flow, memory


def _record(tag: str) -> None:
    side = os.environ.get("GRADUATING_SIDE")
    if side:
        with open(side, "a", encoding="utf-8") as file:
            file.write(tag + "\n")


@checkpoint
def fetch(kind: str) -> str:
    _record(f"fetch:{kind}")
    # Longer than the inline limit, so the journal stores it as a payload.
    return kind + ":" + "x" * 600


@checkpoint
def finish(text: str) -> int:
    _record("finish")
    return len(text)


@flow
def graduating(kind: str) -> int:
    memory.configure(scope=os.environ.get("GRADUATING_SCOPE", "") + kind, scope_type="namespace")
    text = fetch(kind).load()
    memory.set("fetched", text[:20])
    if kind == "fail":
        raise ValueError("the source said no")
    if kind == "wait":
        kitaru.wait(name="approve", timeout=0)
    if kind == "crash" and os.environ.get("GRADUATING_KILL") == "1":
        os.kill(os.getpid(), signal.SIGKILL)
    return finish(text).load()


if __name__ == "__main__":
    handle = graduating.run(sys.argv[1])
    print(handle.exec_id, flush=True)
    # Failed or left waiting: the journal holds how it ended.
    with contextlib.suppress(kitaru.KitaruError):
        handle.wait()
