"""Where kitaru keeps its files, and process-wide defaults.

The config dir is ``$KITARU_CONFIG_PATH`` or the platform's user config folder for
``kitaru``. The journal lives there as ``kitaru.db`` unless ``$KITARU_STORE`` names
another store: a bare path or a ``sqlite:///PATH`` URL (see ``store_url``), or the URL
of another backend.
"""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kitaru.errors import KitaruUsageError

if TYPE_CHECKING:
    from kitaru.run_config import KitaruConfig

__all__ = [
    "Settings",
    "config_dir",
    "configure",
    "runtime_layer",
    "settings",
    "sqlite_file",
    "store_location",
    "store_url",
]

CONFIG_PATH_ENV = "KITARU_CONFIG_PATH"
STORE_ENV = "KITARU_STORE"
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
    returned as given: which schemes have a backend is ``kitaru.stores.open_store``'s call.
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


@dataclass(frozen=True)
class Settings:
    """The cache and retries defaults ``kitaru.configure`` set (with their defaults)."""

    cache: bool = False
    """Reuse checkpoint outputs across executions. Off by default: a new execution of
    an agent should not skip a side effect because an earlier one had the same inputs."""
    retries: int = 0


_UNSET: Any = object()
_layer: KitaruConfig | None = None
_layer_lock = threading.Lock()


def runtime_layer() -> KitaruConfig:
    """What ``kitaru.configure`` set in this process (None: not set)."""
    from kitaru.run_config import KitaruConfig

    return _layer if _layer is not None else KitaruConfig()


def settings() -> Settings:
    """The configured cache and retries defaults of this process."""
    layer = runtime_layer()
    return Settings(
        cache=bool(layer.cache),
        retries=layer.retries if layer.retries is not None else 0,
    )


def configure(
    *,
    stack: str | None = _UNSET,
    image: Any = _UNSET,
    cache: bool | None = _UNSET,
    retries: int | None = _UNSET,
    project: str | None = _UNSET,
) -> KitaruConfig:
    """Set process-wide run defaults; an omitted argument is unchanged, ``None`` clears it.

    ``stack``, ``image``, ``cache`` and ``retries`` apply to flows started later in this
    process unless the flow or the run sets them. ``project`` is kept for programs
    written for Kitaru's servers; this version has no projects.
    """
    global _layer  # noqa: PLW0603  (one process-wide value, swapped atomically)
    from kitaru.run_config import KitaruConfig

    changes = {
        name: value
        for name, value in (
            ("stack", stack),
            ("image", image),
            ("cache", cache),
            ("retries", retries),
            ("project", project),
        )
        if value is not _UNSET
    }
    with _layer_lock:
        current = runtime_layer()
        values = {
            name: getattr(current, name)
            for name in ("stack", "image", "cache", "retries", "project")
        }
        values.update(changes)
        _layer = KitaruConfig(**values)  # validates before anything changes
        return _layer
