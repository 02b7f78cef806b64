"""A flow whose arguments and checkpoint outputs are typed values, for round-trip tests.

After ``make_values`` completed, the process SIGKILLs itself when ``TYPED_KILL`` is
set, and the body raises once when ``TYPED_FAIL_ONCE`` is set (``retries=1`` runs it
again in the same process, replaying ``make_values``). ``inspect_values`` then reports
what it received.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import signal
from typing import Any

import msgspec
import pydantic

from kitaru import checkpoint, flow


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Tag(msgspec.Struct):
    name: str
    weight: float


class Profile(pydantic.BaseModel):
    name: str
    born: dt.date


WHEN = dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def sample() -> dict[str, Any]:
    """The values ``make_values`` returns."""
    return {
        "point": Point(1, 2),
        "tag": Tag("urgent", 0.5),
        "profile": Profile(name="ada", born=dt.date(1815, 12, 10)),
        "pair": (1, "two"),
        "when": WHEN,
        "labels": {"x", "y"},
    }


@checkpoint
def make_values() -> dict[str, Any]:
    return sample()


@checkpoint
def inspect_values(values: dict[str, Any], point: Point, when: dt.datetime) -> dict[str, Any]:
    return {
        "types": {key: type(value).__name__ for key, value in values.items()},
        "equal": values == sample(),
        "arg_types": [type(point).__name__, type(when).__name__],
        "args_equal": point == Point(3, 4) and when == WHEN,
    }


_passes = 0


@flow(retries=1)
def typed_flow(point: Point, when: dt.datetime) -> dict[str, Any]:
    global _passes  # noqa: PLW0603  (counts body runs in this process)
    _passes += 1
    values = make_values()
    values.load()
    if os.environ.get("TYPED_KILL"):
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get("TYPED_FAIL_ONCE") and _passes == 1:
        raise RuntimeError("first pass fails")
    return inspect_values(values, point, when)  # type: ignore[return-value]


if __name__ == "__main__":
    print(json.dumps({"result": typed_flow.run(Point(3, 4), WHEN).wait(), "passes": _passes}))
