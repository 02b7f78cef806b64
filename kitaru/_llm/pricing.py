"""What a model call is estimated to have cost, from a maintained price table.

The prices come from ``genai-prices`` (the ``kitaru[cost]`` extra): a table of
providers' published per-token prices, kept up to date by its maintainers and shipped
inside the package, so an estimate needs no network. It is imported on first use, on a
background thread started when a flow makes its first model call, so a flow that never
calls a model (or a process without the extra) never pays for the import.

An estimate is only made from what the table knows: a provider or model it does not
list, usage the provider did not report, or the extra not being installed all give
``None`` (cost unknown), never a guessed figure. A request that provably never left
costs nothing, whatever the model.
"""

from __future__ import annotations

import importlib.metadata
import threading
from dataclasses import dataclass
from typing import Any

__all__ = ["CostEstimate", "estimate_cost", "warm_up"]

_lock = threading.Lock()
_loaded = threading.Event()
_calc: Any = None
_usage: Any = None
_source: str | None = None
_started = False


@dataclass(frozen=True)
class CostEstimate:
    usd: float | None
    """Estimated cost in US dollars; None when it is not known."""
    source: str | None
    """The price table the estimate came from (``genai-prices 0.2.3``)."""


def _load() -> None:
    global _calc, _usage, _source  # noqa: PLW0603  (loaded once per process)
    try:
        from genai_prices import Usage, calc_price

        _calc, _usage = calc_price, Usage
        _source = f"genai-prices {importlib.metadata.version('genai-prices')}"
    except ImportError:
        pass  # the extra is not installed: every cost stays unknown
    finally:
        _loaded.set()


def warm_up() -> None:
    """Start loading the price table in the background, once per process."""
    global _started  # noqa: PLW0603  (once per process)
    with _lock:
        if _started:
            return
        _started = True
    # Not a daemon: a daemon thread still importing when the interpreter shuts down is
    # ended inside pydantic-core's compiled code, which aborts the whole process
    # ("FATAL: exception not rethrown", exit by SIGABRT) after the program had finished.
    # The interpreter joins this thread before shutting down instead; the import takes
    # well under a second.
    threading.Thread(target=_load, name="kitaru-prices", daemon=False).start()


def estimate_cost(
    provider: str,
    model: str,
    input_tokens: int | None,
    output_tokens: int | None,
    *,
    reached_provider: bool = True,
) -> CostEstimate:
    """The estimated cost of one request to ``provider``'s ``model`` with this usage."""
    if not reached_provider:
        return CostEstimate(0.0, None)
    if input_tokens is None or output_tokens is None:
        return CostEstimate(None, None)
    warm_up()
    _loaded.wait()
    if _calc is None:
        return CostEstimate(None, None)
    try:
        price = _calc(
            _usage(input_tokens=input_tokens, output_tokens=output_tokens),
            model_ref=model,
            provider_id=provider,
        )
    except LookupError:
        return CostEstimate(None, _source)
    return CostEstimate(float(price.total_price), _source)
