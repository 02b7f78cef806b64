"""``@flow``: the durable entry point of an agent."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Generic, ParamSpec, TypeVar, overload

from kitaru.config import settings
from kitaru.errors import KitaruUsageError
from kitaru.flow_handle import FlowHandle
from kitaru.runtime.locate import check_not_importing, flow_ref, register_flow
from kitaru.runtime.runner import start_execution

__all__ = ["Flow", "flow"]

P = ParamSpec("P")
R = TypeVar("R")


def _check_retries(retries: int | None) -> None:
    if retries is not None and (
        isinstance(retries, bool) or not isinstance(retries, int) or retries < 0
    ):
        raise KitaruUsageError(f"retries must be a whole number >= 0, got {retries!r}.")


def _registry_snapshot() -> dict[str, Any]:
    """The effective model registry, carried into the execution for ``kitaru.llm``.

    Always taken, even when empty: an execution resolves aliases from the registry it
    started with, wherever it is resumed, never from the resuming machine's config.
    """
    from kitaru._llm.registry import effective_registry

    snapshot: dict[str, Any] = effective_registry().to_snapshot()
    return snapshot


class Flow(Generic[P, R]):
    """A flow function; start it with ``.run(...)``."""

    def __init__(self, func: Callable[P, R], *, retries: int | None, cache: bool | None):
        _check_retries(retries)
        self.func = func
        self.name: str = func.__name__
        self._retries = retries
        self._cache = cache
        functools.update_wrapper(self, func)
        register_flow(self)

    @property
    def retries(self) -> int:
        return self._retries if self._retries is not None else settings().retries

    @property
    def cache(self) -> bool:
        return self._cache if self._cache is not None else settings().cache

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        raise KitaruUsageError(
            f"Flows are not called directly: use {self.name}.run(...) to start an execution, "
            f"then .wait() on the handle for the result."
        )

    def run(self, *args: P.args, **kwargs: P.kwargs) -> FlowHandle:
        """Start a new execution of this flow and return its handle at once."""
        check_not_importing(self.name, "run")
        run = start_execution(
            self,
            flow_ref(self.func),
            args,
            kwargs,
            retries=self.retries,
            registry=_registry_snapshot(),
        )
        return FlowHandle(run.exec_id, run=run, store=run.ctx.store)

    def replay(
        self,
        exec_id: str,
        *,
        from_: str,
        overrides: dict[str, Any] | None = None,
        **flow_inputs: Any,
    ) -> FlowHandle:
        """Start a NEW execution from a finished one, reusing its calls before ``from_``.

        ``from_`` selects a checkpoint (or flow-body llm call) by name, call identity or
        call id: it and everything after it run live. ``overrides`` maps
        ``"checkpoint.<selector>"`` to a value that replaces that call's recorded output
        for every later consumer. Keyword arguments override the flow's inputs.
        """
        from kitaru.runtime.runner import replay_execution

        check_not_importing(self.name, "replay")
        run = replay_execution(
            self,
            exec_id,
            from_=from_,
            overrides=overrides,
            flow_inputs=flow_inputs,
            registry=_registry_snapshot(),
        )
        return FlowHandle(run.exec_id, run=run, store=run.ctx.store)

    def __repr__(self) -> str:
        return f"<kitaru flow {self.name}>"


@overload
def flow(func: Callable[P, R], /) -> Flow[P, R]: ...
@overload
def flow(
    *, retries: int | None = None, cache: bool | None = None
) -> Callable[[Callable[P, R]], Flow[P, R]]: ...
def flow(
    func: Callable[P, R] | None = None,
    /,
    *,
    retries: int | None = None,
    cache: bool | None = None,
) -> Flow[P, R] | Callable[[Callable[P, R]], Flow[P, R]]:
    """Make a function a durable flow: ``@flow`` or ``@flow(retries=2)``.

    ``retries`` re-runs the flow body after a failure (completed calls are replayed,
    failed ones run again). ``cache=True`` lets its checkpoints reuse outputs that
    earlier executions recorded for the same checkpoint code and arguments; it is off
    unless set here, on the checkpoint, or with ``kitaru.configure(cache=True)``.
    """
    _check_retries(retries)

    def wrap(fn: Callable[P, R]) -> Flow[P, R]:
        return Flow(fn, retries=retries, cache=cache)

    return wrap(func) if func is not None else wrap
