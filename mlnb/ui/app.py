"""The ``mlnb ui`` web application (FastAPI): pages from :class:`~mlnb.ui.site.Site`, rendered
with Jinja2 on the server.

Safety:

- Pages are read-only. Promote and rollback exist only when the app has a write token, and a
  POST must carry it (form field ``token`` or ``Authorization: Bearer``); otherwise 403 and
  nothing changes. A move is recorded in the registry with ``caused_by="ui:<user>"``.
- With a read token every request must carry it: ``?token=`` once (it becomes an HttpOnly,
  SameSite=Strict cookie), the cookie, or ``Authorization: Bearer``.
- Notebook HTML and artifacts are untrusted: served under ``/raw/`` with
  :data:`mlnb.ui.report.NOTEBOOK_CSP` (an opaque-origin sandbox, no network), shown in an
  iframe without ``allow-same-origin``. The UI's own pages run no script at all.
"""

from __future__ import annotations

import mimetypes
import time
from pathlib import Path
from urllib.parse import parse_qs, urlencode

from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from mlnb import records
from mlnb.exceptions import MlnbError
from mlnb.guard import DEFAULT_UI_MAX_REQUEST_BYTES, RequestGuard, same_token
from mlnb.ui.links import Links
from mlnb.ui.render import STATIC, render
from mlnb.ui.report import NOTEBOOK_CSP
from mlnb.ui.site import NotFound, Site

COOKIE = "mlnb_ui_token"
#: The UI's own pages: styles and images from itself, frames only of its own /raw/ paths, no script.
PAGE_CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; frame-src 'self'; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
UNTRUSTED_HEADERS = {
    "Content-Security-Policy": NOTEBOOK_CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def create_app(store, read_token: str | None = None, write_token: str | None = None, sync: bool = True,
               max_request_bytes: int = DEFAULT_UI_MAX_REQUEST_BYTES) -> FastAPI:
    """The application over one store.

    Args:
        store: a Store or its path.
        read_token: when set, every request must carry it.
        write_token: when set, promote and rollback are offered and need it.
        sync: keep the index up to date with new runs from a background thread.
        max_request_bytes: a larger request body is answered 413 before any page reads it.
    """
    site = Site(store, write_enabled=bool(write_token))
    if sync:
        site.sync_forever()
    links = Links("/")
    app = FastAPI(title="mlnb ui", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.site = site

    def page(template: str, context: dict, status: int = 200) -> HTMLResponse:
        return HTMLResponse(render(template, context, links, site), status_code=status,
                            headers={"Content-Security-Policy": PAGE_CSP, "X-Content-Type-Options": "nosniff",
                                     "Referrer-Policy": "same-origin"})

    def error_page(status: int, heading: str, message: str, back: str | None = None,
                   back_label: str | None = None) -> HTMLResponse:
        return page("error.html", {"title": heading, "heading": heading, "message": message, "back": back,
                                   "back_label": back_label}, status)

    @app.middleware("http")
    async def guard(request: Request, call_next):
        t0 = time.perf_counter()
        if read_token is not None:
            given = request.query_params.get("token")
            if given is not None and same_token(given, read_token):
                query = urlencode([(k, v) for k, v in request.query_params.multi_items() if k != "token"])
                response = RedirectResponse(request.url.path + (f"?{query}" if query else ""), status_code=303)
                response.set_cookie(COOKIE, read_token, httponly=True, samesite="strict", path="/")
                return response
            auth = request.headers.get("authorization", "")
            offered = request.cookies.get(COOKIE) or (auth[7:] if auth.lower().startswith("bearer ") else None)
            if not same_token(offered, read_token):
                return error_page(401, "Token needed",
                                  "this mlnb ui needs its read token: open the address that 'mlnb ui' printed "
                                  "(it ends in ?token=…)")
        response = await call_next(request)
        response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - t0) * 1000:.1f}"
        return response

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound):
        path = request.url.path
        if path.startswith("/models"):
            return error_page(404, "Not found", str(exc), links.models(), "the models")
        return error_page(404, "Not found", str(exc), links.runs(), "the runs")

    @app.exception_handler(404)
    async def no_route(request: Request, exc):
        return error_page(404, "Not found", f"no page at {request.url.path}")

    @app.get("/", include_in_schema=False)
    def index():
        return RedirectResponse(links.runs(), status_code=307)

    @app.get("/static/{name}")
    def static(name: str):
        path = STATIC / name
        if "/" in name or not path.is_file():
            raise NotFound(f"no static file {name!r}")
        return Response(path.read_bytes(), media_type=mimetypes.guess_type(name)[0] or "application/octet-stream",
                        headers={"Cache-Control": "max-age=3600"})

    @app.get("/runs")
    def runs(filter: str | None = None, sort: str | None = None, order: str | None = None,
             number: str = Query("1", alias="page")):
        template, context = site.runs_page(filter, sort, order, int(number) if number.isdigit() else 1, links=links)
        return page(template, context, 400 if context["error"] else 200)

    @app.get("/runs/{run_id}")
    def run(run_id: str):
        return page(*site.run_page(run_id, links=links))

    @app.get("/raw/runs/{run_id}/{what}.html")
    def raw(run_id: str, what: str):
        if what == "report":
            body = site.report(run_id)
        elif what == "notebook":
            path = site.run(run_id).html_path
            if not path.is_file():
                raise NotFound(f"run {run_id} has no notebook.html")
            body = path.read_text(encoding="utf-8")
        else:
            raise NotFound(f"no view {what!r} of a run; there are 'report' and 'notebook'")
        return HTMLResponse(body, headers=UNTRUSTED_HEADERS)

    @app.get("/raw/runs/{run_id}/artifacts/{path:path}")
    def artifact(run_id: str, path: str):
        run = site.run(run_id)
        listed = {a["path"] for a in run.record.get("artifacts") or []}
        base = (run.path / records.ARTIFACTS_DIR).resolve()
        target = (base / path).resolve()
        if path not in listed or base not in target.parents:
            raise NotFound(f"run {run.id} has no artifact {path!r}")
        media = mimetypes.guess_type(path)[0] or "application/octet-stream"
        headers = dict(UNTRUSTED_HEADERS)
        if not media.startswith("image/") or media == "image/svg+xml":
            headers["Content-Disposition"] = f'attachment; filename="{Path(path).name}"'
        return Response(target.read_bytes(), media_type=media, headers=headers)

    @app.get("/compare")
    def compare(request: Request):
        ids = request.query_params.getlist("run")
        parent = request.query_params.get("parent")
        if not ids and not parent:
            return error_page(400, "Nothing to compare", "select runs on the runs page, then press 'Compare selected'")
        return page(*site.compare_page(ids, parent, links=links))

    @app.get("/models")
    def models():
        return page(*site.models_page(links=links))

    @app.get("/models/{name}")
    def model(name: str):
        return page(*site.model_page(name, links=links))

    @app.get("/models/{name}/versions/{version}")
    def version(name: str, version: str):
        if not version.isdigit():
            raise NotFound(f"version {version!r} of model {name!r}: versions are whole numbers 1, 2, 3…")
        return page(*site.version_page(name, int(version), links=links))

    @app.get("/models/{name}/monitor")
    def monitor_model(name: str):
        return page(*site.monitor_page(name, links=links))

    @app.get("/monitor")
    def monitor():
        return page(*site.monitor_page(None, links=links))

    async def _form(request: Request) -> dict[str, str]:
        body = (await request.body()).decode("utf-8", "replace")
        return {k: v[-1] for k, v in parse_qs(body, keep_blank_values=True).items()}

    def _authorised(request: Request, form: dict) -> str | None:
        """Why a write is refused, or None."""
        if write_token is None:
            return "this mlnb ui is read-only: start it with --write-token-file FILE to promote or roll back"
        auth = request.headers.get("authorization", "")
        given = form.get("token") or (auth[7:] if auth.lower().startswith("bearer ") else "")
        if not given or not same_token(given, write_token):
            return "the write token is missing or wrong; nothing was changed"
        return None

    @app.post("/models/{name}/{action}")
    async def move(name: str, action: str, request: Request):
        from mlnb.registry import Registry, default_actor

        if action not in ("promote", "rollback"):
            raise NotFound(f"no action {action!r}; there are promote and rollback")
        form = await _form(request)
        refused = _authorised(request, form)
        if refused:
            return error_page(403, "Not allowed", refused, links.model(name), f"model {name}")
        site._versions(name)  # 404 for an unknown model
        reason = (form.get("reason") or "").strip()
        alias = (form.get("alias") or "production").strip()
        if not reason:
            return error_page(400, "A reason is needed", "say why the alias moves; nothing was changed",
                              links.model(name), f"model {name}")
        try:
            with Registry(site.store) as registry:
                if action == "promote":
                    registry.promote(name, form.get("version", ""), alias=alias, reason=reason,
                                     caused_by=default_actor("ui"))
                else:
                    registry.rollback(name, alias=alias, reason=reason, caused_by=default_actor("ui"))
        except MlnbError as exc:
            return error_page(400, f"Cannot {action}", str(exc), links.model(name), f"model {name}")
        return RedirectResponse(links.model(name), status_code=303)

    app.add_middleware(RequestGuard, max_bytes=max_request_bytes)  # outside the token check: no body is read
    return app
