"""A worker process for the concurrency tests and benchmarks: many executions at once.

``python -m tests.prop_flows.worker MODE ...`` with the journal in ``KITARU_STORE``:

- ``many GO N STEPS LOG``: leave ``GO.ready-<pid>``, wait for the file ``GO``, then
  run ``N`` executions of the interpreter flow one after another; print one JSON
  line: ids, results and every error met (none may escape).
- ``hold N STEPS LOG KEY``: start ``N`` executions at once, wait until every one is
  inside the body of ``KEY``, then die (``os._exit``): ``N`` interrupted executions.
- ``resume GO EXEC_ID``: leave ``GO.ready-<pid>``, wait for ``GO``, then resume
  ``EXEC_ID``; print whether this process ran it (``completed``) or was refused
  (``refused``).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from kitaru import KitaruError, KitaruStateError
from kitaru.client import KitaruClient

from .crashing import DEATH_EXIT_CODE
from .interpreter import interpret, side_effects


def _wait_for(go: str) -> None:
    # Say this process is at the gate, so the test opens it only once all are there.
    Path(f"{go}.ready-{os.getpid()}").touch()
    deadline = time.monotonic() + 60
    while not Path(go).exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"{go} never appeared")
        time.sleep(0.001)


def many(go: str, count: int, steps: list[Any], log: str) -> dict[str, Any]:
    _wait_for(go)
    ids: list[str] = []
    results: list[Any] = []
    errors: list[str] = []
    started = time.perf_counter()
    for _ in range(count):
        try:
            handle = interpret.run(steps, log)
            ids.append(handle.exec_id)
            results.append(handle.wait(timeout=120))
        except Exception as exc:  # every error is reported, none may escape unseen
            errors.append(f"{type(exc).__name__}: {exc}")
    return {
        "ids": ids,
        "results": results,
        "errors": errors,
        "seconds": time.perf_counter() - started,
    }


def hold(count: int, steps: list[Any], log: str, key: str) -> None:
    os.environ["PROP_HOLD"] = key
    already = side_effects(log)[key]
    ids = [interpret.run(steps, log, background=True).exec_id for _ in range(count)]
    deadline = time.monotonic() + 120
    while side_effects(log)[key] < already + count:
        if time.monotonic() > deadline:
            raise SystemExit("the executions never reached the held call")
        time.sleep(0.005)
    print(json.dumps({"ids": ids}), flush=True)
    os._exit(DEATH_EXIT_CODE)


def resume(go: str, exec_id: str) -> dict[str, Any]:
    _wait_for(go)
    try:
        handle = KitaruClient().executions.resume(exec_id)
    except KitaruStateError as exc:
        return {"pid": os.getpid(), "outcome": "refused", "why": str(exc)}
    try:
        return {"pid": os.getpid(), "outcome": "completed", "result": handle.wait(timeout=120)}
    except KitaruError as exc:
        return {"pid": os.getpid(), "outcome": "failed", "why": str(exc)}


def main(argv: list[str]) -> int:
    mode = argv[0]
    if mode == "many":
        print(json.dumps(many(argv[1], int(argv[2]), json.loads(argv[3]), argv[4])), flush=True)
    elif mode == "hold":
        hold(int(argv[1]), json.loads(argv[2]), argv[3], argv[4])
    elif mode == "resume":
        print(json.dumps(resume(argv[1], argv[2])), flush=True)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
