"""``KitaruClient``: inspect and manage executions recorded in the journal."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

import msgspec

from kitaru.errors import KitaruStateError
from kitaru.flow_handle import FlowHandle
from kitaru.journal import open_store
from kitaru.journal.conversation import load_prompt
from kitaru.journal.events import ErrorInfo, LlmCallRecorded, ValueRef
from kitaru.journal.store import Store
from kitaru.replay.state import CallRecord, ExecutionState
from kitaru.runtime.ownership import is_stale
from kitaru.runtime.runner import load_state, resume_execution
from kitaru.runtime.values import decode_value

__all__ = [
    "CheckpointAttempt",
    "CheckpointCall",
    "Execution",
    "ExecutionsClient",
    "FailureInfo",
    "KitaruClient",
    "LlmCall",
]


def _time(ts: float | None) -> dt.datetime | None:
    return None if ts is None else dt.datetime.fromtimestamp(ts, dt.UTC)


@dataclass(frozen=True)
class FailureInfo:
    """Why an execution, call or attempt failed."""

    exception_type: str
    message: str
    traceback: str = ""
    origin: str = "user_code"
    """``user_code`` or ``divergence``."""
    call: str | None = None

    @classmethod
    def from_error(
        cls, error: ErrorInfo, *, origin: str = "user_code", call: str | None = None
    ) -> FailureInfo:
        return cls(error.type, error.message, error.traceback, origin, call)


@dataclass(frozen=True)
class CheckpointAttempt:
    attempt: int
    status: str
    started_at: dt.datetime | None
    ended_at: dt.datetime | None
    duration_ms: float | None
    failure: FailureInfo | None


@dataclass(frozen=True)
class LlmCall:
    """One recorded ``kitaru.llm()`` call and its usage."""

    name: str
    parent: str | None
    requested_model: str | None
    alias: str | None
    resolved_model: str
    credential_source: str
    latency_ms: float
    input_tokens: int | None
    output_tokens: int | None
    total_tokens: int | None
    attempt: int
    message_count: int
    _prompt: str = field(repr=False)
    _response: ValueRef = field(repr=False)
    _store: Store | None = field(default=None, repr=False, compare=False)

    def prompt(self) -> list[dict[str, Any]]:
        """Load the prompt that was sent: the normalised list of chat messages."""
        assert self._store is not None
        return load_prompt(self._prompt, self._store.read_payload)

    def response(self) -> str:
        """Load the response text that came back."""
        assert self._store is not None
        ref = self._response
        data = ref.inline if ref.inline is not None else self._store.read_payload(ref.hash or "")
        text: str = decode_value(data)
        return text


@dataclass(frozen=True)
class CheckpointCall:
    """One durable call of the flow body (a checkpoint, a flow-body llm call, a wait)."""

    call_id: str
    name: str
    invocation_id: str
    """The call identity: ``id=`` or the automatic ``name``, ``name_2``, ..."""
    kind: str
    status: str
    position: int
    checkpoint_type: str | None
    started_at: dt.datetime | None
    ended_at: dt.datetime | None
    attempts: list[CheckpointAttempt]
    failure: FailureInfo | None
    parent_call_ids: tuple[str, ...]
    """Identities of the calls whose outputs were passed into this one."""
    metadata: dict[str, Any]
    llm_calls: list[LlmCall]


@dataclass(frozen=True)
class Execution:
    """An execution as the journal records it."""

    exec_id: str
    flow_name: str
    status: str
    started_at: dt.datetime | None
    ended_at: dt.datetime | None
    failure: FailureInfo | None
    original_exec_id: str | None
    interrupted: bool
    """Marked running, but the process that ran it is gone: `resume` continues it."""
    flow_module: str
    flow_qualname: str
    checkpoints: list[CheckpointCall]
    llm_calls: list[LlmCall]
    metadata: dict[str, Any]
    pending_wait: Any = None
    _result: ValueRef | None = field(default=None, repr=False)
    _store: Store | None = field(default=None, repr=False, compare=False)

    @property
    def has_result(self) -> bool:
        return self._result is not None

    def result(self) -> Any:
        """Load the flow's return value (completed executions only)."""
        if self._result is None or self._store is None:
            raise KitaruStateError(
                f"Execution {self.exec_id} has no result (status: {self.status}).",
                exec_id=self.exec_id,
                status=self.status,
            )
        ref = self._result
        data = ref.inline if ref.inline is not None else self._store.read_payload(ref.hash or "")
        return decode_value(data)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (what ``kitaru executions get -o json`` prints)."""
        data: dict[str, Any] = _jsonable(self)
        if self._result is not None:
            try:
                data["result"] = msgspec.to_builtins(self.result(), builtin_types=(), str_keys=True)
            except Exception as exc:
                data["result"] = None
                data["result_error"] = f"{type(exc).__name__}: {exc}"
        return data


def _jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        data = {
            f.name: _jsonable(getattr(value, f.name))
            for f in fields(value)
            if not f.name.startswith("_")
        }
        if isinstance(value, LlmCall):
            try:
                data["prompt"], data["response"] = value.prompt(), value.response()
            except Exception as exc:
                data["artifact_error"] = f"{type(exc).__name__}: {exc}"
        return data
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


def _llm_call(event: LlmCallRecorded, store: Store) -> LlmCall:
    return LlmCall(
        name=event.name,
        parent=event.parent,
        requested_model=event.requested_model,
        alias=event.alias,
        resolved_model=event.resolved_model,
        credential_source=event.credential_source,
        latency_ms=event.latency_ms,
        input_tokens=event.usage.input_tokens,
        output_tokens=event.usage.output_tokens,
        total_tokens=event.usage.total_tokens,
        attempt=event.attempt,
        message_count=event.message_count,
        _prompt=event.prompt,
        _response=event.response,
        _store=store,
    )


def _call(record: CallRecord, store: Store) -> CheckpointCall:
    return CheckpointCall(
        call_id=record.call_id,
        name=record.name,
        invocation_id=record.identity,
        kind=record.kind,
        status=record.status,
        position=record.position,
        checkpoint_type=record.checkpoint_type,
        started_at=_time(record.started_at),
        ended_at=_time(record.ended_at),
        attempts=[
            CheckpointAttempt(
                attempt=a.attempt,
                status=a.status,
                started_at=_time(a.started_at),
                ended_at=_time(a.ended_at),
                duration_ms=a.duration_ms,
                failure=FailureInfo.from_error(a.error, call=record.identity) if a.error else None,
            )
            for a in sorted(record.attempts, key=lambda a: a.attempt)
        ],
        failure=FailureInfo.from_error(record.error, call=record.identity)
        if record.error
        else None,
        parent_call_ids=record.inputs_from,
        metadata=dict(record.metadata),
        llm_calls=[_llm_call(e, store) for e in record.llm_calls],
    )


def execution_from_state(state: ExecutionState, store: Store) -> Execution:
    """Build the public view of an execution from its folded journal."""
    assert state.started is not None
    failure = None
    if state.failure is not None:
        failure = FailureInfo.from_error(
            state.failure.error,
            origin="divergence" if state.failure.divergence else "user_code",
            call=state.failure.call,
        )
    interrupted = False
    if state.status == "running":
        lease = store.get_lease(state.exec_id)
        interrupted = lease is None or is_stale(lease)
    return Execution(
        exec_id=state.exec_id,
        flow_name=state.flow_name,
        status=state.status,
        started_at=_time(state.started_at),
        ended_at=_time(state.ended_at),
        failure=failure,
        original_exec_id=state.started.original_exec_id,
        interrupted=interrupted,
        flow_module=state.started.flow.module,
        flow_qualname=state.started.flow.qualname,
        checkpoints=[_call(c, store) for _, c in sorted(state.by_position.items())],
        llm_calls=[_llm_call(e, store) for e in state.llm_calls],
        metadata=dict(state.metadata),
        _result=state.result,
        _store=store,
    )


class ExecutionsClient:
    """``KitaruClient().executions``."""

    def __init__(self, store: Store):
        self._store = store

    def resolve_id(self, exec_id: str) -> str:
        """Accept a full id or an unambiguous prefix of one."""
        if not exec_id:
            raise KitaruStateError("An execution id is required.")
        if self._store.get_execution(exec_id) is not None:
            return exec_id
        matches = self._store.find_executions(exec_id, limit=5)
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise KitaruStateError(
                f"No execution {exec_id} in the journal {self._store.location}. "
                "List executions with `kitaru executions list`.",
                exec_id=exec_id,
            )
        raise KitaruStateError(
            f"'{exec_id}' matches several executions ({', '.join(matches)}, ...); "
            "give more of the id.",
            exec_id=exec_id,
        )

    def get(self, exec_id: str) -> Execution:
        exec_id = self.resolve_id(exec_id)
        return execution_from_state(load_state(self._store, exec_id), self._store)

    def list(
        self, flow: str | None = None, status: str | None = None, limit: int | None = None
    ) -> list[Execution]:
        """Executions, newest first, optionally filtered by flow name and status."""
        rows = self._store.list_executions(flow=flow, status=status, limit=limit)
        return [self.get(row.exec_id) for row in rows]

    def latest(self, flow: str | None = None, status: str | None = None) -> Execution:
        found = self.list(flow=flow, status=status, limit=1)
        if not found:
            raise KitaruStateError("No execution matches those filters.")
        return found[0]

    def resume(self, exec_id: str) -> FlowHandle:
        """Continue an interrupted or waiting execution in this process."""
        run = resume_execution(
            self.resolve_id(exec_id), mode="resume", background=True, store=self._store
        )
        return FlowHandle(run.exec_id, run=run, store=self._store)

    def retry(self, exec_id: str) -> FlowHandle:
        """Continue a failed execution; its failed calls run again."""
        run = resume_execution(
            self.resolve_id(exec_id), mode="retry", background=True, store=self._store
        )
        return FlowHandle(run.exec_id, run=run, store=self._store)


class KitaruClient:
    """Entry point for managing executions: ``KitaruClient().executions.get(id)``."""

    def __init__(self, store: str | None = None):
        self._store = open_store(store)
        self.executions = ExecutionsClient(self._store)
