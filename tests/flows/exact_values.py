"""A flow that hands generated values through checkpoints, and can kill its own process.

``python -m tests.flows.exact_values VALUES MARKER`` reads encoded values (hex) from the
file ``VALUES`` and runs ``echo`` twice: once to the end, then with ``MARKER`` set, so
``halt`` SIGKILLs the process (after every ``give`` completed) unless ``MARKER`` exists.
It prints each execution's id as it starts. The values' classes live in the tests'
``strategies`` module, so ``tests/`` must be importable (``PYTHONPATH``).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from kitaru import checkpoint, flow
from kitaru.runtime.values import decode_value


@checkpoint
def give(value: Any) -> Any:
    return value


_announced = threading.Event()
"""Set once the running execution's id is printed: the body runs on its own thread and
may reach ``halt`` before the main thread prints it."""


@checkpoint
def halt(marker: str) -> None:
    if marker and not os.path.exists(marker):
        Path(marker).touch()
        _announced.wait(timeout=60)
        os.kill(os.getpid(), signal.SIGKILL)


@flow
def echo(values: list[Any], marker: str) -> list[Any]:
    outputs = [give(value) for value in values]
    halt(marker)
    return outputs  # type: ignore[return-value]


def main(values_file: str, marker: str) -> None:
    values = decode_value(bytes.fromhex(Path(values_file).read_text(encoding="ascii")))
    for run_marker in ("", marker):
        _announced.clear()
        handle = echo.run(values, run_marker, background=True)
        print(handle.exec_id, flush=True)
        _announced.set()
        handle.wait(timeout=60)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
