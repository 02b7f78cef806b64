"""kitaru: durable execution for Python AI agents.

Put ``@flow`` around an agent and ``@checkpoint`` around its units of work; every
run is journaled, and a crashed run resumes where it stopped.
"""

# Only the errors load with the package. Every other public name is imported on first
# access (module ``__getattr__`` below), so ``import kitaru`` and the ``kitaru`` command
# start quickly and load the runtime, the journal and the model providers only when used.

# Imported under private names: every public attribute of the package is in ``__all__``.
import importlib as _importlib
import typing as _typing

from kitaru.errors import (
    BackendFailure,
    FailureOrigin,
    FlowImportError,
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
    StoreCopyRefusedError,
    UnguardedRunError,
    WaitAlreadyAnsweredError,
)

if _typing.TYPE_CHECKING:
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
    from kitaru._llm_call import llm, llm_async
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
    from kitaru._wait import wait, wait_async
    from kitaru.client import KitaruClient
    from kitaru.client._loading import load
    from kitaru.runtime import current_execution_id
    from kitaru.runtime.handles import MapResult, OutputHandle

__all__ = [
    "BackendFailure",
    "Checkpoint",
    "FailureOrigin",
    "Flow",
    "FlowHandle",
    "FlowImportError",
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
    "StoreCopyRefusedError",
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
    "llm_async",
    "load",
    "log",
    "memory",
    "save",
    "use_stack",
    "wait",
    "wait_async",
]


# Public name -> the module defining it (``memory`` is that module itself).
_LAZY: dict[str, str] = {
    "Checkpoint": "kitaru._checkpoint",
    "Flow": "kitaru._flow",
    "FlowHandle": "kitaru._flow_handle",
    "ImageSettings": "kitaru._run_config",
    "KitaruClient": "kitaru.client",
    "KitaruConfig": "kitaru._run_config",
    "LLMFinishReason": "kitaru._llm.response",
    "LLMResponse": "kitaru._llm.response",
    "LLMToolCall": "kitaru._llm.response",
    "LLMToolDefinition": "kitaru._llm.response",
    "LLMUsage": "kitaru._llm.response",
    "MapResult": "kitaru.runtime.handles",
    "OutputHandle": "kitaru.runtime.handles",
    "StackInfo": "kitaru._stacks",
    "checkpoint": "kitaru._checkpoint",
    "configure": "kitaru._run_config",
    "connect": "kitaru._stacks",
    "create_stack": "kitaru._stacks",
    "current_execution_id": "kitaru.runtime",
    "current_stack": "kitaru._stacks",
    "delete_stack": "kitaru._stacks",
    "flow": "kitaru._flow",
    "list_stacks": "kitaru._stacks",
    "llm": "kitaru._llm_call",
    "llm_async": "kitaru._llm_call",
    "load": "kitaru.client._loading",
    "log": "kitaru._metadata",
    "memory": "kitaru.memory",
    "save": "kitaru._artifacts",
    "use_stack": "kitaru._stacks",
    "wait": "kitaru._wait",
    "wait_async": "kitaru._wait",
}


def __getattr__(name: str) -> _typing.Any:
    where = _LAZY.get(name)
    if where is None:
        if name.startswith("__"):
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        # A submodule (``kitaru.client``) used to be loaded by ``import kitaru`` itself;
        # it still answers as an attribute, now imported when first asked for.
        try:
            return _importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    module = _importlib.import_module(where)
    value = module if name == "memory" else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
