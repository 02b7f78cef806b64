"""The exceptions kitaru raises.

Every error is a ``KitaruError``; catch that to handle them all::

    KitaruError
    ├── KitaruFeatureNotAvailableError        a documented feature this kitaru does not offer
    ├── KitaruUsageError (ValueError)         bad arguments or configuration
    │   ├── KitaruWaitValidationError         wait input that does not fit its schema
    │   ├── SecretNotFoundError               no stored secret of that name
    │   └── UnguardedRunError                 a flow started while its module was imported
    ├── KitaruContextError (RuntimeError)     called in the wrong place
    ├── KitaruStateError (RuntimeError)       execution in the wrong state for the request
    │   ├── KitaruTimeoutError (TimeoutError) waited longer than the caller allowed
    │   ├── KitaruLeaseLostError              this process no longer owns the execution
    │   ├── JournalConflictError              another writer appended first
    │   ├── JournalNotFoundError              a read found no journal where it looked
    │   ├── StoreCopyRefusedError             a store copy that would overwrite or race
    │   └── WaitAlreadyAnsweredError          a wait takes one answer only
    └── KitaruRuntimeError (RuntimeError)     setup or runtime failure
        ├── KitaruExecutionError              an execution ended badly (exec_id, status)
        │   ├── KitaruUserCodeError           the user's code raised
        │   └── KitaruDivergenceError         the code no longer matches the journal
        ├── FlowImportError                   a recorded flow's module cannot be imported
        └── KitaruBackendError                storage or provider failure
            ├── KitaruLogRetrievalError       an execution's logs could not be read
            └── ProviderError                 a model provider failed (reason, status)

Messages end with what to do next; structured attributes carry the details.
``FailureOrigin`` says where an execution's failure came from.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

__all__ = [
    "BackendFailure",
    "FailureOrigin",
    "FlowImportError",
    "JournalConflictError",
    "JournalNotFoundError",
    "KitaruBackendError",
    "KitaruContextError",
    "KitaruDivergenceError",
    "KitaruError",
    "KitaruExecutionError",
    "KitaruFeatureNotAvailableError",
    "KitaruLeaseLostError",
    "KitaruLogRetrievalError",
    "KitaruRuntimeError",
    "KitaruStateError",
    "KitaruTimeoutError",
    "KitaruUsageError",
    "KitaruUserCodeError",
    "KitaruWaitValidationError",
    "ProviderError",
    "SecretNotFoundError",
    "StoreCopyRefusedError",
    "UnguardedRunError",
    "WaitAlreadyAnsweredError",
]


class KitaruError(Exception):
    """Root of every error kitaru raises."""


class KitaruFeatureNotAvailableError(KitaruError):
    """A documented feature this kitaru does not offer; the message says what to use."""


class KitaruUsageError(KitaruError, ValueError):
    """A public API was called with bad arguments or bad configuration."""


class KitaruWaitValidationError(KitaruUsageError):
    """Input given to a pending wait does not match the wait's schema."""

    def __init__(self, message: str, *, exec_id: str | None = None, wait: str | None = None):
        super().__init__(message)
        self.exec_id = exec_id
        self.wait = wait


class KitaruContextError(KitaruError, RuntimeError):
    """A kitaru call was made where it is not allowed (e.g. a checkpoint outside a flow)."""


class KitaruStateError(KitaruError, RuntimeError):
    """The execution is in the wrong state for what was asked of it."""

    def __init__(self, message: str, *, exec_id: str | None = None, status: str | None = None):
        super().__init__(message)
        self.exec_id = exec_id
        self.status = status


class KitaruTimeoutError(KitaruStateError, TimeoutError):
    """A blocking wait on an execution ran out of time; the execution itself goes on."""

    def __init__(self, message: str, *, exec_id: str, timeout_seconds: float, last_status: str):
        super().__init__(message, exec_id=exec_id, status=last_status)
        self.timeout_seconds = timeout_seconds
        self.last_status = last_status


class KitaruLeaseLostError(KitaruStateError):
    """Another process took the execution over: this one may record nothing more for it.

    Raised at the next durable call of the process that lost its lease (its heartbeat
    found the lease taken, or the journal refused an append). ``owner`` is the lease
    this process held.
    """

    def __init__(self, message: str, *, exec_id: str, owner: str):
        super().__init__(message, exec_id=exec_id, status="running")
        self.owner = owner


class KitaruRuntimeError(KitaruError, RuntimeError):
    """Setup or runtime failure."""


class FlowImportError(KitaruRuntimeError):
    """The module of a recorded flow cannot be imported in this process (``module``,
    ``qualname``); a resume needs it importable (PYTHONPATH, ``--import-path``)."""

    def __init__(self, message: str, *, module: str, qualname: str):
        super().__init__(message)
        self.module = module
        self.qualname = qualname


class BackendFailure(StrEnum):
    """What kind of storage failure a ``KitaruBackendError`` reports (its ``failure``)."""

    READ_ONLY = "read_only"
    """The journal (or its folder) cannot be written."""
    CANNOT_OPEN = "cannot_open"
    """The journal file cannot be opened or created."""
    NOT_A_JOURNAL = "not_a_journal"
    """The file is not a database kitaru can use."""
    DAMAGED = "damaged"
    """The file is corrupt, or events fail their checksums."""
    BUSY = "busy"
    """Another process held the journal's write lock for longer than the busy timeout."""
    DISK_FULL = "disk_full"
    """The disk has no room for the write; nothing of it was recorded."""
    OTHER = "other"
    """Anything else; ``detail`` holds the underlying message."""


class KitaruBackendError(KitaruRuntimeError):
    """The journal store or a model provider failed.

    ``failure`` classifies a storage failure (None for a provider's); ``detail`` is the
    underlying library's own message, when there is one (for diagnostics: the message
    itself says what to do).
    """

    def __init__(
        self,
        message: str,
        *,
        failure: BackendFailure | None = None,
        detail: str | None = None,
    ):
        super().__init__(message)
        self.failure = failure
        self.detail = detail


class KitaruLogRetrievalError(KitaruBackendError):
    """An execution's captured logs could not be read from the journal."""


class FailureOrigin(StrEnum):
    """Where an execution's failure came from (``FailureInfo.origin``)."""

    USER_CODE = "user_code"
    """The flow's or a checkpoint's own code raised."""
    RUNTIME = "runtime"
    """kitaru refused something the code did (e.g. an output it cannot store)."""
    BACKEND = "backend"
    """The journal store or a model provider failed."""
    DIVERGENCE = "divergence"
    """The code no longer makes the calls its journal recorded."""
    UNKNOWN = "unknown"
    """Not recorded."""


class KitaruExecutionError(KitaruRuntimeError):
    """An execution did not complete; carries its id, final status and failure origin.

    ``failure_origin`` is None for a cancelled execution.
    """

    def __init__(
        self,
        message: str,
        *,
        exec_id: str,
        status: str,
        failure_origin: FailureOrigin | None = None,
    ):
        super().__init__(message)
        self.exec_id = exec_id
        self.status = status
        self.failure_origin = failure_origin


class KitaruUserCodeError(KitaruExecutionError):
    """The user's flow or checkpoint code raised an exception.

    ``error_type`` and ``error_message`` describe the original exception; ``call``
    names the checkpoint it came from, if any. ``__cause__`` is the original
    exception when it happened in this process.
    """

    def __init__(
        self,
        message: str,
        *,
        exec_id: str,
        status: str = "failed",
        error_type: str,
        error_message: str,
        call: str | None = None,
        traceback: str | None = None,
        failure_origin: FailureOrigin = FailureOrigin.USER_CODE,
    ):
        super().__init__(message, exec_id=exec_id, status=status, failure_origin=failure_origin)
        self.error_type = error_type
        self.error_message = error_message
        self.call = call
        self.traceback = traceback


class KitaruDivergenceError(KitaruExecutionError):
    """The flow code made a different durable call than the journal recorded there.

    For a call made with other arguments, ``argument`` names the first that differs and
    ``recorded_argument`` / ``current_argument`` describe its two values, shortened.
    """

    def __init__(
        self,
        message: str,
        *,
        exec_id: str,
        status: str = "failed",
        position: int,
        expected: str | None,
        actual: str | None,
        argument: str | None = None,
        recorded_argument: str | None = None,
        current_argument: str | None = None,
    ):
        super().__init__(
            message, exec_id=exec_id, status=status, failure_origin=FailureOrigin.DIVERGENCE
        )
        self.position = position
        self.expected = expected
        self.actual = actual
        self.argument = argument
        self.recorded_argument = recorded_argument
        self.current_argument = current_argument


class JournalConflictError(KitaruStateError):
    """Another writer appended to the execution first: this writer lost the race."""


class JournalNotFoundError(KitaruStateError):
    """A command that only reads found no journal file where it looked."""

    def __init__(self, path: Path):
        super().__init__(
            f"There is no journal at {path}, so there are no executions yet. Run a flow "
            "first, or point KITARU_STORE at the journal you mean."
        )
        self.path = path


class StoreCopyRefusedError(KitaruStateError):
    """``kitaru store copy`` wrote nothing: some executions already exist in the
    destination (``reason`` "exists") or are running in the source ("running").

    ``exec_ids`` names them.
    """

    def __init__(self, message: str, *, exec_ids: list[str], reason: str):
        super().__init__(message, exec_id=exec_ids[0] if exec_ids else None)
        self.exec_ids = exec_ids
        self.reason = reason


class WaitAlreadyAnsweredError(KitaruStateError):
    """A wait was given input once already; a wait takes exactly one answer."""

    def __init__(self, exec_id: str, wait: str):
        super().__init__(
            f"Wait '{wait}' of execution {exec_id} already has an answer (not yet picked "
            "up by the execution); a wait takes one answer, so this one was refused. See "
            f"it with `kitaru executions get {exec_id}`.",
            exec_id=exec_id,
        )
        self.wait = wait


class SecretNotFoundError(KitaruUsageError):
    """No secret with this name is stored."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"Secret '{name}' does not exist. Create it with "
            f"`kitaru secrets set {name} --KEY=VALUE`, or see `kitaru secrets list`."
        )
        self.name = name


class UnguardedRunError(KitaruUsageError):
    """A flow was started at the top level of a module kitaru imported to resume one."""

    def __init__(self, message: str, *, flow: str, module: str):
        super().__init__(message)
        self.flow = flow
        self.module = module


class ProviderError(KitaruBackendError):
    """A model provider failed or answered something kitaru cannot use.

    ``reason`` is one of ``authentication``, ``permission``, ``not_found``,
    ``rate_limit``, ``bad_request``, ``server``, ``http``, ``timeout``, ``connection``,
    ``malformed_response``, ``empty_response`` or ``invalid_output`` (an answer that does
    not fit ``response_format=``); ``status_code`` is the HTTP status when
    there was one. ``reached_provider`` is False only when the request provably never
    left this machine (connection refused, host name not found): only then is it safe to
    send again without risking a second, billed generation.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        model: str,
        reason: str,
        status_code: int | None = None,
        reached_provider: bool = True,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.model = model
        self.reason = reason
        self.status_code = status_code
        self.reached_provider = reached_provider
