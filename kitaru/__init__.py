"""kitaru: durable execution for Python AI agents.

Put ``@flow`` around an agent and ``@checkpoint`` around its units of work; every
run is journaled, and a crashed run resumes where it stopped.
"""

from kitaru import memory
from kitaru._llm.tracked import llm
from kitaru.artifacts import load, save
from kitaru.checkpoint import Checkpoint, checkpoint
from kitaru.client import KitaruClient
from kitaru.config import configure
from kitaru.errors import (
    FailureOrigin,
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
)
from kitaru.flow import Flow, flow
from kitaru.flow_handle import FlowHandle
from kitaru.metadata import log
from kitaru.run_config import ImageSettings, KitaruConfig
from kitaru.runtime import current_execution_id
from kitaru.runtime.handles import MapResult, OutputHandle
from kitaru.stacks import (
    StackInfo,
    connect,
    create_stack,
    current_stack,
    delete_stack,
    list_stacks,
    use_stack,
)
from kitaru.wait import wait

__all__ = [
    "Checkpoint",
    "FailureOrigin",
    "Flow",
    "FlowHandle",
    "ImageSettings",
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
    "MapResult",
    "OutputHandle",
    "StackInfo",
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
