"""``@checkpoint``: a durable unit of work inside a flow."""

from __future__ import annotations

import asyncio
import functools
import inspect
import itertools
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, Generic, ParamSpec, Protocol, TypeVar, overload

from kitaru._logging import get_logger
from kitaru.errors import KitaruContextError, KitaruUsageError
from kitaru.journal.read_model import ExecutionStatus
from kitaru.runtime.arguments import ArgumentLayout, CallArguments, capture_arguments
from kitaru.runtime.boundary import (
    CallSlot,
    execute,
    execute_async,
    output_handle,
    recorded_handle,
    replayed_checkpoint,
    reserve,
)
from kitaru.runtime.caching import CacheKeyError, cache_key, code_fingerprint
from kitaru.runtime.context import CallScope, current_call, current_execution
from kitaru.runtime.handles import MapResult, OutputHandle
from kitaru.runtime.locate import qualified_name

__all__ = ["AsyncCheckpoint", "Checkpoint", "checkpoint"]

P = ParamSpec("P")
R = TypeVar("R")

_log = get_logger()


class Checkpoint(Generic[P, R]):
    """A checkpoint function. In a flow body, calls return output handles."""

    def __init__(
        self,
        func: Callable[P, R],
        *,
        retries: int,
        type: str | None,
        cache: bool | None = None,
        ignore_args: Iterable[str] = (),
        runtime: str | None = None,
    ):
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise KitaruUsageError(f"retries must be a whole number >= 0, got {retries!r}.")
        if type is not None and not isinstance(type, str):
            raise KitaruUsageError(f"type must be a string label, got {type!r}.")
        self.func = func
        self.name: str = getattr(func, "__name__", None) or func.__class__.__name__
        self.retries = retries
        self.type = type
        self.cache = cache
        self.target = qualified_name(func)
        """``module:QualName``: with the name, what a recorded call must match."""
        self._layout = ArgumentLayout(func)
        self.ignore_args = _check_ignore_args(self.name, self._layout.signature, ignore_args)
        self.runtime = _check_runtime(runtime)
        self._uncacheable_logged = False
        self.is_async = inspect.iscoroutinefunction(func)
        """An ``async def``: calls return awaitables, run in the flow body's event loop."""
        self._replays_directly = not self.is_async and not self.ignore_args and self._layout.simple
        """Whether a call may take ``replayed_checkpoint``'s path (given only positional
        arguments); an async def replays when awaited, an ignored argument needs the
        matcher, and other signatures need their arguments named."""
        functools.update_wrapper(self, func)

    def _cache_key(
        self, enabled: bool, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> str | None:
        if not (self.cache if self.cache is not None else enabled):
            return None
        try:
            # Taken at every call: a global the body reads may change while running.
            fingerprint = code_fingerprint(self.func)
        except CacheKeyError as exc:
            if not self._uncacheable_logged:
                self._uncacheable_logged = True
                _log.warning(
                    "checkpoint not cached: what it reads cannot be fingerprinted",
                    checkpoint=self.name,
                    reason=str(exc),
                )
            return None
        return cache_key(fingerprint, args, kwargs)

    def __repr__(self) -> str:
        return f"<kitaru checkpoint {self.name}>"

    def _refuse_async(self, method: str) -> None:
        if self.is_async:
            raise KitaruUsageError(
                f"Checkpoint '{self.name}' is an async def: fan it out with the event loop "
                f"instead of .{method}(), e.g. `await asyncio.gather(*({self.name}(x) for x "
                "in items))` or an asyncio.TaskGroup."
            )

    def _slot(self, explicit_id: str | None, arguments: CallArguments) -> CallSlot:
        ctx = current_execution.get()
        if ctx is None:
            raise KitaruContextError("Checkpoints can only run inside a @flow.")
        if current_call.get() is not None:
            raise KitaruContextError(
                f"Checkpoint '{self.name}' was called inside another checkpoint; checkpoints "
                "cannot be nested. Call it from the flow body, or make it a plain function."
            )
        return reserve(
            ctx,
            "checkpoint",
            self.name,
            explicit_id,
            target=self.target,
            arguments=arguments.digests,
            ignored=self.ignore_args,
        )

    def _arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> CallArguments:
        # Captured in the flow body's thread, before the call is matched: handles are
        # digested by the call that produced them, so nothing waits for their values.
        return capture_arguments(self._layout, args, kwargs, self.ignore_args)

    def _cache_key_for(self, slot: CallSlot, arguments: CallArguments) -> str | None:
        arguments.resolve()
        recorded = slot.recorded
        # A completed call replays its output: its key would never be looked up.
        replays = recorded is not None and recorded.status is ExecutionStatus.COMPLETED
        if not replays and (self.cache or (self.cache is None and slot.ctx.cache)):
            return self._cache_key(True, *arguments.copies())
        return None

    def _live(self, arguments: CallArguments) -> Callable[[CallScope], Any]:
        def live(_scope: CallScope) -> Any:
            # Each attempt gets fresh copies: a retry starts from the arguments as they
            # were given, not as a failed attempt left them. (For an async def this
            # returns the attempt's coroutine, which execute_async awaits.)
            args, kwargs = arguments.copies()
            return self.func(*args, **kwargs)

        return live

    def _execute(self, slot: CallSlot, arguments: CallArguments) -> Any:
        key = self._cache_key_for(slot, arguments)
        return execute(
            slot,
            self._live(arguments),
            retries=self.retries,
            checkpoint_type=self.type,
            inputs_from=arguments.lineage,
            cache_key=key,
        )

    async def _execute_async(self, slot: CallSlot, arguments: CallArguments) -> Any:
        key = self._cache_key_for(slot, arguments)
        value = await execute_async(
            slot,
            self._live(arguments),
            retries=self.retries,
            checkpoint_type=self.type,
            inputs_from=arguments.lineage,
            cache_key=key,
        )
        replay = slot.ctx.replay
        if replay is not None:
            # Awaiting gives the flow body the value itself, so it counts as a load:
            # in a replay, a changed output reaching the body makes later calls run live.
            replay.loaded(slot.identity)
        return value

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> OutputHandle[R]:
        """Run the checkpoint (or return its recorded output); ``id=`` names the call.

        An ``async def`` checkpoint returns an awaitable instead; see ``_call_async``.
        """
        if not kwargs and self._replays_directly:
            # Every parameter given positionally, no id=: a resumed call may replay at once.
            ctx = current_execution.get()
            if ctx is not None and current_call.get() is None:
                replayed = replayed_checkpoint(
                    ctx, self.name, self.target, self._layout.names, args
                )
                if replayed is not None:
                    return replayed
        explicit_id: Any = kwargs.pop("id", None)
        if self.is_async:
            return self._call_async(explicit_id, args, kwargs)  # type: ignore[return-value]
        arguments = capture_arguments(self._layout, args, kwargs, self.ignore_args)
        slot = self._slot(explicit_id, arguments)
        handle = recorded_handle(slot)
        if handle is not None:
            return handle
        value = self._execute(slot, arguments)
        return output_handle(slot, value=value)

    def _call_async(
        self, explicit_id: str | None, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Coroutine[Any, Any, Any]:
        """Reserve the call's identity now, in program order; return what runs it.

        The position and name ordinal are taken when the checkpoint is called, not when
        the returned coroutine first runs: ``asyncio.gather(search(a), search(b))``
        creates both coroutines in source order, so ``search`` and ``search_2`` are the
        same on every run, whichever task the loop schedules or finishes first.
        """
        if current_execution.get() is not None and not _in_event_loop():
            raise KitaruUsageError(
                f"Checkpoint '{self.name}' is an async def, but the flow body calling it "
                f"is not running in an event loop; make the flow an async def and write "
                f"`await {self.name}(...)`, or make the checkpoint a plain def."
            )
        arguments = self._arguments(args, kwargs)
        slot = self._slot(explicit_id, arguments)
        handle = recorded_handle(slot)
        if handle is not None:
            return _recorded_value(handle)
        return self._execute_async(slot, arguments)

    def submit(self, *args: P.args, **kwargs: P.kwargs) -> OutputHandle[R]:
        """Start the checkpoint concurrently; ``.load()`` on the handle waits for it."""
        explicit_id: Any = kwargs.pop("id", None)
        self._refuse_async("submit")
        arguments = self._arguments(args, kwargs)
        slot = self._slot(explicit_id, arguments)
        ctx = slot.ctx
        import contextvars

        context = contextvars.copy_context()
        future = ctx.submit(lambda: context.run(self._execute, slot, arguments))
        return output_handle(slot, future=future)

    def map(self, *iterables: Iterable[Any], **kwargs: Any) -> MapResult[R]:
        """Fan out: one concurrent call per item (positional iterables are zipped).

        Keyword arguments are passed unchanged to every call.
        """
        self._refuse_async("map")
        if not iterables:
            raise KitaruUsageError(f"{self.name}.map() needs at least one iterable of inputs.")
        if "id" in kwargs:
            raise KitaruUsageError(
                f"{self.name}.map() names its calls {self.name}, {self.name}_2, ...; "
                "id= is not accepted."
            )
        columns = [list(iterable) for iterable in iterables]
        if len({len(column) for column in columns}) > 1:
            sizes = ", ".join(str(len(column)) for column in columns)
            raise KitaruUsageError(
                f"{self.name}.map() got iterables of different lengths ({sizes}); "
                "give them equal lengths."
            )
        return MapResult(self.submit(*items, **kwargs) for items in zip(*columns, strict=True))

    def product(self, *iterables: Iterable[Any], **kwargs: Any) -> MapResult[R]:
        """Fan out over the cartesian product: one concurrent call per combination.

        Combinations come in ``itertools.product`` order (the last iterable varies
        fastest); keyword arguments are passed unchanged to every call.
        """
        self._refuse_async("product")
        if not iterables:
            raise KitaruUsageError(f"{self.name}.product() needs at least one iterable of inputs.")
        if "id" in kwargs:
            raise KitaruUsageError(
                f"{self.name}.product() names its calls {self.name}, {self.name}_2, ...; "
                "id= is not accepted."
            )
        columns = [list(iterable) for iterable in iterables]
        return MapResult(self.submit(*items, **kwargs) for items in itertools.product(*columns))


class AsyncCheckpoint(Checkpoint[P, Any], Generic[P, R]):
    """A checkpoint on an ``async def``: ``await ckpt(...)`` in an async flow body gives
    the value. (Only its type differs from ``Checkpoint``: calls return awaitables.)"""

    def __call__(  # type: ignore[override]
        self, *args: P.args, **kwargs: P.kwargs
    ) -> Coroutine[Any, Any, R]:
        """Reserve the call's identity now and return the awaitable that runs it."""
        return super().__call__(*args, **kwargs)  # type: ignore[return-value]


class _Decorator(Protocol):
    """What ``@checkpoint(...)`` with options returns: async or sync by the function."""

    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, R]], /) -> AsyncCheckpoint[P, R]: ...
    @overload
    def __call__(self, fn: Callable[P, R], /) -> Checkpoint[P, R]: ...


async def _recorded_value(handle: OutputHandle[Any]) -> Any:
    """What awaiting a call the execution completed before gives: its recorded output."""
    return handle._resolve()


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


_RUNTIMES = ("inline", "isolated")


def _check_runtime(runtime: Any) -> str | None:
    """``inline`` or ``isolated`` (any case), or None; anything else is refused."""
    if runtime is None:
        return None
    value = runtime.strip().lower() if isinstance(runtime, str) else None
    if value not in _RUNTIMES:
        raise KitaruUsageError(
            f"Unsupported checkpoint runtime {runtime!r}; expected one of: "
            f"{', '.join(_RUNTIMES)} (or leave it unset)."
        )
    return value


def _check_ignore_args(
    name: str, signature: inspect.Signature | None, ignore_args: Iterable[str]
) -> frozenset[str]:
    """The argument names of ``ignore_args=``, checked against the function's parameters."""
    if isinstance(ignore_args, str):
        raise KitaruUsageError(
            f"ignore_args= of checkpoint '{name}' must be a tuple of argument names, "
            f'not a string: write ignore_args=("{ignore_args}",).'
        )
    names = frozenset(ignore_args)
    if signature is None or not names:
        return names
    params = signature.parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return names  # any keyword may arrive through **kwargs
    unknown = sorted(names - set(params))
    if unknown:
        raise KitaruUsageError(
            f"ignore_args= of checkpoint '{name}' names {', '.join(map(repr, unknown))}, "
            f"which it does not take; its parameters are {', '.join(params) or '(none)'}."
        )
    return names


@overload
def checkpoint(func: Callable[P, Coroutine[Any, Any, R]], /) -> AsyncCheckpoint[P, R]: ...
@overload
def checkpoint(func: Callable[P, R], /) -> Checkpoint[P, R]: ...
@overload
def checkpoint(
    *,
    retries: int = 0,
    type: str | None = None,
    cache: bool | None = None,
    ignore_args: Iterable[str] = (),
    runtime: str | None = None,
) -> _Decorator: ...
def checkpoint(
    func: Callable[P, R] | None = None,
    /,
    *,
    retries: int = 0,
    type: str | None = None,
    cache: bool | None = None,
    ignore_args: Iterable[str] = (),
    runtime: str | None = None,
) -> Checkpoint[P, R] | _Decorator:
    """Make a function a durable checkpoint: ``@checkpoint`` or ``@checkpoint(retries=2)``.

    ``retries`` re-runs a failing body up to that many more times, journaling every
    attempt; ``type`` is a free label kept in the journal (``"llm_call"``, ...).
    ``cache=True`` lets a call reuse the output an earlier execution recorded for the
    same code and arguments (default: the flow's ``cache`` setting).
    ``ignore_args`` names arguments that may differ between a recorded call and its
    resume (a timestamp, a request id): every other argument must be equal for the
    recorded output to be reused, or the resume stops with ``KitaruDivergenceError``.
    ``runtime`` (``"inline"`` or ``"isolated"``) is checked and kept: every stack of
    this version runs checkpoints inline, in the flow's process.
    """
    runtime = _check_runtime(runtime)

    def wrap(fn: Callable[P, R]) -> Checkpoint[P, R]:
        # An async def gets the class whose calls are typed as awaitables.
        kind = AsyncCheckpoint if inspect.iscoroutinefunction(fn) else Checkpoint
        return kind(
            fn, retries=retries, type=type, cache=cache, ignore_args=ignore_args, runtime=runtime
        )

    return wrap(func) if func is not None else wrap  # type: ignore[return-value]
