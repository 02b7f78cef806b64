"""Output handles: what a durable call returns in the flow body.

A handle stands for a call's output. Pass it into another checkpoint (it arrives as
the value), return it from the flow (the caller gets the value), or call ``.load()``
in flow-body code. Used as text (an f-string, ``str()``, ``format()``, ``+``) it is
its value too, so a prompt composed from an earlier answer holds that answer. It
remembers which call produced it, which is how replay knows who consumes an
overridden output.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from kitaru.runtime.values import decode_value

if TYPE_CHECKING:
    from kitaru.journal.events import ValueRef
    from kitaru.journal.store import Store

__all__ = [
    "MapResult",
    "OutputHandle",
    "map_handles",
    "recorded_output",
    "resolve_handles",
]

T = TypeVar("T")


class OutputHandle(Generic[T]):
    """The output of one durable call; ``.load()`` gives the value."""

    __slots__ = (
        "_future",
        "_on_load",
        "_recorded",
        "_store",
        "_value",
        "call_id",
        "identity",
        "kind",
    )

    def __init__(
        self,
        identity: str,
        call_id: str,
        kind: str = "checkpoint",
        *,
        value: Any = None,
        future: Future[Any] | None = None,
        on_load: Callable[[], None] | None = None,
        recorded: ValueRef | None = None,
        store: Store | None = None,
    ):
        self.identity = identity
        self.call_id = call_id
        self.kind = kind
        self._value = value
        self._future = future
        self._on_load = on_load
        self._recorded = recorded
        """The output as the journal holds it, decoded (from ``store``) on first use:
        a resumed call's output is often only passed on to calls that replay too."""
        self._store = store

    def load(self, timeout: float | None = None) -> T:
        """Return the call's value, waiting for it if the call runs concurrently."""
        if self._on_load is not None:
            self._on_load()
        if self._future is not None:
            return self._future.result(timeout)  # type: ignore[no-any-return]
        if self._recorded is not None:
            return self._decode()
        return self._value  # type: ignore[no-any-return]

    def _resolve(self) -> T:
        """The value, for kitaru itself (passing a handle on is not a flow-body load)."""
        if self._future is not None:
            return self._future.result()  # type: ignore[no-any-return]
        if self._recorded is not None:
            return self._decode()
        return self._value  # type: ignore[no-any-return]

    def _decode(self) -> T:
        """Decode the recorded output (once); a value that cannot be read raises here."""
        ref, store = self._recorded, self._store
        assert ref is not None
        assert store is not None
        data = ref.inline if ref.inline is not None else store.read_payload(ref.hash or "")
        value = decode_value(data)
        self._value, self._recorded = value, None
        return value  # type: ignore[no-any-return]

    def result(self, timeout: float | None = None) -> T:
        """Same as ``load()``: the call's value."""
        return self.load(timeout)

    def wait(self, timeout: float | None = None) -> None:
        """Block until the call has finished (its error, if any, is raised by ``load``)."""
        if self._future is not None:
            self._future.exception(timeout)

    def done(self) -> bool:
        return self._future is None or self._future.done()

    def __repr__(self) -> str:
        return (
            f"<kitaru output of {self.kind} '{self.identity}': call .load() for the value, "
            "or pass the handle into another checkpoint>"
        )

    def __reduce_ex__(self, protocol: Any) -> Any:
        # A handle stands for a call's output, it is not a value: it must never be
        # stored (nor pickled) as an object. Refusing here sends the value encoder to
        # the handle-aware paths (arguments digested by producing call, results resolved).
        raise TypeError(
            f"the output of {self.kind} '{self.identity}' is a handle, not a value: "
            "call .load() for the value"
        )

    # Text built from a handle is flow-body code reading the value, so each of these
    # goes through load(): a replay then knows later calls may see a changed output.

    def __str__(self) -> str:
        return str(self.load())

    def __format__(self, format_spec: str) -> str:
        return format(self.load(), format_spec)

    def __add__(self, other: Any) -> Any:
        return self.load() + other

    def __radd__(self, other: Any) -> Any:
        return other + self.load()


def recorded_output(
    identity: str, call_id: str, kind: str, recorded: ValueRef, store: Store
) -> OutputHandle[Any]:
    """The handle of a recorded output, decoded from ``store`` on first use.

    Built without ``OutputHandle.__init__``: its keyword arguments cost more than the
    rest of a replayed call's handle, and a resume makes one per recorded call.
    """
    handle: OutputHandle[Any] = _new_handle(OutputHandle)
    handle.identity, handle.call_id, handle.kind = identity, call_id, kind
    handle._value = handle._future = handle._on_load = None
    handle._recorded, handle._store = recorded, store
    return handle


_new_handle = object.__new__


class MapResult(list[OutputHandle[T]]):
    """The handles of a ``checkpoint.map(...)`` fan-out, in input order."""

    def load(self, timeout: float | None = None) -> list[T]:
        """Return every value, in input order (raises the first error met)."""
        return [handle.load(timeout) for handle in self]

    def result(self, timeout: float | None = None) -> list[T]:
        return self.load(timeout)

    def wait(self, timeout: float | None = None) -> None:
        for handle in self:
            handle.wait(timeout)

    def __iter__(self) -> Iterator[OutputHandle[T]]:
        return super().__iter__()


def map_handles(value: Any, replace: Callable[[OutputHandle[Any]], Any]) -> Any:
    """``value`` with each handle inside it (and lists, tuples, sets, dicts) replaced."""
    cls = type(value)
    if cls is OutputHandle:
        return replace(value)
    if cls is list or cls is MapResult:
        return [map_handles(item, replace) for item in value]
    if cls is tuple:
        return tuple(map_handles(item, replace) for item in value)
    if cls is dict:
        return {key: map_handles(item, replace) for key, item in value.items()}
    if cls is set or cls is frozenset:
        return cls(map_handles(item, replace) for item in value)
    return value


def resolve_handles(value: Any, lineage: list[str] | None = None) -> Any:
    """Replace handles inside ``value`` (and lists, tuples, sets, dicts) by their values.

    Identities of the calls whose handles were found are appended to ``lineage``.
    """

    def resolve(handle: OutputHandle[Any]) -> Any:
        if lineage is not None:
            lineage.append(handle.identity)
        return handle._resolve()

    return map_handles(value, resolve)
