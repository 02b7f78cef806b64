"""What the client returns: executions, their calls, waits, logs and artifacts, as read."""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

import msgspec

from kitaru.errors import KitaruStateError
from kitaru.journal.conversation import load_prompt
from kitaru.journal.events import ErrorInfo, LlmCallRecorded, ValueRef
from kitaru.journal.store import ExecutionRow, Store
from kitaru.redaction import redact_shown
from kitaru.replay.state import CallRecord, ExecutionState
from kitaru.run_config import FrozenExecutionSpec
from kitaru.runtime.values import decode_value

__all__ = [
    "ArtifactRef",
    "CheckpointAttempt",
    "CheckpointCall",
    "Execution",
    "FailureInfo",
    "LlmCall",
    "LogLine",
    "PendingWait",
    "artifacts_of",
    "execution_from_state",
    "log_lines",
    "unreadable_execution",
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
        # Blanked again as shown: the journal may predate the key being known as secret.
        message, traceback = redact_shown(error.message), redact_shown(error.traceback)
        return cls(error.type, message, traceback, origin, call)


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
    provider_attempt: int = 1
    """Which request to the provider within the call this is (1, 2, ...)."""
    failure: FailureInfo | None = None
    """Why this request failed; None when it was answered (its response is then empty)."""
    reached_provider: bool = True
    """False when the failed request provably never left, so it cannot have been billed."""
    timeout: float | None = None
    """Seconds the request was given (None in journals written before it was recorded)."""

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
    reused_from: str | None = None
    """A replay copied this call's output from that execution."""
    cached_from: str | None = None
    """Checkpoint caching reused this call's output from that execution."""
    overridden: bool = False
    """A replay override supplied this call's output."""


@dataclass(frozen=True)
class PendingWait:
    """A ``kitaru.wait()`` the execution is paused at."""

    wait_id: str
    name: str
    question: str | None
    schema: dict[str, Any] | None
    """JSON schema of the expected input (None: a plain continue gate)."""
    schema_type: str | None
    metadata: dict[str, Any] | None
    entered_waiting_at: dt.datetime | None
    input_received: bool
    """Input was given, but no process is running the execution: ``resume`` goes on."""


@dataclass(frozen=True)
class LogLine:
    """One line printed or logged inside a checkpoint attempt."""

    timestamp: dt.datetime
    level: str
    source: str
    message: str
    checkpoint: str
    attempt: int


@dataclass(frozen=True)
class ArtifactRef:
    """A named value recorded by an execution; ``.load()`` gives the value."""

    artifact_id: str
    exec_id: str
    name: str
    kind: str
    """prompt, response, context, input, output or blob."""
    origin: str
    """``saved`` (kitaru.save), ``checkpoint_output`` or ``llm``."""
    producing_call: str | None
    attempt: int | None
    tags: tuple[str, ...]
    _load: Any = field(repr=False, compare=False)

    def load(self) -> Any:
        return self._load()


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
    pending_wait: PendingWait | None = None
    pending_waits: list[PendingWait] = field(default_factory=list)
    frozen_execution_spec: FrozenExecutionSpec | None = None
    """The run configuration resolved when it started; None for older journals."""
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
        provider_attempt=event.provider_attempt,
        failure=None if event.error is None else FailureInfo.from_error(event.error),
        reached_provider=event.reached_provider,
        timeout=event.timeout,
    )


def _attempt_status(record: CallRecord, attempt: int, status: str, live: bool) -> str:
    """A started attempt that never ended, and never will, was interrupted."""
    if status == "running" and (attempt < record.last_attempt or not live):
        return "interrupted"
    return status


def _call(record: CallRecord, store: Store, live: bool) -> CheckpointCall:
    """``live``: a process is (or may be) still running the execution."""
    status = record.status
    if status == "running" and not live:
        status = "interrupted"
    return CheckpointCall(
        call_id=record.call_id,
        name=record.name,
        invocation_id=record.identity,
        kind=record.kind,
        status=status,
        position=record.position,
        checkpoint_type=record.checkpoint_type,
        started_at=_time(record.started_at),
        ended_at=_time(record.ended_at),
        attempts=[
            CheckpointAttempt(
                attempt=a.attempt,
                status=_attempt_status(record, a.attempt, a.status, live),
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
        reused_from=record.reused_from,
        cached_from=record.cached_from,
        overridden=record.overridden,
    )


def _pending_waits(state: ExecutionState, store: Store) -> list[PendingWait]:
    if not state.pending_waits:
        return []
    posted = store.wait_inputs(state.exec_id)
    return [
        PendingWait(
            wait_id=request.call_id,
            name=request.identity,
            question=request.question,
            schema=request.schema,
            schema_type=request.schema_type,
            metadata=request.metadata,
            entered_waiting_at=_time(state.calls[identity].started_at),
            input_received=identity in posted,
        )
        for identity, request in state.pending_waits.items()
    ]


def log_lines(state: ExecutionState, checkpoint: str | None = None) -> list[LogLine]:
    """Every captured line, in time order; ``checkpoint`` filters by name or identity."""
    lines = [
        LogLine(
            timestamp=dt.datetime.fromtimestamp(entry.at, dt.UTC),
            level=entry.level,
            source=entry.source,
            message=redact_shown(entry.message),
            checkpoint=call.identity,
            attempt=captured.attempt,
        )
        for call in state.calls.values()
        if checkpoint is None or checkpoint in (call.identity, call.name)
        for captured in call.logs
        for entry in captured.entries
    ]
    lines.sort(key=lambda line: line.timestamp)
    return lines


def _value_loader(store: Store, ref: ValueRef) -> Any:
    def load() -> Any:
        data = ref.inline if ref.inline is not None else store.read_payload(ref.hash or "")
        return decode_value(data)

    return load


def artifacts_of(state: ExecutionState, store: Store) -> list[ArtifactRef]:
    """Saved artifacts, checkpoint outputs and llm prompts/responses of an execution."""
    refs: list[ArtifactRef] = []
    exec_id = state.exec_id
    for seq, saved in state.artifacts:
        refs.append(
            ArtifactRef(
                artifact_id=f"{exec_id}:{seq}",
                exec_id=exec_id,
                name=saved.name,
                kind=saved.kind,
                origin="saved",
                producing_call=saved.call,
                attempt=saved.attempt,
                tags=saved.tags,
                _load=_value_loader(store, saved.value),
            )
        )
    for _, call in sorted(state.by_position.items()):
        if call.kind in ("checkpoint", "llm") and call.status == "completed" and call.output:
            refs.append(
                ArtifactRef(
                    artifact_id=f"{exec_id}:output:{call.identity}",
                    exec_id=exec_id,
                    name=call.identity,
                    kind="output",
                    origin="checkpoint_output",
                    producing_call=call.identity,
                    attempt=call.last_attempt,
                    tags=(),
                    _load=_value_loader(store, call.output),
                )
            )
    for event in state.llm_calls:
        if event.error is not None:
            continue  # a failed request has no response; its prompt is the answered one's
        base = event.name if event.parent is None else f"{event.parent}.{event.name}"
        loaders = {
            "prompt": functools.partial(load_prompt, event.prompt, store.read_payload),
            "response": _value_loader(store, event.response),
        }
        for kind, loader in loaders.items():
            refs.append(
                ArtifactRef(
                    artifact_id=f"{exec_id}:llm:{base}:{event.attempt}:{kind}",
                    exec_id=exec_id,
                    name=f"{base}.{kind}",
                    kind=kind,
                    origin="llm",
                    producing_call=event.parent or event.name,
                    attempt=event.attempt,
                    tags=(),
                    _load=loader,
                )
            )
    return refs


def unreadable_execution(row: ExecutionRow, error: Exception) -> Execution:
    """What the read model knows of an execution whose events cannot be read."""
    return Execution(
        exec_id=row.exec_id,
        flow_name=row.flow_name,
        status=row.status,
        started_at=_time(row.started_at),
        ended_at=_time(row.ended_at),
        failure=FailureInfo("JournalUnreadable", str(error), origin="backend"),
        original_exec_id=row.original_exec_id,
        interrupted=False,
        flow_module="",
        flow_qualname="",
        checkpoints=[],
        llm_calls=[],
        metadata={},
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
    waits = _pending_waits(state, store)
    interrupted = False
    if state.status == "running":
        interrupted = store.live_lease(state.exec_id) is None
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
        checkpoints=[
            _call(c, store, live=state.status == "running" and not interrupted)
            for _, c in sorted(state.by_position.items())
        ],
        llm_calls=[_llm_call(e, store) for e in state.llm_calls],
        metadata=dict(state.metadata),
        pending_wait=waits[0] if waits else None,
        pending_waits=waits,
        frozen_execution_spec=(
            FrozenExecutionSpec.from_event(state.started.spec) if state.started.spec else None
        ),
        _result=state.result,
        _store=store,
    )
