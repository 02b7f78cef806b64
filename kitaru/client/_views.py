"""What the client returns: executions, their calls, waits, logs and artifacts, as read."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import itertools
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

import msgspec

from kitaru._redaction import redact_shown
from kitaru._run_config import FrozenExecutionSpec
from kitaru.client._call_pages import CallSnapshot, original_call_ids
from kitaru.errors import FailureOrigin, KitaruError, KitaruStateError
from kitaru.journal.conversation import load_prompt
from kitaru.journal.events import CallKind, ErrorInfo, LlmCallRecorded, ValueRef
from kitaru.journal.read_model import ExecutionStatus
from kitaru.journal.store import CallPage, ExecutionRow, Store, StoredEvent, WorkQueue
from kitaru.replay.state import SUMMARY_EVENTS, CallRecord, ExecutionState, fold
from kitaru.runtime.failures import failure_origin
from kitaru.runtime.values import decode_value

if TYPE_CHECKING:
    from kitaru.client import ExecutionsClient
    from kitaru.runtime.runner import Run

__all__ = [
    "ArtifactRef",
    "CheckpointAttempt",
    "CheckpointCall",
    "CostTotal",
    "Execution",
    "ExecutionStatus",
    "FailureInfo",
    "LlmCall",
    "LogEntry",
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
    origin: FailureOrigin = FailureOrigin.USER_CODE
    """Where the failure came from: the user's code, kitaru, the backend, or divergence."""
    call: str | None = None

    @classmethod
    def from_error(
        cls, error: ErrorInfo, *, divergence: bool = False, call: str | None = None
    ) -> FailureInfo:
        # Blanked again as shown: the journal may predate the key being known as secret.
        message, traceback = redact_shown(error.message), redact_shown(error.traceback)
        origin = failure_origin(error.type, divergence=divergence)
        return cls(error.type, message, traceback, origin, call)


@dataclass(frozen=True)
class CheckpointAttempt:
    """One attempt of a durable call (a retried checkpoint has several)."""

    attempt: int
    status: ExecutionStatus
    started_at: dt.datetime | None
    ended_at: dt.datetime | None
    duration_ms: float | None
    failure: FailureInfo | None
    attempt_id: str = ""
    """``<call_id>:<attempt>``: names this attempt across executions."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """What the journal holds about this attempt alone: ``duration_ms``, and
    ``llm_usage`` (calls and token counts) when it called a model."""


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
    estimated_cost: float | None = None
    """Estimated cost of the request in US dollars; None when unknown."""
    cost_source: str | None = None
    """The price table the estimate came from."""
    cost_reused: bool = False
    """Copied by a replay from the execution it replays, which paid for it: not in totals."""

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
class CostTotal:
    """The estimated cost of a set of model requests, in US dollars."""

    estimated_usd: float | None
    """Sum of the known estimates of the requests made (not reused); None when no
    request made has a known cost."""
    unpriced_requests: int
    """Requests made whose cost is unknown: ``estimated_usd`` leaves them out."""
    reused_usd: float
    """What the requests a replay reused cost the execution that made them."""

    @classmethod
    def of(cls, calls: Iterable[LlmCall]) -> CostTotal:
        made: list[float] = []
        unpriced, reused = 0, 0.0
        for call in calls:
            if call.cost_reused:
                reused += call.estimated_cost or 0.0
            elif call.estimated_cost is None:
                unpriced += 1
            else:
                made.append(call.estimated_cost)
        return cls(sum(made) if made else None, unpriced, reused)

    def to_dict(self) -> dict[str, Any]:
        return {
            "estimated_usd": self.estimated_usd,
            "unpriced_requests": self.unpriced_requests,
            "reused_usd": self.reused_usd,
        }


@dataclass(frozen=True)
class CallArgument:
    """One argument of a durable call as the journal recorded it: its name and a short
    preview (a repr cut to length; never the whole value)."""

    name: str
    preview: str
    type_name: str | None = None
    """The type of an argument that could not be encoded (its preview is then empty)."""


@dataclass(frozen=True)
class CheckpointCall:
    """One durable call of the flow body (a checkpoint, a flow-body llm call, a wait)."""

    call_id: str
    name: str
    invocation_id: str
    """The call identity: ``id=`` or the automatic ``name``, ``name_2``, ..."""
    kind: str
    status: ExecutionStatus
    position: int
    checkpoint_type: str | None
    started_at: dt.datetime | None
    ended_at: dt.datetime | None
    attempts: list[CheckpointAttempt]
    failure: FailureInfo | None
    parent_call_ids: tuple[str, ...]
    """Call ids of the calls whose outputs were passed into this one (as Kitaru's)."""
    metadata: dict[str, Any]
    llm_calls: list[LlmCall]
    reused_from: str | None = None
    """A replay copied this call's output from that execution."""
    cached_from: str | None = None
    """Checkpoint caching reused this call's output from that execution."""
    overridden: bool = False
    """A replay override supplied this call's output."""
    artifacts: list[ArtifactRef] = field(default_factory=list)
    """The call's output first (when it completed), then what it saved, then its
    model calls' prompts and responses."""
    original_call_id: str | None = None
    """The call (in ``reused_from`` or ``cached_from``) whose output this call reused."""
    parent_identities: tuple[str, ...] = ()
    """Identities (``name``, ``name_2``, ...) of the calls whose outputs were passed in."""
    arguments: tuple[CallArgument, ...] = ()
    """The arguments of its latest attempt, in order (empty in journals written before
    they were recorded)."""


@dataclass(frozen=True)
class PendingWait:
    """A ``kitaru.wait()`` the execution is paused at."""

    wait_id: str
    name: str
    question: str | None
    schema: dict[str, Any] | None
    """JSON schema of the expected input (None: a plain continue gate)."""
    schema_type: str | None
    metadata: dict[str, Any]
    """What ``kitaru.wait(metadata=...)`` attached; ``{}`` when nothing was."""
    entered_waiting_at: dt.datetime | None
    input_received: bool
    """Input was given, but no process is running the execution: ``resume`` goes on."""


@dataclass(frozen=True)
class LogEntry:
    """One line printed or logged inside a checkpoint attempt."""

    message: str
    level: str
    timestamp: dt.datetime
    source: str
    """``stdout``, ``stderr`` or the name of the logger that emitted it."""
    checkpoint_name: str
    """The checkpoint's name (shared by every call of it)."""
    checkpoint: str
    """The call identity: ``name``, ``name_2``, ..."""
    attempt: int
    module: str | None = None
    """The logger's name for logged records (None for prints)."""
    filename: str | None = None
    """Not recorded by this journal: always None."""
    lineno: int | None = None
    """Not recorded by this journal: always None."""


LogLine = LogEntry
"""The name this class had before it took Kitaru's ``LogEntry`` fields."""


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
    """Identity of the call that produced it."""
    attempt: int | None
    tags: tuple[str, ...]
    _load: Any = field(repr=False, compare=False)
    save_type: str = "manual"
    """``step_output`` for a call's output, ``manual`` for what was saved explicitly
    (``kitaru.save()``, and the prompts and responses of model calls)."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """``kitaru_artifact_type`` (the kind), ``origin``, ``attempt`` and ``tags``."""
    _producing_name: str | None = field(default=None, repr=False, compare=False)

    def load(self) -> Any:
        """Load the value."""
        return self._load()


@dataclass(frozen=True)
class Execution:
    """An execution as the journal records it.

    Built from a summary of the journal; ``checkpoints``, ``llm_calls`` and
    ``artifacts`` are read on first access, and every recorded value when loaded.
    """

    exec_id: str
    flow_name: str
    status: ExecutionStatus
    started_at: dt.datetime | None
    ended_at: dt.datetime | None
    failure: FailureInfo | None
    original_exec_id: str | None
    interrupted: bool
    """Marked running, but the process that ran it is gone: `resume` continues it."""
    flow_module: str
    flow_qualname: str
    metadata: dict[str, Any]
    pending_wait: PendingWait | None = None
    pending_waits: list[PendingWait] = field(default_factory=list)
    frozen_execution_spec: FrozenExecutionSpec | None = None
    """The run configuration resolved when it started; None for older journals."""
    _result: ValueRef | None = field(default=None, repr=False)
    _store: Store | None = field(default=None, repr=False, compare=False)
    flow_id: str = ""
    """Where the flow function lives: ``module:QualName``."""
    stack_name: str | None = None
    """The stack the execution ran on."""
    status_reason: str | None = None
    """Why the execution is in its status, when that needs saying (failed, cancelled,
    waiting, interrupted); None otherwise."""
    _run: Run | None = field(default=None, repr=False, compare=False)
    """The run this process started for it (resume, retry, replay), to wait on."""
    _calls: _CallViews | None = field(default=None, repr=False, compare=False)

    @property
    def checkpoints(self) -> list[CheckpointCall]:
        """The durable calls, in order (read from the journal on first access)."""
        return self._calls.checkpoints if self._calls is not None else []

    @property
    def call_count(self) -> int:
        """How many durable calls it has, without building a view of each."""
        return self._calls.count if self._calls is not None else 0

    def checkpoints_between(self, start: int, stop: int) -> list[CheckpointCall]:
        """``checkpoints[start:stop]``, building views of those calls only: one page
        of an execution with 10,000 calls costs a page, not the whole list."""
        return self._calls.between(start, stop) if self._calls is not None else []

    def find_checkpoint(self, identity: str) -> CheckpointCall | None:
        """The call with this identity or call id, or None (builds that one view)."""
        return self._calls.find(identity) if self._calls is not None else None

    def call_logs(self, identity: str) -> list[LogEntry]:
        """The lines captured in the call with this identity, in time order (reads that
        call's events only, unless the whole journal is read already)."""
        return self._calls.logs_of(identity) if self._calls is not None else []

    @property
    def last_call_ended_at(self) -> dt.datetime | None:
        """When the call that ended last ended; None if none has."""
        return self._calls.last_ended_at if self._calls is not None else None

    @property
    def saved_artifacts(self) -> list[ArtifactRef]:
        """What ``kitaru.save()`` saved, without views of every call's output."""
        return self._calls.saved_artifacts if self._calls is not None else []

    @property
    def llm_calls(self) -> list[LlmCall]:
        """Every recorded ``kitaru.llm()`` request (read on first access)."""
        return self._calls.llm_calls if self._calls is not None else []

    @property
    def cost(self) -> CostTotal:
        """What its model requests are estimated to have cost (see ``CostTotal``)."""
        return CostTotal.of(self.llm_calls)

    @property
    def artifacts(self) -> list[ArtifactRef]:
        """Saved artifacts, call outputs, and model prompts and responses."""
        return self._calls.artifacts if self._calls is not None else []

    @property
    def has_result(self) -> bool:
        return self._result is not None

    def refresh(self) -> Execution:
        """The execution as the journal holds it now (a new snapshot)."""
        return self._client().get(self.exec_id)

    def retry(self, *, background: bool | None = None) -> Execution:
        """Retry this failed execution in this process (``client.executions.retry``)."""
        return self._client().retry(self.exec_id, background=background)

    def resume(self, *, background: bool | None = None) -> Execution:
        """Resume this interrupted or answered execution (``client.executions.resume``)."""
        return self._client().resume(self.exec_id, background=background)

    def cancel(self) -> Execution:
        """Cancel this execution (``client.executions.cancel``)."""
        return self._client().cancel(self.exec_id)

    def replay(
        self,
        *,
        from_: str,
        overrides: dict[str, Any] | None = None,
        background: bool | None = None,
        **flow_inputs: Any,
    ) -> Execution:
        """Start a new execution from this one (``client.executions.replay``)."""
        return self._client().replay(
            self.exec_id, from_=from_, overrides=overrides, background=background, **flow_inputs
        )

    def list_checkpoints(self) -> list[CheckpointCall]:
        """The execution's durable calls, in order."""
        return list(self.checkpoints)

    def list_artifacts(self) -> list[ArtifactRef]:
        """The execution's artifacts (as ``client.artifacts.list`` gives them)."""
        return list(self.artifacts)

    def wait(self, timeout: float | None = None) -> Any:
        """Block until the execution ends; return its result or raise its error.

        Like ``FlowHandle.wait``: ``KitaruTimeoutError`` after ``timeout`` seconds (the
        execution goes on), ``KitaruStateError`` if it pauses waiting for input.
        """
        from kitaru._flow_handle import FlowHandle

        return FlowHandle(self.exec_id, run=self._run, store=self._store).wait(timeout)

    def _client(self) -> ExecutionsClient:
        from kitaru._stores import open_store
        from kitaru.client import ExecutionsClient

        return ExecutionsClient(self._store if self._store is not None else open_store())

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

    def to_dict(self, *, payloads: bool = True) -> dict[str, Any]:
        """A JSON-ready description (what ``kitaru executions get -o json`` prints).

        ``payloads=False`` (``executions list``) reads no stored payload: model calls
        come without their prompt and response, and a result too large to be recorded
        inline is left out (``result_omitted``); ``get`` shows it.
        """
        data: dict[str, Any] = _jsonable(self, payloads)
        data["checkpoints"] = _jsonable(self.checkpoints, payloads)
        data["llm_calls"] = _jsonable(self.llm_calls, payloads)
        data["cost"] = self.cost.to_dict()
        data["artifacts"] = _jsonable(self.artifacts, payloads)
        ref = self._result
        if ref is not None and (payloads or ref.inline is not None):
            try:
                data["result"] = msgspec.to_builtins(self.result(), builtin_types=(), str_keys=True)
            except Exception as exc:
                data["result"] = None
                data["result_error"] = f"{type(exc).__name__}: {exc}"
        elif ref is not None:
            data["result_omitted"] = True
        return data


def _plain(value: Any) -> Any:
    """Enums, msgspec Structs and pydantic models (a frozen run spec) as builtins."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, msgspec.Struct):
        return msgspec.to_builtins(value, builtin_types=(dt.datetime,))
    if hasattr(value, "model_dump") and not isinstance(value, type):
        return value.model_dump(mode="json")
    return value


def _public_fields(cls: type) -> tuple[str, ...] | None:
    """The public field names of a dataclass type, looked up once per type; None for
    anything else (a listing walks tens of thousands of view objects)."""
    try:
        return _PUBLIC_FIELDS[cls]
    except KeyError:
        pass
    names = (
        tuple(f.name for f in fields(cls) if not f.name.startswith("_"))
        if is_dataclass(cls)
        else None
    )
    _PUBLIC_FIELDS[cls] = names
    return names


_PUBLIC_FIELDS: dict[type, tuple[str, ...] | None] = {}
_SCALARS = frozenset({str, int, float, bool, type(None)})
"""Exactly these types (not subclasses such as enums) are already JSON-ready."""


def _jsonable(value: Any, payloads: bool = True) -> Any:
    cls = type(value)
    if cls in _SCALARS:
        return value
    # The types a view is made of, by exact type first, and their scalar parts without
    # a call: a listing converts hundreds of thousands of values, and ``_plain``'s
    # checks leave every one of these as it is.
    if cls is list or cls is tuple:
        return [v if type(v) in _SCALARS else _jsonable(v, payloads) for v in value]
    if cls is dict:
        return {
            str(k): v if type(v) in _SCALARS else _jsonable(v, payloads) for k, v in value.items()
        }
    if cls is dt.datetime:
        return value.isoformat()
    return _jsonable_object(value, payloads)


def _jsonable_object(value: Any, payloads: bool) -> Any:
    """A view dataclass by its public fields; anything else made plain first."""
    names = _public_fields(type(value))
    if names is None:
        value = _plain(value)
        names = _public_fields(type(value))
    if names is not None:
        data = {}
        for name in names:
            field_value = getattr(value, name)
            data[name] = (
                field_value if type(field_value) in _SCALARS else _jsonable(field_value, payloads)
            )
        if isinstance(value, LlmCall) and payloads:
            try:
                data["prompt"], data["response"] = value.prompt(), value.response()
            except Exception as exc:
                data["artifact_error"] = f"{type(exc).__name__}: {exc}"
        return data
    if isinstance(value, dict):
        return {str(k): _jsonable(v, payloads) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v, payloads) for v in value]
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
        estimated_cost=event.estimated_cost,
        cost_source=event.cost_source,
        cost_reused=event.cost_reused,
    )


def _attempt_status(
    record: CallRecord, attempt: int, status: ExecutionStatus, live: bool
) -> ExecutionStatus:
    """A started attempt that never ended, and never will, was interrupted."""
    if status is ExecutionStatus.RUNNING and (attempt < record.last_attempt or not live):
        return ExecutionStatus.INTERRUPTED
    return status


def _attempt_metadata(
    record: CallRecord, attempt: int, duration_ms: float | None
) -> dict[str, Any]:
    """What the journal knows of one attempt alone: its duration and its model usage."""
    data: dict[str, Any] = {}
    if duration_ms is not None:
        data["duration_ms"] = duration_ms
    llm_calls = [e for e in record.llm_calls if e.attempt == attempt and e.error is None]
    if llm_calls:
        data["llm_usage"] = {
            "calls": len(llm_calls),
            "input_tokens": sum(e.usage.input_tokens or 0 for e in llm_calls),
            "output_tokens": sum(e.usage.output_tokens or 0 for e in llm_calls),
            "total_tokens": sum(e.usage.total_tokens or 0 for e in llm_calls),
        }
    return data


def _call(
    record: CallRecord,
    store: Store,
    live: bool,
    artifacts: list[ArtifactRef],
    original_call_id: str | None,
    *,
    call_ids: dict[str, str],
) -> CheckpointCall:
    """``live``: a process is (or may be) still running the execution; ``call_ids`` maps
    the execution's call identities to their call ids."""
    status = record.status
    if status is ExecutionStatus.RUNNING and not live:
        status = ExecutionStatus.INTERRUPTED
    started_at, ended_at = _time(record.started_at), _time(record.ended_at)
    # A call's times are its first attempt's start and its last attempt's end: the
    # same datetimes serve both (a view of 10,000 calls converts 20,000, not 40,000).
    attempts = record.attempts
    if len(attempts) > 1:
        attempts = sorted(attempts, key=lambda a: a.attempt)
    return CheckpointCall(
        call_id=record.call_id,
        name=record.name,
        invocation_id=record.identity,
        kind=record.kind,
        status=status,
        position=record.position,
        checkpoint_type=record.checkpoint_type,
        started_at=started_at,
        ended_at=ended_at,
        attempts=[
            CheckpointAttempt(
                attempt=a.attempt,
                status=_attempt_status(record, a.attempt, a.status, live),
                started_at=started_at if a.started_at == record.started_at else _time(a.started_at),
                ended_at=ended_at if a.ended_at == record.ended_at else _time(a.ended_at),
                duration_ms=a.duration_ms,
                failure=FailureInfo.from_error(a.error, call=record.identity) if a.error else None,
                attempt_id=f"{record.call_id}:{a.attempt}",
                metadata=_attempt_metadata(record, a.attempt, a.duration_ms),
            )
            for a in attempts
        ],
        failure=FailureInfo.from_error(record.error, call=record.identity)
        if record.error
        else None,
        parent_call_ids=tuple(call_ids.get(parent, parent) for parent in record.inputs_from),
        parent_identities=record.inputs_from,
        arguments=tuple(
            CallArgument(a.name, a.preview, a.type_name) for a in record.arguments or ()
        ),
        metadata=dict(record.metadata),
        llm_calls=[_llm_call(e, store) for e in record.llm_calls],
        reused_from=record.reused_from,
        cached_from=record.cached_from,
        overridden=record.overridden,
        artifacts=artifacts,
        original_call_id=original_call_id,
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
            metadata=dict(request.metadata or {}),
            entered_waiting_at=_time(state.calls[identity].started_at),
            input_received=identity in posted,
        )
        for identity, request in state.pending_waits.items()
    ]


def _is_stream(source: str) -> bool:
    return source in ("stdout", "stderr")


def log_lines(state: ExecutionState, checkpoint: str | None = None) -> list[LogEntry]:
    """Every captured line, in time order; ``checkpoint`` filters by name or identity."""
    lines = [
        LogEntry(
            message=redact_shown(entry.message),
            level=entry.level,
            timestamp=dt.datetime.fromtimestamp(entry.at, dt.UTC),
            source=entry.source,
            checkpoint_name=call.name,
            checkpoint=call.identity,
            attempt=captured.attempt,
            module=None if _is_stream(entry.source) else entry.source,
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


def _artifact(  # noqa: PLR0917  (one constructor for the three origins below)
    exec_id: str,
    artifact_id: str,
    name: str,
    kind: str,
    origin: str,
    producing_call: str | None,
    producing_name: str | None,
    attempt: int | None,
    tags: tuple[str, ...],
    loader: Any,
) -> ArtifactRef:
    return ArtifactRef(
        artifact_id=artifact_id,
        exec_id=exec_id,
        name=name,
        kind=kind,
        origin=origin,
        producing_call=producing_call,
        attempt=attempt,
        tags=tags,
        _load=loader,
        save_type="step_output" if origin == "checkpoint_output" else "manual",
        metadata={
            "kitaru_artifact_type": kind,
            "origin": origin,
            "attempt": attempt,
            "tags": list(tags),
        },
        _producing_name=producing_name,
    )


def artifacts_of(
    state: ExecutionState,
    store: Store,
    calls: Collection[str] | None = None,
    *,
    saved_only: bool = False,
) -> list[ArtifactRef]:
    """Saved artifacts, checkpoint outputs and llm prompts/responses of an execution.

    ``calls`` keeps those of the calls with these identities; ``saved_only`` keeps the
    saved ones (the others are one per call, and so many in a large execution).
    """
    refs: list[ArtifactRef] = []
    exec_id = state.exec_id

    def wanted(identity: str | None) -> bool:
        return calls is None or identity in calls

    def name_of(identity: str | None) -> str | None:
        call = state.calls.get(identity or "")
        return call.name if call is not None else identity

    for seq, saved in state.artifacts:
        if not wanted(saved.call):
            continue
        refs.append(
            _artifact(
                exec_id,
                f"{exec_id}:{seq}",
                saved.name,
                saved.kind,
                "saved",
                saved.call,
                name_of(saved.call),
                saved.attempt,
                saved.tags,
                _value_loader(store, saved.value),
            )
        )
    if saved_only:
        return refs
    ordered = sorted(state.by_position.items())
    if calls is not None:
        ordered = sorted(
            (state.calls[i].position, state.calls[i]) for i in calls if i in state.calls
        )
    for _, call in ordered:
        if (
            call.kind in (CallKind.CHECKPOINT, CallKind.LLM)
            and call.status is ExecutionStatus.COMPLETED
            and call.output
        ):
            refs.append(
                _artifact(
                    exec_id,
                    f"{exec_id}:output:{call.identity}",
                    call.identity,
                    "output",
                    "checkpoint_output",
                    call.identity,
                    call.name,
                    call.last_attempt,
                    (),
                    _value_loader(store, call.output),
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
        producer = event.parent or event.name
        if not wanted(producer):
            continue
        for kind, loader in loaders.items():
            refs.append(
                _artifact(
                    exec_id,
                    f"{exec_id}:llm:{base}:{event.attempt}:{kind}",
                    f"{base}.{kind}",
                    kind,
                    "llm",  # the artifact's origin, not a call kind
                    producer,
                    name_of(producer),
                    event.attempt,
                    (),
                    loader,
                )
            )
    return refs


def _artifacts_by_call(refs: list[ArtifactRef]) -> dict[str, list[ArtifactRef]]:
    """Each call's artifacts: its output first, then what it saved, then its llm records."""
    order = {"checkpoint_output": 0, "saved": 1, "llm": 2}
    grouped: dict[str, list[ArtifactRef]] = {}
    for ref in sorted(refs, key=lambda r: order.get(r.origin, 3)):
        if ref.producing_call is not None:
            grouped.setdefault(ref.producing_call, []).append(ref)
    return grouped


def _original_call_ids(
    state: ExecutionState, store: Store, calls: Collection[str] | None = None
) -> dict[str, str]:
    """For calls whose output was reused from another execution: that execution's call id.

    A replay keeps identities and positions; a cache hit keeps the identity, or at
    least the output, of the call it reused. ``calls`` keeps the calls with these
    identities.
    """
    from kitaru.runtime.loading import load_state

    found: dict[str, str] = {}
    sources: dict[str, ExecutionState | None] = {}
    records = (
        list(state.calls.values())
        if calls is None
        else [state.calls[i] for i in calls if i in state.calls]
    )
    for call in records:
        source_id = call.reused_from or call.cached_from
        if source_id is None:
            continue
        if source_id not in sources:
            sources[source_id] = None
            with contextlib.suppress(KitaruError):
                sources[source_id] = load_state(store, source_id)
        source = sources[source_id]
        if source is None:
            continue
        original = source.calls.get(call.identity)
        if original is None and call.reused_from is not None:
            original = source.by_position.get(call.position)
        if original is None and call.output is not None:
            original = next((c for c in source.calls.values() if c.output == call.output), None)
        if original is not None:
            found[call.identity] = original.call_id
    return found


def _status_reason(
    state: ExecutionState, failure: FailureInfo | None, interrupted: bool, *, queued: bool = False
) -> str | None:
    if failure is not None:
        where = f" in {failure.call}" if failure.call else ""
        return f"{failure.exception_type}{where}: {failure.message}"
    if state.status is ExecutionStatus.CANCELLED:
        return state.cancelled.reason if state.cancelled is not None else "cancelled"
    if state.status is ExecutionStatus.WAITING:
        return f"waiting for input at {', '.join(map(repr, state.pending_waits))}"
    if queued:
        return "queued: the next free `kitaru worker` on its queue takes it"
    if interrupted:
        return (
            "interrupted: no process is running it; continue it with "
            f"`kitaru executions resume {state.exec_id}`"
        )
    return None


def unreadable_execution(row: ExecutionRow, error: Exception) -> Execution:
    """What the read model knows of an execution whose events cannot be read."""
    failure = FailureInfo("JournalUnreadable", str(error), origin=FailureOrigin.BACKEND)
    return Execution(
        exec_id=row.exec_id,
        flow_name=row.flow_name,
        status=ExecutionStatus(row.status),
        started_at=_time(row.started_at),
        ended_at=_time(row.ended_at),
        failure=failure,
        original_exec_id=row.original_exec_id,
        interrupted=False,
        flow_module="",
        flow_qualname="",
        metadata={},
        status_reason=f"the journal cannot be read: {error}",
    )


class _CallViews:
    """An execution's calls, model calls and artifacts, built on first access.

    ``get`` reads a summary of the journal (a few events however many calls it
    holds); the calls are read when asked for, and then only up to the event the
    summary ended at, so the snapshot stays one point in time. A page of calls, one
    call, the call count, the last end and the saved artifacts come from the call index
    and the events of the calls concerned; the whole journal is folded only for the
    whole list. Values (outputs, prompts, responses) are loaded later still, by their
    own accessors.
    """

    def __init__(
        self,
        state: ExecutionState,
        store: Store,
        live: bool,
        events: Sequence[StoredEvent] | None = None,
    ):
        self._summary = state
        self._store = store
        self._live = live
        self._summary_events = events

    @functools.cached_property
    def state(self) -> ExecutionState:
        state = self._summary
        if state.complete:
            return state
        # Seqs run 1, 2, ... with no gap, so the snapshot's events are a prefix.
        events = self._store.stream_events(state.exec_id)
        try:
            return fold(state.exec_id, itertools.islice(events, state.last_seq))
        finally:
            events.close()

    @property
    def _folded(self) -> bool:
        """Whether the whole journal is folded already (then every view comes from it)."""
        return self._summary.complete or "state" in self.__dict__

    @functools.cached_property
    def _snapshot(self) -> CallSnapshot:
        events = self._summary_events
        if events is None:
            events = self._store.read_events(self._summary.exec_id, only=SUMMARY_EVENTS)
        return CallSnapshot(self._summary, self._store, events)

    @functools.cached_property
    def _page_facts(self) -> CallPage:
        summary = self._summary
        return self._store.call_page(
            summary.exec_id, through_seq=summary.last_seq, offset=0, limit=0
        )

    @functools.cached_property
    def artifacts(self) -> list[ArtifactRef]:
        return artifacts_of(self.state, self._store)

    @functools.cached_property
    def checkpoints(self) -> list[CheckpointCall]:
        state = self.state
        call_ids = {identity: c.call_id for identity, c in state.calls.items()}
        return self._views(state, self._ordered, self.artifacts, None, call_ids)

    @functools.cached_property
    def _ordered(self) -> list[CallRecord]:
        return [c for _, c in sorted(self.state.by_position.items())]

    def _views(
        self,
        state: ExecutionState,
        records: list[CallRecord],
        artifacts: list[ArtifactRef],
        only: Collection[str] | None,
        call_ids: dict[str, str],
    ) -> list[CheckpointCall]:
        store = self._store
        by_call = _artifacts_by_call(artifacts)
        if self._folded:
            originals = _original_call_ids(state, store, only)
        else:
            originals, rest = original_call_ids(store, records)
            if rest:
                others = {c.identity for c in rest}
                originals.update(_original_call_ids(state, store, others))
        return [
            _call(
                c,
                store,
                self._live,
                by_call.get(c.identity, []),
                originals.get(c.identity),
                call_ids=call_ids,
            )
            for c in records
        ]

    def _views_of(self, state: ExecutionState, records: list[CallRecord]) -> list[CheckpointCall]:
        """Views of some calls of ``state`` (a whole fold, or a selection holding them)."""
        only = {c.identity for c in records}
        if self._folded:
            call_ids = {identity: c.call_id for identity, c in state.calls.items()}
        else:
            parents = {p for c in records for p in c.inputs_from}
            call_ids = self._snapshot.call_ids(state, parents)
        return self._views(state, records, artifacts_of(state, self._store, only), only, call_ids)

    @property
    def count(self) -> int:
        if self._folded:
            return len(self.state.by_position)
        return self._page_facts.total

    def between(self, start: int, stop: int) -> list[CheckpointCall]:
        if "checkpoints" in self.__dict__:
            return self.checkpoints[start:stop]
        if self._folded:
            return self._views_of(self.state, self._ordered[start:stop])
        start, stop = max(start, 0), max(stop, 0)
        if stop <= start:
            return []
        summary = self._summary
        page = self._store.call_page(
            summary.exec_id, through_seq=summary.last_seq, offset=start, limit=stop - start
        )
        selection = self._snapshot.fold(page.rows)
        return self._views_of(selection, [selection.calls[row.identity] for row in page.rows])

    def _holding(self, identity: str) -> ExecutionState | None:
        """A state that holds the call as the whole fold does: the whole fold once made,
        else a selection of the call's events (None: the index has no such call)."""
        if self._folded:
            return self.state
        kept = self._selections.get(identity)
        if kept is None:
            rows = self._snapshot.rows([identity])
            if not rows:
                return None
            kept = self._selections[identity] = self._snapshot.fold(rows)
        return kept

    @functools.cached_property
    def _selections(self) -> dict[str, ExecutionState]:
        return {}

    def logs_of(self, identity: str) -> list[LogEntry]:
        state = self._holding(identity)
        if state is None or identity not in state.calls:
            return []
        return [line for line in log_lines(state, identity) if line.checkpoint == identity]

    def find(self, identity: str) -> CheckpointCall | None:
        if not self._folded:
            selection = self._holding(identity)
            if selection is not None:
                (view,) = self._views_of(selection, [selection.calls[identity]])
                return view
        # Not a call identity (perhaps a call id, which the index does not hold).
        state = self.state
        record = state.calls.get(identity)
        if record is None:
            record = next((c for c in state.calls.values() if c.call_id == identity), None)
        if record is None:
            return None
        (view,) = self._views_of(state, [record])
        return view

    @property
    def last_ended_at(self) -> dt.datetime | None:
        if not self._folded:
            return _time(self._page_facts.last_ended_at)
        ends = [c.ended_at for c in self.state.calls.values() if c.ended_at is not None]
        return _time(max(ends)) if ends else None

    @functools.cached_property
    def saved_artifacts(self) -> list[ArtifactRef]:
        if "artifacts" in self.__dict__:
            return [a for a in self.artifacts if a.origin == "saved"]
        state = self.state if self._folded else self._snapshot.saved()
        return artifacts_of(state, self._store, saved_only=True)

    @functools.cached_property
    def llm_calls(self) -> list[LlmCall]:
        return [_llm_call(e, self._store) for e in self.state.llm_calls]


def execution_from_state(
    state: ExecutionState, store: Store, events: Sequence[StoredEvent] | None = None
) -> Execution:
    """Build the public view of an execution from its folded journal (or a summary of it,
    with ``events``, the events the summary was folded from, when at hand).

    Reads no payload: the result, outputs, prompts and responses load on access.
    """
    assert state.started is not None
    started = state.started
    failure = None
    if state.failure is not None:
        failure = FailureInfo.from_error(
            state.failure.error, divergence=state.failure.divergence, call=state.failure.call
        )
    waits = _pending_waits(state, store)
    interrupted = queued = False
    if state.status is ExecutionStatus.RUNNING and store.live_lease(state.exec_id) is None:
        # Nobody runs it now: interrupted, unless it waits in the queue for a worker.
        queued = isinstance(store, WorkQueue) and store.will_run(state.exec_id)
        interrupted = not queued
    live = state.status is ExecutionStatus.RUNNING and not interrupted
    return Execution(
        exec_id=state.exec_id,
        flow_name=state.flow_name,
        status=state.status,
        started_at=_time(state.started_at),
        ended_at=_time(state.ended_at),
        failure=failure,
        original_exec_id=started.original_exec_id,
        interrupted=interrupted,
        flow_module=started.flow.module,
        flow_qualname=started.flow.qualname,
        metadata=dict(state.metadata),
        pending_wait=waits[0] if waits else None,
        pending_waits=waits,
        frozen_execution_spec=(
            FrozenExecutionSpec.from_event(state.started.spec) if state.started.spec else None
        ),
        _result=state.result,
        _store=store,
        flow_id=f"{started.flow.module}:{started.flow.qualname}",
        # Journals written before run settings were recorded ran on the local stack.
        stack_name=started.spec.stack if started.spec is not None else "local",
        status_reason=_status_reason(state, failure, interrupted, queued=queued),
        _calls=_CallViews(state, store, live, events),
    )
