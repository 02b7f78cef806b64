"""The events an execution's journal is made of.

Each event is a frozen, tagged msgspec Struct. The tag is stored beside the encoded
body, so a reader knows the type before it decodes anything.

Schema evolution rules (old journals must stay readable, see tests/golden):
- a new field needs a default, and is appended after existing fields;
- a field is never retyped, renamed or removed;
- a new event type gets a new tag; a reader that meets a tag it does not know
  reports it (``UnknownEventError``) instead of guessing.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from enum import StrEnum
from typing import Any, Final

import msgspec

__all__ = [
    "CALL_KINDS",
    "EVENT_TYPES",
    "ArgumentDigest",
    "ArtifactSaved",
    "CallCompleted",
    "CallFailed",
    "CallKind",
    "CallStarted",
    "CallStartedAndCompleted",
    "ErrorInfo",
    "Event",
    "ExecutionCancelled",
    "ExecutionCompleted",
    "ExecutionFailed",
    "ExecutionResumed",
    "ExecutionSpec",
    "ExecutionStarted",
    "FlowRef",
    "LlmCallRecorded",
    "LlmToolCall",
    "LlmUsage",
    "LogEntry",
    "LogsCaptured",
    "MetadataLogged",
    "ReplayPlan",
    "UnknownEventError",
    "ValueRef",
    "WaitRequested",
    "WaitResolved",
    "decode_event",
    "decode_events",
    "encode_event",
    "event_tag",
    "journal_text",
    "pair_starts",
]


class CallKind(StrEnum):
    """What a durable call of the flow body is; compares equal to its text."""

    CHECKPOINT = "checkpoint"
    LLM = "llm"
    WAIT = "wait"
    MEMORY = "memory"


CALL_KINDS: Final = tuple(CallKind)


class ValueRef(msgspec.Struct, frozen=True, array_like=True, omit_defaults=True, gc=False):
    """An encoded value: inline bytes, or the content hash of a stored payload."""

    inline: bytes | None = None
    hash: str | None = None


class ArgumentDigest(msgspec.Struct, frozen=True, array_like=True, omit_defaults=True, gc=False):
    """One argument of a durable call, as recorded to check a later call against it.

    ``digest`` covers the argument's encoded bytes (or, for an output handle, the
    identity of the call that produced it). An argument that cannot be encoded has no
    digest; ``type_name`` names its type instead. ``preview`` is a short repr for messages.
    """

    name: str
    digest: str | None = None
    preview: str = ""
    type_name: str | None = None


class FlowRef(msgspec.Struct, frozen=True, omit_defaults=True):
    """Where a flow function lives, so another process can import it again."""

    module: str
    qualname: str
    file: str | None = None
    """Source file, needed when the flow was defined in a script run as ``__main__``."""
    sys_path: str | None = None
    """The directory the defining program ran from (its ``sys.path[0]``)."""


class ErrorInfo(msgspec.Struct, frozen=True, omit_defaults=True):
    """A recorded exception: enough to re-raise it faithfully on replay."""

    type: str
    """``module.QualName`` of the exception class."""
    message: str
    traceback: str = ""
    args: ValueRef | None = None
    """The exception's ``args``, when they could be encoded."""


class LlmUsage(msgspec.Struct, frozen=True):
    """Token counts as the provider reported them (None when it did not)."""

    input_tokens: int | None
    output_tokens: int | None
    total_tokens: int | None


class LlmToolCall(msgspec.Struct, frozen=True, array_like=True):
    """A tool call a model asked for, as recorded."""

    id: str
    name: str
    arguments: str
    """The arguments as JSON text."""


class ReplayPlan(msgspec.Struct, frozen=True, omit_defaults=True):
    """How a replay execution reuses the execution it was made from."""

    source: str
    """The execution replayed."""
    from_position: int
    """Calls before this position are reused from the source; it and later ones run live."""
    from_selector: str
    overrides: dict[str, ValueRef] = {}
    """Call identity -> output that replaces the recorded one."""


class ExecutionSpec(msgspec.Struct, frozen=True, omit_defaults=True):
    """The run configuration an execution resolved when it started (its frozen spec)."""

    stack: str
    """Name of the stack the execution was started on."""
    store: str
    """Location of that stack's journal store."""
    runner: str = "in-process"
    cache: bool = False
    retries: int = 0
    image: dict[str, Any] | None = None
    """The ``ImageSettings`` fields that were set; recorded, not built."""
    flow_defaults: dict[str, Any] = {}
    """What ``@flow(...)`` itself set (stack, image, cache, retries)."""
    version: int = 1


class _Event(msgspec.Struct, frozen=True, tag_field="type", omit_defaults=True, gc=False):
    """Base of every event; subclasses pick their tag.

    Events are not tracked by the garbage collector (``gc=False``): they are frozen
    records of decoded data that never refer back to anything, and a resume decodes
    tens of thousands of them, which would otherwise set off collections that walk
    every one of them again.
    """


class ExecutionStarted(_Event, frozen=True, tag="execution_started"):
    flow_name: str
    flow: FlowRef
    inputs: ValueRef
    """Encoded ``(args, kwargs)`` of the flow call."""
    kitaru_version: str
    retries: int = 0
    original_exec_id: str | None = None
    """Set when this execution replays another one."""
    registry: dict[str, Any] | None = None
    """Snapshot of the effective model registry when the execution started."""
    replay_plan: ReplayPlan | None = None
    """For replays: which recorded calls are reused and which outputs are overridden."""
    spec: ExecutionSpec | None = None
    """The resolved run configuration; None in journals written before it was recorded."""


class ExecutionResumed(_Event, frozen=True, tag="execution_resumed"):
    """A process took over the execution; ``mode="retry"`` re-runs failed calls."""

    mode: str
    owner: str


class ExecutionCompleted(_Event, frozen=True, tag="execution_completed"):
    result: ValueRef


class ExecutionFailed(_Event, frozen=True, tag="execution_failed"):
    error: ErrorInfo
    call: str | None = None
    """Identity of the durable call the error came from, if any."""
    divergence: bool = False
    position: int | None = None
    """For a divergence: the call position where code and journal disagree."""
    expected: str | None = None
    actual: str | None = None
    argument: str | None = None
    """For a divergence in a call's arguments: the first argument that differs."""
    recorded_argument: str | None = None
    current_argument: str | None = None


class ExecutionCancelled(_Event, frozen=True, tag="execution_cancelled"):
    reason: str = ""


class CallStarted(_Event, frozen=True, tag="call_started"):
    """A durable call began an attempt."""

    position: int
    """Index of the call among the flow body's durable calls (0-based)."""
    identity: str
    kind: str
    name: str
    call_id: str
    attempt: int = 1
    checkpoint_type: str | None = None
    inputs_from: tuple[str, ...] = ()
    """Identities of the calls whose outputs were passed in (lineage)."""
    target: str | None = None
    """``module:QualName`` of the function called (None for llm and wait calls, and in
    journals written before it was recorded: those match on ``name`` alone)."""
    arguments: tuple[ArgumentDigest, ...] | None = None
    """Digests of the call's arguments (None in journals written before they were)."""


class CallCompleted(_Event, frozen=True, tag="call_completed"):
    position: int
    identity: str
    call_id: str
    output: ValueRef
    attempt: int = 1
    duration_ms: float = 0.0
    reused_from: str | None = None
    """Set when a replay copied this outcome from the execution it replays."""
    overridden: bool = False
    """Set when a replay's override supplied this output instead of running the call."""
    cache_key: str | None = None
    """Set when the output may be reused by later executions (checkpoint caching)."""
    cached_from: str | None = None
    """Set when this output was reused from that execution's cached call."""


class CallStartedAndCompleted(_Event, frozen=True, tag="call_started_and_completed"):
    """A call's start and its completion, appended in one transaction as one event.

    Exactly the ``CallStarted`` and the ``CallCompleted`` it stands for (``started``
    and ``completed`` give them back), with the start's time in ``started_at``: the
    row's time is the completion's. Most calls finish before their deferred start is
    flushed, so this is most of a journal; one row per call instead of two halves
    what every resume reads and decodes.
    """

    position: int
    identity: str
    kind: str
    name: str
    call_id: str
    output: ValueRef
    started_at: float
    attempt: int = 1
    checkpoint_type: str | None = None
    inputs_from: tuple[str, ...] = ()
    target: str | None = None
    arguments: tuple[ArgumentDigest, ...] | None = None
    duration_ms: float = 0.0
    reused_from: str | None = None
    overridden: bool = False
    cache_key: str | None = None
    cached_from: str | None = None

    @property
    def started(self) -> CallStarted:
        return CallStarted(**{name: getattr(self, name) for name in _START_FIELDS})

    @property
    def completed(self) -> CallCompleted:
        return CallCompleted(**{name: getattr(self, name) for name in _COMPLETION_FIELDS})


_START_FIELDS: Final = CallStarted.__struct_fields__
_COMPLETION_FIELDS: Final = CallCompleted.__struct_fields__
"""The fields each half takes from (and gives to) ``CallStartedAndCompleted``, by name,
so a field added to both events is carried by the pair too (a test checks that the pair
has every field of both)."""
_PAIR_SOURCES: Final = (*_START_FIELDS, *_COMPLETION_FIELDS, "started_at")
_pair_fields: Final = operator.itemgetter(
    *(
        # The completion's copy of a field both halves have (they agree when paired).
        max(index for index, source in enumerate(_PAIR_SOURCES) if source == name)
        for name in CallStartedAndCompleted.__struct_fields__
    )
)
"""Picks the pair's fields, in its order, from a start's fields, its completion's and the
start's time, by name: worked out once, as the pairing runs for every checkpoint (taken
in C, this costs a fifth of filling the pair by keyword)."""


def _paired(
    started: CallStarted, started_at: float, completed: CallCompleted
) -> CallStartedAndCompleted | None:
    """The one event for a start and the completion right after it, if they match."""
    if (
        completed.identity != started.identity
        or completed.position != started.position
        or completed.attempt != started.attempt
        or completed.call_id != started.call_id
    ):
        return None
    values = (*msgspec.structs.astuple(started), *msgspec.structs.astuple(completed), started_at)
    return CallStartedAndCompleted(*_pair_fields(values))


def pair_starts(batch: Sequence[tuple[Event, float]]) -> list[tuple[Event, float]]:
    """``batch`` (events with their times, about to be appended together) with every
    call start directly followed by its own completion written as one event.

    Only neighbours are paired: anything between a start and its completion (a
    parallel call's start, the call's live logs) keeps both as they are, so every
    event still follows what it refers to.
    """
    paired: list[tuple[Event, float]] = []
    index, count = 0, len(batch)
    while index < count:
        event, at = batch[index]
        if type(event) is CallStarted and index + 1 < count:
            after, after_at = batch[index + 1]
            if type(after) is CallCompleted:
                both = _paired(event, at, after)
                if both is not None:
                    paired.append((both, after_at))
                    index += 2
                    continue
        paired.append((event, at))
        index += 1
    return paired


class CallFailed(_Event, frozen=True, tag="call_failed"):
    position: int
    identity: str
    call_id: str
    error: ErrorInfo
    attempt: int = 1
    final: bool = True
    """False when a retry follows."""
    duration_ms: float = 0.0


class LlmCallRecorded(_Event, frozen=True, tag="llm_call"):
    """One model call: a child of a checkpoint, or the body of a flow-body llm boundary."""

    name: str
    parent: str | None
    """Identity of the enclosing call; None for a flow-body call (its boundary is the call)."""
    prompt: str
    """Head hash of the prompt's message chain (see ``journal.conversation``)."""
    message_count: int
    response: ValueRef
    usage: LlmUsage
    latency_ms: float
    requested_model: str | None
    alias: str | None
    resolved_model: str
    credential_source: str
    attempt: int = 1
    temperature: float | None = None
    max_tokens: int | None = None
    provider_attempt: int = 1
    """Which request to the provider within the call this records (1, 2, ...): kitaru
    resends a request only when it provably never reached the provider."""
    error: ErrorInfo | None = None
    """Set when this request failed; ``response`` is then empty and usage unknown."""
    reached_provider: bool = True
    """False when the failed request provably never left (it cannot have been billed)."""
    timeout: float | None = None
    """The timeout in seconds the request was sent with (None in older journals)."""
    tool_calls: tuple[LlmToolCall, ...] = ()
    """The tool calls the model asked for (kitaru does not run them)."""
    finish_reason: str | None = None
    """Why the model stopped (an ``LLMFinishReason`` value); None for a failed request
    and in older journals."""
    request_extras: ValueRef | None = None
    """What the request carried besides the prompt's roles and texts, as a msgpack map:
    ``tools`` (the tool definitions offered), ``response_format`` (name, JSON schema,
    strict) and ``messages`` (message index -> its tool calls or the tool call it
    answers). None when it carried none of these."""
    estimated_cost: float | None = None
    """Estimated cost of this request in US dollars, from ``cost_source``'s prices; None
    when unknown (a model the table does not list, usage not reported, older journals)."""
    cost_source: str | None = None
    """The price table the estimate came from, e.g. ``genai-prices 0.2.3``."""
    cost_reused: bool = False
    """Set on a record a replay copied from the execution it replays: that execution
    paid for the request, this one did not (totals count only costs not reused)."""


class WaitRequested(_Event, frozen=True, tag="wait_requested"):
    """``kitaru.wait()`` paused the flow body until input arrives."""

    position: int
    identity: str
    name: str
    call_id: str
    question: str | None = None
    schema_type: str | None = None
    """``module:QualName`` of the schema type the input must fit; None for a plain gate."""
    schema: dict[str, Any] | None = None
    """JSON schema of the expected input, for people and tools."""
    metadata: dict[str, Any] | None = None
    timeout: float | None = None


class WaitResolved(_Event, frozen=True, tag="wait_resolved"):
    """Input arrived for a wait (or the wait was aborted)."""

    position: int
    identity: str
    call_id: str
    value: ValueRef | None = None
    aborted: bool = False


class LogEntry(msgspec.Struct, frozen=True, array_like=True):
    at: float
    level: str
    source: str
    """``stdout``, ``stderr`` or a logger name."""
    message: str


class LogsCaptured(_Event, frozen=True, tag="logs"):
    """Log records and prints emitted during one attempt of a checkpoint."""

    call: str
    attempt: int
    entries: tuple[LogEntry, ...]


class ArtifactSaved(_Event, frozen=True, tag="artifact_saved"):
    """``kitaru.save()`` inside a checkpoint attempt."""

    call: str
    attempt: int
    name: str
    kind: str
    """The artifact type given to ``kitaru.save``: prompt, response, context, input, ..."""
    value: ValueRef
    tags: tuple[str, ...] = ()


class MetadataLogged(_Event, frozen=True, tag="metadata"):
    """``kitaru.log(**metadata)``: attached to a call, or to the execution (call=None)."""

    values: dict[str, Any]
    call: str | None = None


Event = (
    ExecutionStarted
    | ExecutionResumed
    | ExecutionCompleted
    | ExecutionFailed
    | ExecutionCancelled
    | CallStarted
    | CallCompleted
    | CallStartedAndCompleted
    | CallFailed
    | LlmCallRecorded
    | MetadataLogged
    | WaitRequested
    | WaitResolved
    | LogsCaptured
    | ArtifactSaved
)

EVENT_TYPES: Final[dict[str, type[Any]]] = {
    str(cls.__struct_config__.tag): cls
    for cls in (
        ExecutionStarted,
        ExecutionResumed,
        ExecutionCompleted,
        ExecutionFailed,
        ExecutionCancelled,
        CallStarted,
        CallCompleted,
        CallStartedAndCompleted,
        CallFailed,
        LlmCallRecorded,
        MetadataLogged,
        WaitRequested,
        WaitResolved,
        LogsCaptured,
        ArtifactSaved,
    )
}


class UnknownEventError(Exception):
    """An event's tag is not one this version knows: a newer kitaru wrote it."""

    def __init__(self, tag: str):
        super().__init__(tag)
        self.tag = tag


_encoder = msgspec.msgpack.Encoder()
_decoders: dict[str, msgspec.msgpack.Decoder[Any]] = {
    tag: msgspec.msgpack.Decoder(cls) for tag, cls in EVENT_TYPES.items()
}


def event_tag(event: Event) -> str:
    """Return the tag stored in the ``type`` column for ``event``."""
    return type(event).__struct_config__.tag  # type: ignore[return-value]


def encode_event(event: Event) -> bytes:
    """Encode an event body (msgpack; the tag is inside it as well).

    Text with lone surrogates (a truncated emoji in an error message or a printed line)
    is not valid UTF-8, so msgpack cannot hold it: such characters are recorded as
    ``\\udXXX`` escapes instead of failing the append. Recorded values never get here
    as text: they are encoded bytes (``ValueRef``), exact to the character.
    """
    try:
        return _encoder.encode(event)
    except UnicodeEncodeError:
        return _encoder.encode(_escape_surrogates(event))


def journal_text(text: str) -> str:
    """``text`` as it can be recorded: lone surrogates become ``\\udXXX`` escapes.

    Use it where text from user code (error messages, printed lines) enters an event,
    so that the event and the columns derived from it hold the same valid UTF-8.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _escape_surrogates(item: Any) -> Any:
    """``item`` with every str in it made valid UTF-8 (other values untouched)."""
    if isinstance(item, str):
        return journal_text(item)
    if isinstance(item, msgspec.Struct):
        changes = {name: _escape_surrogates(getattr(item, name)) for name in item.__struct_fields__}
        return msgspec.structs.replace(item, **changes)
    if isinstance(item, tuple | list):
        return type(item)(_escape_surrogates(part) for part in item)
    if isinstance(item, dict):
        return {_escape_surrogates(k): _escape_surrogates(v) for k, v in item.items()}
    return item


def decode_event(tag: str, body: bytes) -> Event:
    """Decode an event body by its tag; unknown tags raise ``UnknownEventError``."""
    decoder = _decoders.get(tag)
    if decoder is None:
        raise UnknownEventError(tag)
    return decoder.decode(body)  # type: ignore[no-any-return]


_many = msgspec.msgpack.Decoder(list[Event])


def decode_events(bodies: Sequence[bytes]) -> list[Event]:
    """Decode many event bodies in one call (each body carries its own tag).

    The bodies are joined under one msgpack array header, so msgspec decodes the
    whole journal without returning to Python between events: reading an execution
    back is on the path of every ``get`` and every resume. Raises
    ``msgspec.DecodeError`` (or ``ValidationError``) if any body is bad; the caller
    then decodes them one by one to say which.
    """
    header = b"\xdd" + len(bodies).to_bytes(4, "big")
    return _many.decode(b"".join((header, *bodies)))
