"""Tracked model calls: prompt in, text and usage out, through one of four providers.

``call`` runs one call (``perform_llm_call``); ``registry`` and ``resolution`` decide
which model it goes to; ``credentials`` finds its key; ``providers`` talk to the SDKs.
Nothing here writes to the journal. Provider SDKs load only when a call needs them.
"""

from __future__ import annotations

from kitaru._llm.call import LlmResult, PreparedLlmCall, perform_llm_call, prepare_llm_call
from kitaru._llm.credentials import Credentials, resolve_credentials
from kitaru._llm.messages import normalise_prompt
from kitaru._llm.providers import SUPPORTED_PROVIDERS, ProviderError
from kitaru._llm.registry import ModelRegistry, effective_registry
from kitaru._llm.resolution import ResolvedModel, resolve_model

__all__ = [
    "SUPPORTED_PROVIDERS",
    "Credentials",
    "LlmResult",
    "ModelRegistry",
    "PreparedLlmCall",
    "ProviderError",
    "ResolvedModel",
    "effective_registry",
    "normalise_prompt",
    "perform_llm_call",
    "prepare_llm_call",
    "resolve_credentials",
    "resolve_model",
]
