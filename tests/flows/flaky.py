"""A flow whose middle checkpoint fails until a marker file exists.

- ``FLAKY_MARKER``: while this file is missing, ``call_service`` raises
  ``ConnectionError``.
- ``FLAKY_SIDE``: a file every checkpoint body appends its name to.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from kitaru import KitaruError, checkpoint, flow


def _record(tag: str) -> None:
    with open(os.environ["FLAKY_SIDE"], "a", encoding="utf-8") as file:
        file.write(tag + "\n")


@checkpoint
def prepare() -> int:
    _record("prepare")
    return 21


@checkpoint
def call_service(x: int) -> int:
    _record("call_service")
    if not Path(os.environ["FLAKY_MARKER"]).exists():
        raise ConnectionError("service unavailable")
    return x * 2


@checkpoint
def finish(y: int) -> dict[str, int]:
    _record("finish")
    return {"answer": y}


@flow
def job() -> dict[str, int]:
    return finish(call_service(prepare()))  # type: ignore[return-value]


if __name__ == "__main__":
    try:
        print(job.run().wait())
    except KitaruError as exc:
        print(exc, file=sys.stderr)
        sys.exit(1)
