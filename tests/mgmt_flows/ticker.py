"""A long loop of small checkpoints: something to cancel, and to follow the logs of.

Environment, read at call time:

- ``MGMT_SIDE``: a file every ``tick`` body appends ``tick:<i>`` to.
- ``TICK_PAUSE``: seconds each ``tick`` body sleeps (default 0.05).

Each ``tick`` prints ``tick <i>`` and logs ``logged <i>`` through ``logging``.
``python -m tests.mgmt_flows.ticker [N]`` prints ``{"exec_id": ...}``, then
``{"status": ..., "result": ...}``; it exits 1 unless the run completed.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time

from kitaru import KitaruExecutionError, checkpoint, flow

_log = logging.getLogger("ticker")


@checkpoint
def tick(i: int) -> int:
    side = os.environ.get("MGMT_SIDE")
    if side:
        with open(side, "a", encoding="utf-8") as file:
            file.write(f"tick:{i}\n")
    print(f"tick {i}")
    _log.warning("logged %d", i)
    time.sleep(float(os.environ.get("TICK_PAUSE", "0.05")))
    return i


@flow
def ticker(n: int) -> int:
    total = 0
    for i in range(n):
        total += tick(i).load()
    return total


if __name__ == "__main__":
    handle = ticker.run(int(sys.argv[1]) if len(sys.argv) > 1 else 10, background=True)
    print(json.dumps({"exec_id": handle.exec_id}), flush=True)
    try:
        result = handle.wait()
    except KitaruExecutionError as exc:
        print(json.dumps({"status": exc.status, "error": str(exc)}), flush=True)
        sys.exit(1)
    print(json.dumps({"status": "completed", "result": result}), flush=True)
