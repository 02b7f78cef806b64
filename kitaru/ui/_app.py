"""The dashboard's routes: pages, partials (the live parts), the JSON API and actions.

Handlers are plain functions, which Starlette runs on its thread pool: every read and
action is a blocking ``KitaruClient`` call. Actions are exactly the client's methods
(``input``, ``abort_wait``, ``resume``, ``retry``, ``cancel``, ``replay``), so what the
CLI and the dashboard do to an execution never differs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib.resources import files
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from kitaru.client import KitaruClient
from kitaru.errors import (
    KitaruError,
    KitaruStateError,
    KitaruUsageError,
    KitaruWaitValidationError,
)
from kitaru.ui import _data, _html
from kitaru.ui._forms import FormError, value_from_form
from kitaru.ui._security import CSRF_FIELD, AccessGuard, Credentials, csrf_ok

__all__ = ["create_app"]


def _status_of(exc: KitaruError) -> int:
    if isinstance(exc, KitaruStateError) and "No execution" in str(exc):
        return 404
    if isinstance(exc, KitaruUsageError | KitaruWaitValidationError):
        return 400
    if isinstance(exc, KitaruStateError):
        return 409
    return 500


def _int(request: Request, name: str) -> int:
    try:
        return int(request.query_params.get(name, "1"))
    except ValueError:
        return 1


def _opt(request: Request, name: str) -> str | None:
    value = request.query_params.get(name, "").strip()
    return value or None


# One function holds the routes: they share the client, the snapshots and the
# credentials as closures, and read top to bottom as the dashboard's whole surface.
def create_app(client: KitaruClient, credentials: Credentials) -> Starlette:  # noqa: PLR0915
    """The ASGI app over ``client``; every request must carry ``credentials.token``."""
    snapshots = _data.Snapshots(client)
    csrf = credentials.csrf

    def api(read: Callable[[Request], Any]) -> Callable[[Request], Response]:
        def endpoint(request: Request) -> Response:
            try:
                return JSONResponse(read(request))
            except KitaruError as exc:
                body = {"error": _data.shown(str(exc)), "type": type(exc).__name__}
                return JSONResponse(body, status_code=_status_of(exc))

        return endpoint

    def page(render: Callable[[Request], str]) -> Callable[[Request], Response]:
        def endpoint(request: Request) -> Response:
            try:
                return HTMLResponse(render(request))
            except KitaruError as exc:
                html = _html.error_page(_data.shown(str(exc)), csrf)
                return HTMLResponse(html, status_code=_status_of(exc))

        return endpoint

    # ------------------------------------------------------------------ reads

    def executions_data(request: Request) -> dict[str, Any]:
        return _data.execution_rows(
            snapshots,
            flow=_opt(request, "flow"),
            status=_opt(request, "status"),
            id_prefix=_opt(request, "q"),
            page=_int(request, "page"),
        )

    def detail_data(request: Request) -> dict[str, Any]:
        return _data.execution_detail(
            snapshots, request.path_params["exec_id"], call_page=_int(request, "calls")
        )

    def call_data(request: Request) -> dict[str, Any]:
        return _data.call_detail(
            snapshots, request.path_params["exec_id"], request.path_params["call"]
        )

    def logs_data(request: Request) -> dict[str, Any]:
        return _data.log_rows(
            snapshots, request.path_params["exec_id"], _opt(request, "checkpoint")
        )

    def detail_with_call(request: Request) -> tuple[dict[str, Any], dict[str, Any] | None]:
        detail = detail_data(request)
        chosen = _opt(request, "call")
        call = _data.call_detail(snapshots, detail["exec_id"], chosen) if chosen else None
        return detail, call

    def execution_html(request: Request) -> str:
        detail, call = detail_with_call(request)
        query = request.url.query
        return _html.execution_page(detail, call, csrf, query, _opt(request, "notice"))

    def execution_partial(request: Request) -> Response:
        try:
            detail, call = detail_with_call(request)
        except KitaruError as exc:
            return HTMLResponse(_data.shown(str(exc)), status_code=_status_of(exc))
        done = detail["status"] in ("completed", "failed", "cancelled")
        headers = {"x-kitaru-live": "done" if done else "more"}
        return HTMLResponse(_html.execution_live(detail, call), headers=headers)

    def logs_partial(request: Request) -> Response:
        try:
            data = logs_data(request)
        except KitaruError as exc:
            return HTMLResponse(_data.shown(str(exc)), status_code=_status_of(exc))
        headers = {"x-kitaru-live": "more" if data["following"] else "done"}
        return HTMLResponse(_html.logs_live(data), headers=headers)

    def executions_partial(request: Request) -> Response:
        try:
            return HTMLResponse(_html.executions_live(executions_data(request)))
        except KitaruError as exc:
            return HTMLResponse(_data.shown(str(exc)), status_code=_status_of(exc))

    # ------------------------------------------------------------------ actions

    async def form_of(request: Request) -> dict[str, str] | Response:
        """The submitted form, or the refusal of a request that fails the CSRF check."""
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("application/json"):
            try:
                body = await request.json()
            except ValueError:
                return JSONResponse({"error": "The body is not JSON."}, status_code=400)
            if not isinstance(body, dict):
                return JSONResponse({"error": "The body must be a JSON object."}, 400)
            form: dict[str, Any] = {**body, "__json__": True}
        else:
            raw = await request.form()
            form = {k: v for k, v in raw.items() if isinstance(v, str)}
        if not csrf_ok(request, credentials, form.get(CSRF_FIELD)):
            message = (
                "Refused: this request did not come from the dashboard's own page "
                "(CSRF check failed). Reload the page and try again."
            )
            return JSONResponse({"error": message, "type": "Forbidden"}, status_code=403)
        return form

    def wants_json(request: Request) -> bool:
        return request.url.path.startswith("/api/")

    def done(request: Request, exec_id: str, notice: str) -> Response:
        if wants_json(request):
            detail = _data.execution_detail(snapshots, exec_id, call_page=1)
            detail.pop("calls")
            return JSONResponse({"ok": True, "notice": notice, "execution": detail})
        target = f"/executions/{exec_id}?notice={notice.replace(' ', '+')}"
        return RedirectResponse(target, status_code=303)

    def refused(
        request: Request, exec_id: str, message: str, status: int, **extra: Any
    ) -> Response:
        message = _data.shown(message)
        if wants_json(request):
            body = {"error": message, **extra}
            return JSONResponse(body, status_code=status)
        detail = _data.execution_detail(snapshots, exec_id, call_page=1)
        html = _html.act_page(detail, csrf, error=message, **extra)
        return HTMLResponse(html, status_code=status)

    def lifecycle(action: str) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            form = await form_of(request)
            if isinstance(form, Response):
                return form
            exec_id = request.path_params["exec_id"]

            def act() -> Response:
                executions = client.executions
                try:
                    exec_id_full = executions.resolve_id(exec_id)
                    if action == "cancel":
                        executions.cancel(exec_id_full)
                        return done(request, exec_id_full, "cancel requested")
                    if action == "resume":
                        executions.resume(exec_id_full, background=True)
                        return done(request, exec_id_full, "resumed")
                    executions.retry(exec_id_full, background=True)
                    return done(request, exec_id_full, "retry started")
                except KitaruError as exc:
                    return refused(request, exec_id, str(exc), _status_of(exc))

            return await run_in_threadpool(act)

        return endpoint

    async def answer(request: Request) -> Response:
        form = await form_of(request)
        if isinstance(form, Response):
            return form
        exec_id = request.path_params["exec_id"]

        def act() -> Response:
            executions = client.executions
            try:
                exec_id_full = executions.resolve_id(exec_id)
                execution = snapshots.execution(exec_id_full)
                wait_name = form.get("wait")
                waits = [
                    w for w in execution.pending_waits if wait_name in (None, w.name, w.wait_id)
                ]
                if not waits:
                    raise KitaruStateError(
                        f"Execution {exec_id_full} has no pending wait "
                        f"{wait_name or ''}; reload the page to see what it waits for.",
                        exec_id=exec_id_full,
                    )
                wait = waits[0]
                if form.get("action") == "abort":
                    executions.abort_wait(exec_id_full, wait=wait.name)
                    return done(request, exec_id_full, "wait aborted")
                if form.get("__json__"):
                    value = form.get("value")  # a JSON body gives the value itself
                else:
                    value = value_from_form(wait.schema, form)
                executions.input(exec_id_full, wait=wait.name, value=value)
                return done(request, exec_id_full, f"answered {wait.name}")
            except FormError as exc:
                return refused(
                    request,
                    exec_id,
                    "Some fields are not valid; correct them and answer again.",
                    400,
                    field_errors=exc.errors,
                    values=form,
                )
            except KitaruError as exc:
                extra = {} if wants_json(request) else {"values": form}
                return refused(request, exec_id, str(exc), _status_of(exc), **extra)

        return await run_in_threadpool(act)

    async def replay(request: Request) -> Response:
        form = await form_of(request)
        if isinstance(form, Response):
            return form
        exec_id = request.path_params["exec_id"]

        def act() -> Response:
            overrides_raw = form.get("overrides") or "{}"
            replay_values = {"from": str(form.get("from", "")), "overrides": str(overrides_raw)}
            extra = {} if wants_json(request) else {"replay_values": replay_values}
            if isinstance(overrides_raw, dict):
                overrides: Any = overrides_raw
            else:
                try:
                    overrides = json.loads(overrides_raw)
                except json.JSONDecodeError as exc:
                    message = f"Overrides are not valid JSON ({exc.msg}); correct them."
                    return refused(request, exec_id, message, 400, **extra)
            if not isinstance(overrides, dict):
                message = 'Overrides must be a JSON object: {"checkpoint.NAME": value, ...}.'
                return refused(request, exec_id, message, 400, **extra)
            from_ = str(form.get("from") or "").strip()
            if not from_:
                return refused(request, exec_id, "Choose the call to replay from.", 400, **extra)
            try:
                new = client.executions.replay(
                    exec_id, from_=from_, overrides=overrides or None, background=True
                )
            except KitaruError as exc:
                return refused(request, exec_id, str(exc), _status_of(exc), **extra)
            return done(request, new.exec_id, f"replay of {exec_id} from {from_}")

        return await run_in_threadpool(act)

    def act_html(request: Request) -> str:
        detail = detail_data(request)
        return _html.act_page(detail, csrf)

    def session(request: Request) -> Response:
        """What a program needs to post as the dashboard does: the CSRF value."""
        return JSONResponse({"csrf": csrf})

    static = StaticFiles(directory=str(files("kitaru.ui") / "static"))
    routes = [
        Route("/", page(lambda r: _html.executions_page(executions_data(r), csrf))),
        Route("/flows", page(lambda r: _html.flows_page(_data.flow_stats(snapshots), csrf))),
        Route("/executions/{exec_id}", page(execution_html)),
        Route(
            "/executions/{exec_id}/logs",
            page(lambda r: _html.logs_page(logs_data(r), csrf)),
        ),
        Route("/executions/{exec_id}/act", page(act_html)),
        Route("/executions/{exec_id}/input", answer, methods=["POST"]),
        Route("/executions/{exec_id}/replay", replay, methods=["POST"]),
        *(
            Route(f"/executions/{{exec_id}}/{name}", lifecycle(name), methods=["POST"])
            for name in ("cancel", "resume", "retry")
        ),
        Route("/partials/executions", executions_partial),
        Route("/partials/executions/{exec_id}", execution_partial),
        Route("/partials/executions/{exec_id}/logs", logs_partial),
        Route("/api/session", session),
        Route("/api/executions", api(executions_data)),
        Route("/api/flows", api(lambda r: _data.flow_stats(snapshots))),
        Route("/api/executions/{exec_id}", api(detail_data)),
        Route("/api/executions/{exec_id}/calls/{call}", api(call_data)),
        Route("/api/executions/{exec_id}/logs", api(logs_data)),
        Route("/api/executions/{exec_id}/input", answer, methods=["POST"]),
        Route("/api/executions/{exec_id}/replay", replay, methods=["POST"]),
        *(
            Route(f"/api/executions/{{exec_id}}/{name}", lifecycle(name), methods=["POST"])
            for name in ("cancel", "resume", "retry")
        ),
        Route("/favicon.ico", lambda r: Response(status_code=204)),
        Mount("/static", app=static, name="static"),
    ]
    return Starlette(routes=routes, middleware=[Middleware(AccessGuard, credentials=credentials)])
