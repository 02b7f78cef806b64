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
- :func:`costly`: settings for properties whose examples take real time.

The profiles themselves (``ci``, the default; ``long``, for nightly runs) are
registered in ``tests/conftest.py``.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from prop_flows.crashing import CrashPoint

from kitaru.journal.events import (
    CallCompleted,
    CallFailed,
    CallStarted,
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
    "costly",
    "crash_plans",
    "crash_points",
    "drifts",
    "event_batches",
    "events",
    "flows",
    "kill_delays",
    "number_steps",
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
            usage=st.builds(LlmUsage, _small, _small, _small),
            latency_ms=st.floats(0, 1000),
            requested_model=st.none(),
            alias=st.none(),
            resolved_model=st.just("openai/gpt-4o-mini"),
            credential_source=st.just("environment"),
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


def event_batches(*, first: bool = False) -> st.SearchStrategy[list[Event]]:
    """A batch for one append; with ``first``, it starts with ``ExecutionStarted``."""
    rest = st.lists(events(), min_size=0 if first else 1, max_size=4)
    if not first:
        return rest
    return st.tuples(_started(), rest).map(lambda pair: [pair[0], *pair[1]])
