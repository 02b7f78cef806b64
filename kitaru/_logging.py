"""Structured logging for kitaru's lifecycle events.

Library use is quiet: events go to the standard ``logging`` logger ``kitaru``, which
has no handler unless the application adds one. The CLI turns on a console renderer.
"""

from __future__ import annotations

import logging
from typing import Any

import structlog

__all__ = ["enable_cli_logging", "get_logger"]

_LOGGER_NAME = "kitaru"
logging.getLogger(_LOGGER_NAME).addHandler(logging.NullHandler())


def get_logger(**initial: Any) -> Any:
    """Return a structlog logger bound to the ``kitaru`` stdlib logger."""
    return structlog.wrap_logger(
        logging.getLogger(_LOGGER_NAME),
        processors=[
            structlog.processors.add_log_level,
            structlog.stdlib.render_to_log_kwargs,
        ],
        **initial,
    )


class _RedactingFormatter(structlog.stdlib.ProcessorFormatter):
    """Formats like structlog's, then blanks secret values (errors can quote them)."""

    def format(self, record: logging.LogRecord) -> str:
        from kitaru._redaction import redact

        return redact(super().format(record))


def enable_cli_logging(level: int = logging.INFO) -> None:
    """Print kitaru's lifecycle events to stderr (what the CLI shows)."""
    logger = logging.getLogger(_LOGGER_NAME)
    if any(getattr(h, "_kitaru_cli", False) for h in logger.handlers):
        return
    handler = logging.StreamHandler()
    handler._kitaru_cli = True  # type: ignore[attr-defined]
    handler.setFormatter(
        _RedactingFormatter(
            processor=structlog.dev.ConsoleRenderer(colors=False),
            foreign_pre_chain=[
                structlog.processors.add_log_level,
                structlog.stdlib.ExtraAdder(),
            ],
        )
    )
    logger.addHandler(handler)
    logger.setLevel(level)
