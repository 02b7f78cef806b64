"""kitaru: durable execution for Python AI agents.

Put ``@flow`` around an agent and ``@checkpoint`` around its units of work; every
run is journaled, and a crashed run resumes where it stopped.
"""

from kitaru import memory
from kitaru._artifacts import save
from kitaru._checkpoint import Checkpoint, checkpoint
from kitaru._flow import Flow, flow
from kitaru._flow_handle import FlowHandle
from kitaru._llm.response import (
    LLMFinishReason,
    LLMResponse,
    LLMToolCall,
    LLMToolDefinition,
    LLMUsage,
)
from kitaru._llm_call import llm
from kitaru._metadata import log
from kitaru._run_config import ImageSettings, KitaruConfig, configure
from kitaru._stacks import (
    StackInfo,
    connect,
    create_stack,
    current_stack,
    delete_stack,
    list_stacks,
    use_stack,
)
from kitaru._wait import wait
from kitaru.client import KitaruClient
from kitaru.client._loading import load
from kitaru.errors import (
    BackendFailure,
    FailureOrigin,
    JournalConflictError,
    JournalNotFoundError,
    KitaruBackendError,
    KitaruContextError,
    KitaruDivergenceError,
    KitaruError,
    KitaruExecutionError,
    KitaruFeatureNotAvailableError,
    KitaruLeaseLostError,
    KitaruLogRetrievalError,
    KitaruRuntimeError,
    KitaruStateError,
    KitaruTimeoutError,
    KitaruUsageError,
    KitaruUserCodeError,
    KitaruWaitValidationError,
    ProviderError,
    SecretNotFoundError,
    UnguardedRunError,
    WaitAlreadyAnsweredError,
)
from kitaru.runtime import current_execution_id
from kitaru.runtime.handles import MapResult, OutputHandle

__all__ = [
    "BackendFailure",
    "Checkpoint",
    "FailureOrigin",
    "Flow",
    "FlowHandle",
    "ImageSettings",
    "JournalConflictError",
    "JournalNotFoundError",
    "KitaruBackendError",
    "KitaruClient",
    "KitaruConfig",
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
    "LLMFinishReason",
    "LLMResponse",
    "LLMToolCall",
    "LLMToolDefinition",
    "LLMUsage",
    "MapResult",
    "OutputHandle",
    "ProviderError",
    "SecretNotFoundError",
    "StackInfo",
    "UnguardedRunError",
    "WaitAlreadyAnsweredError",
    "checkpoint",
    "configure",
    "connect",
    "create_stack",
    "current_execution_id",
    "current_stack",
    "delete_stack",
    "flow",
    "list_stacks",
    "llm",
    "load",
    "log",
    "memory",
    "save",
    "use_stack",
    "wait",
]
