"""``kitaru.adapters.pydantic_ai``: Kitaru's PydanticAI adapter, not offered here.

The module can be imported, so a program reaches the point where it uses the
adapter; every name it asks for then raises ``KitaruFeatureNotAvailableError``.
"""

from __future__ import annotations

from typing import NoReturn

from kitaru.errors import KitaruFeatureNotAvailableError

__all__: list[str] = []


def __getattr__(name: str) -> NoReturn:
    if name.startswith("__"):
        raise AttributeError(name)  # dunder probes (copy, pickle, doctest) stay normal
    raise KitaruFeatureNotAvailableError(
        f"kitaru.adapters.pydantic_ai.{name} is not available in this version: there is "
        "no PydanticAI adapter. Run the agent inside a @checkpoint (e.g. "
        "`@checkpoint(type='llm_call')` around `agent.run_sync(...)`) so its result is "
        "recorded and replayed, or call models with kitaru.llm() in the flow body."
    )
