"""``kitaru ui``: a local web dashboard over ``KitaruClient``.

Starlette and uvicorn come with the ``kitaru[ui]`` extra and are imported only here,
so ``import kitaru`` and every other command stay free of them.
"""

from __future__ import annotations

try:
    # Starlette imports its form parser lazily and answers every form POST with a 500
    # when it is missing: check at start-up, so `kitaru ui` says what to install.
    import python_multipart  # noqa: F401
except ModuleNotFoundError as exc:
    raise ModuleNotFoundError("python-multipart is missing", name="python-multipart") from exc

from kitaru.ui._app import create_app
from kitaru.ui._security import Credentials
from kitaru.ui._server import Dashboard, is_loopback

__all__ = ["Credentials", "Dashboard", "create_app", "is_loopback"]
