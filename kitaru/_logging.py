"""Structured logging for kitaru's lifecycle events.

Library use is quiet: events go to the standard ``logging`` logger ``kitaru``, which
has no handler unless the application adds one. The CLI turns on a console renderer.

structlog is imported on the first event, not with kitaru: importing it loads asyncio
(and rich, for the console renderer), which costs more than the rest of ``import kitaru``.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["enable_cli_logging", "get_logger"]

_LOGGER_NAME = "kitaru"
logging.getLogger(_LOGGER_NAME).addHandler(logging.NullHandler())


class _DeferredLogger:
    """A structlog logger built on first use; until then only its bound values are kept."""

    __slots__ = ("_initial", "_logger")

    def __init__(self, initial: dict[str, Any]) -> None:
        self._initial = initial
        self._logger: Any = None

    def __getattr__(self, name: str) -> Any:
        logger = self._logger
        if logger is None:
            level = _LEVELS.get(name)
            if level is not None and not logging.getLogger(_LOGGER_NAME).isEnabledFor(level):
                # The stdlib logger would drop the event: no need to load structlog (a
                # resume or a short run otherwise pays for that import on its first event).
                return _drop
            # Two threads racing here both build an equivalent logger; either one is fine.
            logger = self._logger = _structlog_logger(self._initial)
        return getattr(logger, name)


_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "exception": logging.ERROR,
    "critical": logging.CRITICAL,
}
"""Level of each event method, to see whether the ``kitaru`` logger keeps its events."""


def _drop(*args: Any, **kwargs: Any) -> None:
    """An event the ``kitaru`` logger would not pass on (its level is above it)."""


def _structlog_logger(initial: dict[str, Any]) -> Any:
    import structlog

    return structlog.wrap_logger(
        logging.getLogger(_LOGGER_NAME),
        processors=[
            structlog.processors.add_log_level,
            structlog.stdlib.render_to_log_kwargs,
        ],
        **initial,
    )


def get_logger(**initial: Any) -> Any:
    """Return a structlog logger bound to the ``kitaru`` stdlib logger."""
    return _DeferredLogger(initial)


class _RedactingFormatter(logging.Formatter):
    """Formats like structlog's console renderer, then blanks secret values (errors can
    quote them). The structlog formatter is built on the first record."""

    def __init__(self) -> None:
        super().__init__()
        self._console: logging.Formatter | None = None

    def format(self, record: logging.LogRecord) -> str:
        from kitaru._redaction import redact

        if self._console is None:
            self._console = _console_formatter()
        return redact(self._console.format(record))


def _console_formatter() -> logging.Formatter:
    import structlog

    return structlog.stdlib.ProcessorFormatter(
        processor=structlog.dev.ConsoleRenderer(colors=False),
        foreign_pre_chain=[
            structlog.processors.add_log_level,
            structlog.stdlib.ExtraAdder(),
        ],
    )


def enable_cli_logging(level: int = logging.INFO) -> None:
    """Print kitaru's lifecycle events to stderr (what the CLI shows)."""
    logger = logging.getLogger(_LOGGER_NAME)
    if any(getattr(h, "_kitaru_cli", False) for h in logger.handlers):
        return
    handler = logging.StreamHandler()
    handler._kitaru_cli = True  # type: ignore[attr-defined]
    handler.setFormatter(_RedactingFormatter())
    logger.addHandler(handler)
    logger.setLevel(level)
