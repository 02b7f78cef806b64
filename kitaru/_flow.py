"""``@flow``: the durable entry point of an agent."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
from collections.abc import Callable
from typing import Any, Generic, ParamSpec, TypeVar, overload

from kitaru._config import store_location, store_url
from kitaru._flow_handle import FlowHandle
from kitaru._run_config import (
    KitaruConfig,
    QueuePlacement,
    coerce_image,
    environment_config,
    merge_layers,
    queue_placement,
    runtime_layer,
    settings,
)
from kitaru._stacks import (
    LOCAL_STACK,
    RUNNER_IN_PROCESS,
    RUNNER_WORKERS,
    default_stack_name,
    list_stacks,
    stack_runner,
    stack_store,
)
from kitaru._stores import open_store
from kitaru.errors import KitaruError, KitaruUsageError
from kitaru.journal.events import ExecutionSpec
from kitaru.journal.read_model import ExecutionStatus
from kitaru.journal.store import Store, WorkQueue
from kitaru.replay.state import ExecutionState
from kitaru.runtime.locate import check_not_importing, flow_ref, register_flow
from kitaru.runtime.runner import Run, start_execution

__all__ = ["RUN_OPTIONS", "Flow", "flow"]

P = ParamSpec("P")
R = TypeVar("R")

RUN_OPTIONS = ("stack", "image", "cache", "retries", "background", "queue", "priority")
"""Keyword arguments of ``.run()`` that configure the run itself (``.replay()`` takes
all but ``queue`` and ``priority``); a flow's own parameters cannot use these names."""

_SETTLE_POLL_SECONDS = 0.05
"""How often a blocking run looks whether its execution now waits for input."""


def _check_retries(retries: int | None) -> None:
    if retries is not None and (
        isinstance(retries, bool) or not isinstance(retries, int) or retries < 0
    ):
        raise KitaruUsageError(f"retries must be a whole number >= 0, got {retries!r}.")


def _models_now() -> dict[str, Any]:
    # Imported here: the model registry is read when a flow starts, not at import.
    from kitaru._llm.registry import registry_snapshot

    return registry_snapshot()


def _same_store(a: str, b: str) -> bool:
    try:
        return store_url(a) == store_url(b)
    except KitaruError:  # not a store location at all
        return False


def _settle(run: Run, store: Store) -> None:
    """Block until the execution ends or pauses at a wait (its body keeps waiting there)."""
    while not run.done.wait(_SETTLE_POLL_SECONDS):
        row = store.get_execution(run.exec_id)
        if row is not None and row.status == ExecutionStatus.WAITING:
            return


def _blocks(background: Any, runner: str) -> bool:
    if background is None:
        # In-process stacks finish the run before .run() returns, as Kitaru's local
        # stack does; `background=True` returns at once with a handle to wait on.
        return runner == RUNNER_IN_PROCESS
    if not isinstance(background, bool):
        raise KitaruUsageError(f"background must be True or False, got {background!r}.")
    return not background


class Flow(Generic[P, R]):
    """A flow function; start it with ``.run(...)``."""

    def __init__(
        self,
        func: Callable[P, R],
        *,
        retries: int | None,
        cache: bool | None,
        stack: str | None = None,
        image: Any = None,
    ):
        _check_retries(retries)
        self.func = func
        self.name: str = func.__name__
        self._defaults = KitaruConfig(
            stack=stack, image=coerce_image(image), cache=cache, retries=retries
        )
        functools.update_wrapper(self, func)
        register_flow(self)

    @property
    def retries(self) -> int:
        """Retries a run started now would get, before any run option."""
        layer = merge_layers(self._defaults, runtime_layer(), environment_config())
        return layer.retries if layer.retries is not None else settings().retries

    @property
    def cache(self) -> bool:
        """Whether a run started now would cache, before any run option."""
        layer = merge_layers(self._defaults, runtime_layer(), environment_config())
        return bool(layer.cache)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        raise KitaruUsageError(
            f"Flows are not called directly: use {self.name}.run(...) to start an execution, "
            f"then .wait() on the handle for the result."
        )

    def _spec(self, invocation: KitaruConfig) -> ExecutionSpec:
        """Resolve the run configuration: invocation > flow > configure > environment."""
        layer = merge_layers(invocation, self._defaults, runtime_layer(), environment_config())
        stack = layer.stack or default_stack_name()
        return ExecutionSpec(
            stack=stack,
            store=store_location(store_url(stack_store(stack))),
            runner=stack_runner(stack),
            cache=bool(layer.cache),
            retries=layer.retries if layer.retries is not None else 0,
            image=layer.image.to_dict() if layer.image is not None else None,
            flow_defaults=self._defaults.to_dict(),
        )

    def spec_for_replay(
        self, source: ExecutionState, store: Store, invocation: KitaruConfig | None = None
    ) -> ExecutionSpec:
        """The configuration of a replay of ``source``: its options over the source's spec.

        A replay reads the source's calls, so it is recorded in the source's store.
        """
        invocation = invocation or KitaruConfig()
        assert source.started is not None
        frozen = source.started.spec
        if frozen is not None:
            recorded = KitaruConfig(
                stack=frozen.stack,
                image=coerce_image(frozen.image),
                cache=frozen.cache,
                retries=frozen.retries,
            )
            layer = merge_layers(invocation, recorded)
        else:
            layer = merge_layers(invocation, self._defaults, runtime_layer(), environment_config())
        location = store_location(store.url)
        if invocation.stack is not None and not _same_store(
            stack_store(invocation.stack), location
        ):
            raise KitaruUsageError(
                f"A replay is recorded in the journal of the execution it replays ({location}), "
                f"but stack '{invocation.stack}' records in {stack_store(invocation.stack)}. "
                "Replay without stack=, or on a stack that uses that journal."
            )
        stack = invocation.stack or (frozen.stack if frozen is not None else None)
        if stack is None:
            stack = next(
                (s.name for s in list_stacks() if _same_store(s.store, location)), LOCAL_STACK
            )
        return ExecutionSpec(
            stack=stack,
            store=location,
            runner=frozen.runner if frozen is not None else RUNNER_IN_PROCESS,
            cache=bool(layer.cache),
            retries=layer.retries if layer.retries is not None else 0,
            image=layer.image.to_dict() if layer.image is not None else None,
            flow_defaults=self._defaults.to_dict(),
        )

    def _check_arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        signature = inspect.signature(self.func)
        try:
            signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise KitaruUsageError(
                f"{self.name}.run() got arguments that do not fit "
                f"{self.name}({', '.join(map(str, signature.parameters.values()))}): "
                f"{exc}. Pass the flow's own parameters; stack=, image=, cache=, retries= "
                "and background= configure the run."
            ) from None

    def run(self, *args: P.args, **kwargs: P.kwargs) -> FlowHandle:
        """Start a new execution of this flow; return its handle.

        ``stack=``, ``image=``, ``cache=`` and ``retries=`` configure this run (they are
        not passed to the flow). On a stack with workers, ``queue=`` names the run queue
        (only workers started with ``--queue NAME`` take it) and ``priority=`` orders it
        there (higher first). On an in-process stack (all stacks of this version)
        ``.run()`` returns once the execution has finished or is waiting for input;
        ``background=True`` returns at once, and ``.wait()`` on the handle blocks.
        """
        options: dict[str, Any] = {name: kwargs.pop(name) for name in RUN_OPTIONS if name in kwargs}
        check_not_importing(self.name, "run")
        self._check_arguments(args, kwargs)
        background = options.pop("background", None)
        _blocks(background, RUNNER_IN_PROCESS)  # a bad value is refused before anything starts
        placement = queue_placement(options.pop("queue", None), options.pop("priority", None))
        spec = self._spec(KitaruConfig(**options))
        if placement is not None and spec.runner != RUNNER_WORKERS:
            raise KitaruUsageError(
                f"queue= and priority= place an execution in the run queue of `kitaru worker` "
                f"processes, but stack '{spec.stack}' has no workers; drop them, or run on a "
                "stack created with --workers."
            )
        store = open_store(spec.store)
        if spec.runner == RUNNER_WORKERS:
            return self._submit(
                spec, store, args, kwargs, blocking=background is False, placement=placement
            )
        run = start_execution(
            self,
            flow_ref(self.func),
            args,
            kwargs,
            retries=spec.retries,
            registry=_models_now(),
            spec=spec,
            store=store,
        )
        if _blocks(background, spec.runner):
            _settle(run, store)
        return FlowHandle(run.exec_id, run=run, store=store)

    async def run_async(self, *args: P.args, **kwargs: P.kwargs) -> FlowHandle:
        """``.run()`` for code already in an event loop: ``await flow.run_async(...)``.

        Takes the same arguments and run options and returns the same ``FlowHandle``,
        without blocking the caller's loop while the execution runs.
        """
        # Starting an execution appends to the journal and, on an in-process stack,
        # waits for it to end or pause: blocking calls, so they go to a worker thread.
        # The body is not run on the caller's loop but, as for .run(), in a fresh loop
        # in the execution's own thread: its journal commits block that loop and must
        # not stall the caller's tasks, and a resume from the CLI or a worker (where
        # there is no caller's loop) then runs the body exactly as the first run did.
        return await asyncio.to_thread(functools.partial(self.run, *args, **kwargs))

    def _submit(
        self,
        spec: ExecutionSpec,
        store: Store,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        blocking: bool,
        placement: QueuePlacement | None = None,
    ) -> FlowHandle:
        """Record the execution's start, let go of it, and queue it for the workers."""
        if not isinstance(store, WorkQueue):
            raise KitaruUsageError(
                f"Stack '{spec.stack}' runs executions on workers, but its store "
                f"{store.location} has no run queue; give the stack a PostgreSQL store."
            )
        run = start_execution(
            self,
            flow_ref(self.func),
            args,
            kwargs,
            retries=spec.retries,
            registry=_models_now(),
            spec=spec,
            store=store,
            background=False,
        )
        run.abandon()
        placement = placement or QueuePlacement()
        store.enqueue(run.exec_id, placement.queue, placement.priority)
        handle = FlowHandle(run.exec_id, store=store)
        if blocking:
            # As on an in-process stack: back once it ended or waits; its outcome is
            # the handle's to give.
            with contextlib.suppress(KitaruError):
                handle.wait()
        return handle

    def replay(
        self,
        exec_id: str,
        *,
        from_: str,
        overrides: dict[str, Any] | None = None,
        stack: str | None = None,
        image: Any = None,
        cache: bool | None = None,
        retries: int | None = None,
        background: bool | None = None,
        **flow_inputs: Any,
    ) -> FlowHandle:
        """Start a NEW execution from a finished one, reusing its calls before ``from_``.

        ``from_`` selects a checkpoint (or flow-body llm call) by name, call identity or
        call id: it and everything after it run live. ``overrides`` maps
        ``"checkpoint.<selector>"`` to a value that replaces that call's recorded output
        for every later consumer. Other keyword arguments override the flow's inputs.
        The replay runs with the source's recorded configuration unless ``stack=``,
        ``image=``, ``cache=`` or ``retries=`` change it; it blocks like ``.run()``.
        """
        from kitaru.runtime.runner import replay_execution

        check_not_importing(self.name, "replay")
        _blocks(background, RUNNER_IN_PROCESS)  # a bad value is refused before anything starts
        invocation = KitaruConfig(
            stack=stack, image=coerce_image(image), cache=cache, retries=retries
        )
        store = self._source_store(exec_id, stack)
        run = replay_execution(
            self,
            exec_id,
            from_=from_,
            overrides=overrides,
            flow_inputs=flow_inputs,
            registry=_models_now(),
            store=store,
            invocation=invocation,
        )
        spec = run.ctx.state.started.spec if run.ctx.state.started is not None else None
        if _blocks(background, spec.runner if spec is not None else RUNNER_IN_PROCESS):
            _settle(run, store)
        return FlowHandle(run.exec_id, run=run, store=store)

    def _source_store(self, exec_id: str, stack: str | None) -> Store:
        """The store holding ``exec_id``: the named stack's, the current one, or any stack's."""
        first = open_store(stack_store(stack)) if stack is not None else open_store()
        if first.get_execution(exec_id) is not None:
            return first
        searched = {first.url}
        for info in list_stacks():
            try:
                url = store_url(info.store)
                other = open_store(url, create=False)
            except KitaruError:  # a store this version cannot open holds nothing to replay
                continue
            if url not in searched:
                searched.add(url)
                if other.get_execution(exec_id) is not None:
                    return other
        return first

    def __repr__(self) -> str:
        return f"<kitaru flow {self.name}>"


@overload
def flow(func: Callable[P, R], /) -> Flow[P, R]: ...
@overload
def flow(
    *,
    retries: int | None = None,
    cache: bool | None = None,
    stack: str | None = None,
    image: Any = None,
) -> Callable[[Callable[P, R]], Flow[P, R]]: ...
def flow(
    func: Callable[P, R] | None = None,
    /,
    *,
    retries: int | None = None,
    cache: bool | None = None,
    stack: str | None = None,
    image: Any = None,
) -> Flow[P, R] | Callable[[Callable[P, R]], Flow[P, R]]:
    """Make a function a durable flow: ``@flow`` or ``@flow(retries=2, stack="team")``.

    ``retries`` re-runs the flow body after a failure (completed calls are replayed,
    failed ones run again). ``cache=True`` lets its checkpoints reuse outputs that
    earlier executions recorded for the same checkpoint code and arguments; it is off
    unless set here, on the checkpoint, with ``kitaru.configure(cache=True)`` or
    ``KITARU_CACHE``. ``stack`` names the stack its executions run on (default: the
    active one); ``image`` (``ImageSettings``, a dict of its fields or a base image
    name) is validated and recorded with each execution.
    """
    _check_retries(retries)
    KitaruConfig(stack=stack, image=coerce_image(image), cache=cache, retries=retries)

    def wrap(fn: Callable[P, R]) -> Flow[P, R]:
        return Flow(fn, retries=retries, cache=cache, stack=stack, image=image)

    return wrap(func) if func is not None else wrap
