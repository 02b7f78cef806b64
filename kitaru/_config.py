"""Where kitaru keeps its files, and process-wide defaults.

The config dir is ``$KITARU_CONFIG_PATH`` or the platform's user config folder for
``kitaru``. The journal lives there as ``kitaru.db`` unless ``$KITARU_STORE`` names
another file (a bare path or a ``sqlite:///PATH`` URL).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from kitaru.errors import KitaruFeatureNotAvailableError, KitaruUsageError

__all__ = [
    "config_dir",
    "store_path",
]

CONFIG_PATH_ENV = "KITARU_CONFIG_PATH"
STORE_ENV = "KITARU_STORE"
STORE_FILE_NAME = "kitaru.db"
_SQLITE_URL_PREFIX = "sqlite:///"


def config_dir() -> Path:
    """Return the directory that holds kitaru's config, secrets and default journal.

    Raise ``KitaruUsageError`` if ``$KITARU_CONFIG_PATH`` names a file, or a path under
    one: nothing could be read from or stored there.
    """
    explicit = os.environ.get(CONFIG_PATH_ENV)
    if explicit:
        path = Path(explicit).expanduser()
        _refuse_file_in_the_way(path)
        return path
    if sys.platform == "win32":
        base = os.environ.get("APPDATA") or str(Path.home() / "AppData" / "Roaming")
        return Path(base) / "kitaru"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "kitaru"
    xdg = os.environ.get("XDG_CONFIG_HOME")
    return (Path(xdg) if xdg else Path.home() / ".config") / "kitaru"


def _refuse_file_in_the_way(path: Path) -> None:
    # The dir may not exist yet (it is created on first write), so look for the nearest
    # part of the path that does exist: it must be a directory.
    for candidate in (path, *path.parents):
        try:
            is_dir = candidate.is_dir()
            exists = is_dir or candidate.exists()
        except OSError:
            return  # unreadable: the read or write that follows reports it
        if not exists:
            continue
        if is_dir:
            return
        what = "is a file" if candidate == path else f"is under {candidate}, which is a file"
        raise KitaruUsageError(
            f"{CONFIG_PATH_ENV} is {str(path)!r}, which {what}, not a directory; point it "
            "at a directory (it is created if missing), or unset it."
        )


def store_path(value: str | None = None) -> Path:
    """Resolve the journal's file path from ``value`` or ``$KITARU_STORE``."""
    raw = value if value is not None else os.environ.get(STORE_ENV)
    if not raw:
        return config_dir() / STORE_FILE_NAME
    if raw.startswith(_SQLITE_URL_PREFIX):
        raw = raw[len(_SQLITE_URL_PREFIX) :]
        if not raw:
            raise KitaruUsageError(
                f"{STORE_ENV} is 'sqlite:///' with no path; give a file, e.g. sqlite:///kitaru.db"
            )
    elif raw.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        scheme = raw.split("://", 1)[0]
        where = STORE_ENV if value is None else f"The store {raw}"
        raise KitaruFeatureNotAvailableError(
            f"{where} uses the '{scheme}' scheme: the PostgreSQL journal store is not "
            "available in this version. Record executions in SQLite: `kitaru stack create "
            "NAME --store sqlite:///PATH`, then `kitaru stack use NAME`."
        )
    elif "://" in raw:
        scheme = raw.split("://", 1)[0]
        raise KitaruUsageError(
            f"{STORE_ENV} uses the '{scheme}' scheme, which this version does not support; "
            "set it to a file path or a sqlite:///PATH URL."
        )
    return Path(raw).expanduser()
