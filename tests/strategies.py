"""Hypothesis strategies for kitaru's tests, in one place.

- :func:`flows`: generated flows as data for ``prop_flows.interpreter`` (sequences and
  fan-outs of counted checkpoints, model calls, failing-then-retried checkpoints,
  waits, checkpoints sharing a short name across modules, bodies that mutate the state
  they are given);
- :func:`drifts`: a change of code at one step of a flow (another argument value, or
  the same-named checkpoint of the other module);
- :func:`crash_points` / :func:`crash_plans`: where the processes running them die;
- :func:`kill_delays`: when a real process is SIGKILLed from outside;
- :func:`events` / :func:`event_batches`: journal events for the store model;
- :func:`costly`: settings for properties whose examples take real time;
- :func:`storable_values`: values of every type kitaru stores, nested, with the
  module-level classes they use (defined here, so a flow process that imports this
  module can rebuild them) and :func:`assert_same_value`, which compares type and
  state, not only ``==``.

The profiles themselves (``ci``, the default; ``long``, for nightly runs) are
registered in ``tests/conftest.py``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import functools
import math
import pathlib
import uuid
import zoneinfo
from collections import Counter
from typing import Any, NamedTuple

import msgspec
import pydantic
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from prop_flows.crashing import CrashPoint

from kitaru.journal.events import (
    CallCompleted,
    CallFailed,
    CallStarted,
    CallStartedAndCompleted,
    ErrorInfo,
    Event,
    ExecutionCompleted,
    ExecutionFailed,
    ExecutionResumed,
    ExecutionStarted,
    FlowRef,
    LlmCallRecorded,
    LlmUsage,
    MetadataLogged,
    ValueRef,
    WaitRequested,
    WaitResolved,
)

__all__ = [
    "RUNS",
    "assert_same_value",
    "costly",
    "crash_plans",
    "crash_points",
    "drifts",
    "event_batches",
    "events",
    "flows",
    "kill_delays",
    "number_steps",
    "storable_values",
]


def costly(share: float, **changes: Any) -> settings:
    """Settings for a property whose examples are slow: ``share`` of the profile's examples.

    Under ``ci`` that keeps the suite within minutes; ``long`` scales it up with the
    profile. Examples make their own journal and files, so the function-scoped fixtures
    they share (a provider server, ``tmp_path``) are safe to reuse.
    """
    base = settings.default
    return settings(
        base,
        max_examples=max(2, round(base.max_examples * share)),
        suppress_health_check=[
            *base.suppress_health_check,
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
        ],
        deadline=None,
        **changes,
    )


# -- generated flows -------------------------------------------------------------------

_values = st.integers(min_value=0, max_value=99)
_fails = st.sampled_from([0, 0, 0, 1, 2])
"""Planned failures of a ``work`` call (its ``retries=2`` always covers them)."""
_pauses = st.sampled_from([0.0, 0.0, 0.0, 0.0, 0.07])
"""Seconds a ``work`` attempt takes; 0.07 outlasts the journal writer's flush delay."""


def _shapes(*, llm: bool, waits: bool) -> st.SearchStrategy[tuple[Any, ...]]:
    choices: list[st.SearchStrategy[tuple[Any, ...]]] = [
        st.tuples(st.just("work"), _values, _fails, _pauses),
        st.tuples(
            st.just("submit"),
            st.lists(st.tuples(_values, _fails, _pauses), min_size=1, max_size=4),
        ),
        st.tuples(st.just("map"), st.lists(_values, min_size=1, max_size=4)),
        st.just(("doomed",)),
        st.tuples(st.just("twin"), _values),
        st.just(("jot",)),
    ]
    if llm:
        choices += [st.just(("llm",)), st.just(("ask",))]
    if waits:
        choices.append(st.just(("wait",)))
    return st.one_of(choices)


def number_steps(shapes: list[tuple[Any, ...]]) -> list[list[Any]]:
    """Give every durable call of a flow shape its unique key (``s0``, ``s1``, ...).

    ``map`` items get the identities kitaru gives them: ``fan``, ``fan_2``, ...
    """
    counter = iter(range(10_000))
    fans = 0

    def key() -> str:
        return f"s{next(counter)}"

    steps: list[list[Any]] = []
    for shape in shapes:
        kind = shape[0]
        if kind in ("work", "twin"):
            steps.append([kind, key(), *shape[1:]])
        elif kind == "submit":
            steps.append(["submit", [[key(), *item] for item in shape[1]]])
        elif kind == "map":
            keys = []
            for _ in shape[1]:
                fans += 1
                keys.append("fan" if fans == 1 else f"fan_{fans}")
            steps.append(["map", keys, list(shape[1])])
        else:
            steps.append([kind, key()])
    return steps


def flows(
    *, min_steps: int = 1, max_steps: int = 7, llm: bool = True, waits: bool = True
) -> st.SearchStrategy[list[list[Any]]]:
    """Flows for ``prop_flows.interpreter.interpret``, as lists of steps."""
    return st.lists(_shapes(llm=llm, waits=waits), min_size=min_steps, max_size=max_steps).map(
        number_steps
    )


def drifts(steps: list[list[Any]]) -> st.SearchStrategy[tuple[str, str]] | None:
    """``(key, how)``: the code changed at the ``work``/``twin`` step ``key``, passing
    another value (``"value"``) or calling the other module's ``work`` (``"module"``).

    None when the flow has no such step.
    """
    keys = [step[1] for step in steps if step[0] in ("work", "twin")]
    keys += [item[0] for step in steps if step[0] == "submit" for item in step[1]]
    if not keys:
        return None
    return st.tuples(st.sampled_from(keys), st.sampled_from(["value", "module"]))


# -- crashes ---------------------------------------------------------------------------

_NTH = {"append": 30, "torn": 30, "body": 10, "llm": 4}


def crash_points(
    kinds: tuple[str, ...] = tuple(_NTH), *, latest: int | None = None
) -> st.SearchStrategy[CrashPoint]:
    """A point to die at: the n-th append, torn append, checkpoint body or model request.

    Early points are favoured (a point the process never reaches is no crash at all);
    ``latest`` caps n.
    """
    return st.one_of(
        [
            st.builds(
                CrashPoint,
                st.just(kind),
                st.integers(1, min(4, _NTH[kind], latest or 4))
                | st.integers(1, min(_NTH[kind], latest or _NTH[kind])),
            )
            for kind in kinds
        ]
    )


def crash_plans(
    *,
    min_size: int = 1,
    max_size: int = 4,
    kinds: tuple[str, ...] = tuple(_NTH),
    latest: int | None = None,
) -> st.SearchStrategy[list[CrashPoint]]:
    """One crash point per process that runs the execution, in turn."""
    return st.lists(crash_points(kinds, latest=latest), min_size=min_size, max_size=max_size)


def kill_delays(
    *, min_kills: int = 1, max_kills: int = 4, longest: float = 0.6
) -> st.SearchStrategy[list[float]]:
    """Seconds after its start at which each successive process is SIGKILLed."""
    return st.lists(
        st.floats(min_value=0.0, max_value=longest, allow_nan=False),
        min_size=min_kills,
        max_size=max_kills,
    )


# -- journal events --------------------------------------------------------------------

_names = st.sampled_from(["plan", "research", "write", "fan_2", "llm_1"])
_small = st.integers(min_value=0, max_value=5)
_refs = st.one_of(
    st.binary(max_size=24).map(lambda data: ValueRef(inline=data)),
    st.sampled_from(["a" * 32, "b" * 32]).map(lambda digest: ValueRef(hash=digest)),
)
_errors = st.builds(ErrorInfo, type=st.sampled_from(["ValueError", "KeyError"]), message=st.text())


def _started() -> st.SearchStrategy[Event]:
    return st.builds(
        ExecutionStarted,
        flow_name=st.sampled_from(["agent", "pipeline"]),
        flow=st.just(FlowRef(module="app", qualname="agent")),
        inputs=_refs,
        kitaru_version=st.just("0.1.0"),
    )


# Built once: the store model draws a batch at every append step, and building these
# strategies afresh each time (type hints of every event class, validation of the whole
# tree) cost more than drawing from them. A strategy is immutable, and the same strategy
# draws the same values from the same choices, so the examples do not change.
@functools.cache
def events() -> st.SearchStrategy[Event]:
    """Single journal events of most types (not necessarily forming a valid execution)."""
    return st.one_of(
        _started(),
        st.builds(ExecutionResumed, mode=st.sampled_from(["resume", "retry"]), owner=st.text()),
        st.builds(ExecutionCompleted, result=_refs),
        st.builds(ExecutionFailed, error=_errors),
        st.builds(
            CallStarted,
            position=_small,
            identity=_names,
            kind=st.sampled_from(["checkpoint", "llm", "wait"]),
            name=_names,
            call_id=st.text(max_size=8),
            attempt=st.integers(1, 3),
        ),
        st.builds(
            CallCompleted,
            position=_small,
            identity=_names,
            call_id=st.text(max_size=8),
            output=_refs,
        ),
        st.builds(
            CallStartedAndCompleted,
            position=_small,
            identity=_names,
            kind=st.sampled_from(["checkpoint", "llm"]),
            name=_names,
            call_id=st.text(max_size=8),
            output=_refs,
            started_at=st.floats(0, 2e9),
            attempt=st.integers(1, 3),
            cache_key=st.none() | st.text(max_size=8),
        ),
        st.builds(
            CallFailed,
            position=_small,
            identity=_names,
            call_id=st.text(max_size=8),
            error=_errors,
            final=st.booleans(),
        ),
        st.builds(
            LlmCallRecorded,
            name=_names,
            parent=st.none() | _names,
            prompt=st.just("c" * 32),
            message_count=_small,
            response=_refs,
            usage=st.builds(LlmUsage, _small, _small, st.none() | _small),
            latency_ms=st.floats(0, 1000),
            requested_model=st.none(),
            alias=st.none(),
            resolved_model=st.just("openai/gpt-4o-mini"),
            credential_source=st.just("environment"),
            estimated_cost=st.none() | st.floats(0, 2, allow_nan=False),
            cost_reused=st.booleans(),
        ),
        st.builds(MetadataLogged, values=st.dictionaries(st.text(max_size=5), _small, max_size=3)),
        st.builds(
            WaitRequested,
            position=_small,
            identity=_names,
            name=_names,
            call_id=st.text(max_size=8),
        ),
        st.builds(
            WaitResolved,
            position=_small,
            identity=_names,
            call_id=st.text(max_size=8),
            value=st.none() | _refs,
        ),
    )


@functools.cache
def event_batches(*, first: bool = False) -> st.SearchStrategy[list[Event]]:
    """A batch for one append; with ``first``, it starts with ``ExecutionStarted``."""
    rest = st.lists(events(), min_size=0 if first else 1, max_size=4)
    if not first:
        return rest
    return st.tuples(_started(), rest).map(lambda pair: [pair[0], *pair[1]])


# -- stored values ---------------------------------------------------------------------

RUNS: Counter[str] = Counter()
"""How many times each class's constructor, ``__post_init__`` or validator ran: reading
a value back must not add to it."""


class Colour(enum.Enum):
    RED = "red"
    BLUE = 2


class Pair(NamedTuple):
    left: Any
    right: Any


@dataclasses.dataclass
class Tracked:
    """A dataclass whose ``__post_init__`` sets an attribute that is not a field."""

    value: Any
    label: str = "x"

    def __post_init__(self) -> None:
        RUNS["Tracked"] += 1
        self.extra = [self.label]


@dataclasses.dataclass(frozen=True, slots=True)
class Frozen:
    value: Any
    tags: tuple[str, ...] = ()


class Record(msgspec.Struct, frozen=True):
    value: Any
    notes: list[str] = []

    def __post_init__(self) -> None:
        RUNS["Record"] += 1


class Model(pydantic.BaseModel):
    """A pydantic model whose validator changes the value: running it twice shows."""

    items: list[int]
    note: str = ""

    @pydantic.field_validator("items")
    @classmethod
    def _append(cls, items: list[int]) -> list[int]:
        RUNS["Model"] += 1
        return [*items, 0]


class Plain:
    """A plain class: its ``__init__`` is not how it is rebuilt."""

    def __init__(self, value: Any):
        RUNS["Plain"] += 1
        self.value = value
        self.seen = 1

    def __eq__(self, other: object) -> bool:
        return type(other) is Plain and other.__dict__ == self.__dict__

    __hash__ = None  # type: ignore[assignment]


class Slotted:
    """A class with ``__slots__`` and its own ``__getstate__``/``__setstate__``."""

    __slots__ = ("state", "value")

    def __init__(self, value: Any):
        RUNS["Slotted"] += 1
        self.value = value
        self.state = "made"

    def __getstate__(self) -> dict[str, Any]:
        return {"value": self.value, "state": self.state}

    def __setstate__(self, state: dict[str, Any]) -> None:
        RUNS["Slotted.__setstate__"] += 1
        self.value = state["value"]
        self.state = state["state"]

    def __eq__(self, other: object) -> bool:
        return type(other) is Slotted and other.value == self.value

    __hash__ = None  # type: ignore[assignment]


class Tagged(dict[str, Any]):
    """A dict subclass with an attribute of its own."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.kind = "tagged"


_any_text = st.text(
    st.characters(exclude_categories=()) | st.characters(categories=("Cs",)), max_size=8
)
"""Any str, lone surrogates (a truncated emoji) included."""

_store_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**64 - 2, max_value=2**64 + 2) | st.integers(max_value=-(2**63) + 1),
    st.integers(min_value=2**200, max_value=2**5000),
    st.floats(allow_nan=False),
    _any_text,
    st.binary(max_size=8),
    st.datetimes(
        timezones=st.none()
        | st.timezones()
        | st.builds(
            dt.timezone,
            st.timedeltas(min_value=dt.timedelta(hours=-23), max_value=dt.timedelta(hours=23)),
        )
    ),
    st.dates(),
    st.times(timezones=st.none() | st.just(dt.UTC)),
    st.timedeltas(),
    st.decimals(allow_nan=False),
    st.uuids(),
    st.builds(pathlib.PurePosixPath, st.text(max_size=5)),
    st.builds(pathlib.Path, st.text(max_size=5)),
    st.sampled_from(Colour),
)
_hashable_values = st.recursive(
    _store_scalars.filter(lambda v: not isinstance(v, float) or not math.isnan(v)),
    lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=3),
    max_leaves=4,
)


def _classes(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.builds(Pair, inner, inner),
        st.builds(Tracked, inner, _any_text),
        st.builds(Frozen, inner, st.tuples(_any_text)),
        st.builds(Record, inner, st.lists(_any_text, max_size=2)),
        st.builds(Model, items=st.lists(st.integers(-5, 5), max_size=3), note=_any_text),
        st.builds(Plain, inner),
        st.builds(Slotted, inner),
        st.builds(Tagged, st.dictionaries(_any_text, inner, max_size=3)),
    )


def storable_values(*, max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """Any value kitaru stores: every supported type, nested in one another."""
    return st.recursive(
        _store_scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.tuples(inner, inner),
            st.dictionaries(_any_text, inner, max_size=4),
            st.dictionaries(_hashable_values, inner, max_size=3),
            st.sets(_hashable_values, max_size=3),
            st.frozensets(_hashable_values, max_size=3),
            _classes(inner),
        ),
        max_leaves=max_leaves,
    )


def assert_same_value(got: Any, want: Any, where: str = "value") -> None:  # noqa: PLR0912
    """``got`` has ``want``'s type and state, all the way down (not only ``==``)."""
    assert type(got) is type(want), f"{where}: {type(got)} is not {type(want)}"
    if isinstance(want, float):
        assert got == want, where
        assert math.copysign(1, got) == math.copysign(1, want), where
    elif isinstance(want, dt.datetime | dt.time):
        assert got == want, where
        assert got.fold == want.fold, where
        assert got.isoformat() == want.isoformat(), where
        assert_same_value(got.tzinfo, want.tzinfo, f"{where}.tzinfo")
    elif isinstance(want, zoneinfo.ZoneInfo):
        assert got.key == want.key, where
    elif isinstance(want, decimal.Decimal):
        assert str(got) == str(want), where
    elif isinstance(want, list | tuple):
        assert len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_same_value(g, w, f"{where}[{i}]")
    elif isinstance(want, dict):
        assert list(got) == list(want), where
        for key, item in want.items():
            assert_same_value(got[key], item, f"{where}[{key!r}]")
    elif isinstance(want, set | frozenset):
        assert got == want, where
    elif isinstance(want, msgspec.Struct):
        for name in want.__struct_fields__:
            assert_same_value(getattr(got, name), getattr(want, name), f"{where}.{name}")
    elif isinstance(want, pydantic.BaseModel):
        assert got.__getstate__() == want.__getstate__(), where
    elif isinstance(want, Slotted):
        assert got.state == want.state, where
        assert_same_value(got.value, want.value, f"{where}.value")
    elif isinstance(want, dt.timezone | enum.Enum | uuid.UUID | pathlib.PurePath):
        assert got == want, where
    if hasattr(want, "__dict__") and not isinstance(want, type | enum.Enum | pydantic.BaseModel):
        assert_same_value(vars(got), vars(want), f"{where}.__dict__")
    slots = [name for name in getattr(type(want), "__slots__", ()) if hasattr(want, name)]
    if dataclasses.is_dataclass(want) and slots:
        for name in slots:
            assert_same_value(getattr(got, name), getattr(want, name), f"{where}.{name}")
