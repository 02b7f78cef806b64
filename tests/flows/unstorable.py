"""A flow whose checkpoint returns a value kitaru cannot store while ``UNSTORABLE`` is set.

- ``UNSTORABLE``: when set, ``make_handle`` returns a lock instead of its description.
- ``UNSTORABLE_SIDE``: a file every checkpoint body appends its name to.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any

from kitaru import KitaruError, checkpoint, flow


def _record(tag: str) -> None:
    with open(os.environ["UNSTORABLE_SIDE"], "a", encoding="utf-8") as file:
        file.write(tag + "\n")


@checkpoint
def prepare() -> str:
    _record("prepare")
    return "resource"


@checkpoint
def make_handle(name: str) -> Any:
    _record("make_handle")
    lock = threading.Lock()
    return lock if os.environ.get("UNSTORABLE") else f"{name} guarded by {type(lock).__name__}"


@flow
def guarded() -> Any:
    return make_handle(prepare())


if __name__ == "__main__":
    try:
        print(guarded.run().wait())
    except KitaruError as exc:
        print(exc, file=sys.stderr)
        sys.exit(1)
