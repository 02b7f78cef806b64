"""Where kitaru keeps its files, and process-wide defaults.

The config dir is ``$KITARU_CONFIG_PATH`` or the platform's user config folder for
``kitaru``. The journal lives there as ``kitaru.db`` unless ``$KITARU_STORE`` names
another store: a bare path or a ``sqlite:///PATH`` URL (see ``store_url``), or the URL
of another backend.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from kitaru.errors import KitaruUsageError

__all__ = [
    "config_dir",
    "sqlite_file",
    "store_location",
    "store_url",
]

CONFIG_PATH_ENV = "KITARU_CONFIG_PATH"
STORE_ENV = "KITARU_STORE"
WAIT_PROMPT_ENV = "KITARU_WAIT_PROMPT"
"""0 turns off asking a wait's question at the terminal of the program that waits."""
STORE_FILE_NAME = "kitaru.db"
SQLITE_URL_PREFIX = "sqlite:///"


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


def store_url(value: str | None = None) -> str:
    """The journal store's URL, from ``value`` or ``$KITARU_STORE`` (default: ``kitaru.db``
    in the config dir).

    A plain path and a ``sqlite:///PATH`` URL both become ``sqlite:///`` followed by the
    file's absolute path; as in SQLAlchemy, the path after ``sqlite:///`` is taken as
    written, so ``sqlite:///kitaru.db`` is relative to the current directory (resolved
    now) and ``sqlite:////srv/kitaru.db`` is absolute. Any other ``scheme://`` URL is
    returned as given: which schemes have a backend is ``kitaru._stores.open_store``'s call.
    """
    raw = value if value is not None else os.environ.get(STORE_ENV)
    if not raw:
        return SQLITE_URL_PREFIX + str((config_dir() / STORE_FILE_NAME).absolute())
    raw = raw.strip()
    if raw.startswith(SQLITE_URL_PREFIX):
        path = raw[len(SQLITE_URL_PREFIX) :]
        if not path:
            where = STORE_ENV if value is None else "The store URL"
            raise KitaruUsageError(
                f"{where} is 'sqlite:///' with no path; give a file, e.g. sqlite:///kitaru.db"
            )
    elif "://" in raw:
        return raw
    else:
        path = raw
    return SQLITE_URL_PREFIX + str(Path(path).expanduser().absolute())


def sqlite_file(url: str) -> Path | None:
    """The journal file a ``sqlite:///`` store URL names; None for any other store."""
    if not url.startswith(SQLITE_URL_PREFIX):
        return None
    return Path(url[len(SQLITE_URL_PREFIX) :])


def store_location(url: str) -> str:
    """How messages and recorded specs name a store: its file for SQLite, else its URL."""
    path = sqlite_file(url)
    return url if path is None else str(path)
