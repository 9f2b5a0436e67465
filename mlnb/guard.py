"""What mlnb's HTTP apps (``mlnb serve``, ``mlnb ui``) check before a handler runs: the size
of a request's body and, when a token is set, its bearer token.

:class:`RequestGuard` is plain ASGI middleware, so it sees a body before any handler reads
it: a ``Content-Length`` above the limit is answered 413 at once, and a body sent without
one (chunked) is counted while it streams and answered 413 as soon as it passes the limit,
without reading the rest. A token is compared in constant time (:func:`hmac.compare_digest`
on bytes). Nothing here imports Starlette or FastAPI.
"""

from __future__ import annotations

import hmac
import json
from pathlib import Path
from typing import Any, Awaitable, Callable

from mlnb.exceptions import ParameterError

#: Largest request body ``mlnb serve`` reads (``--max-request-bytes``): ample for its
#: ``--max-rows`` default of rows of a few dozen features.
DEFAULT_SERVE_MAX_REQUEST_BYTES = 10 * 1024 * 1024
#: Largest request body ``mlnb ui`` reads: its only bodies are the promote and rollback forms.
DEFAULT_UI_MAX_REQUEST_BYTES = 64 * 1024

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]


class _TooLarge(Exception):
    """Raised into the app when a streamed body passes the limit; the guard answers 413."""


def _too_large(exc: BaseException) -> bool:
    """Whether ``exc`` is :class:`_TooLarge`, alone or as all an exception group holds
    (Starlette's ``BaseHTTPMiddleware`` runs the app in a task group)."""
    if isinstance(exc, BaseExceptionGroup):
        return all(_too_large(e) for e in exc.exceptions)
    return isinstance(exc, _TooLarge)


def check_max_bytes(value: Any, option: str = "max_request_bytes") -> int:
    """``value`` as a request-size limit (a whole number of bytes >= 1), or ParameterError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ParameterError(f"{option} == {value!r}, must be a whole number of bytes >= 1", name=option)
    return value


def project_max_request_bytes(default: int) -> int:
    """``http.max_request_bytes`` of the project's ``mlnb.yaml`` (found from the working
    directory up), else ``default``."""
    from mlnb.config import find_config, load_config

    path = find_config()
    if path is None:
        return default
    return load_config(path).http.max_request_bytes or default


def read_token(path: str | None, option: str = "--token-file") -> str | None:
    """The token in a file (surrounding whitespace removed), or None without a file.

    Raises:
        ParameterError: the file cannot be read, is not UTF-8 text, or holds no token.
    """
    if path is None:
        return None
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ParameterError(f"{option} {str(path)!r}: cannot read it ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise ParameterError(f"{option} {str(path)!r} is not UTF-8 text; write the token as text") from None
    if not token:
        raise ParameterError(f"{option} {str(path)!r} is empty; write a token (any secret text) into it")
    return token


def same_token(given: str | bytes | None, expected: str) -> bool:
    """Whether ``given`` is ``expected``, in time that does not depend on where they differ
    (any text: compared as UTF-8 bytes, so a non-ASCII guess is a wrong token, not an error)."""
    if given is None:
        return False
    if isinstance(given, str):
        given = given.encode("utf-8", "surrogateescape")
    return hmac.compare_digest(given, expected.encode("utf-8"))


def bearer(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """The token of an ``Authorization: Bearer TOKEN`` header, or None."""
    for key, value in headers:
        if key.lower() == b"authorization" and value[:7].lower() == b"bearer ":
            return value[7:].strip()
    return None


async def _reply(send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close"), *headers]})
    await send({"type": "http.response.body", "body": body})


class RequestGuard:
    """ASGI middleware: 413 for a body over ``max_bytes``; 401 without ``token`` when one is set.

    Args:
        app: the ASGI app to guard.
        max_bytes: the largest body read, in bytes.
        token: when set, every request but those to ``open_paths`` must carry
            ``Authorization: Bearer TOKEN``.
        open_paths: paths answered without the token (a load balancer's health probe).
    """

    def __init__(self, app, max_bytes: int, token: str | None = None, open_paths: tuple[str, ...] = ()):
        self.app = app
        self.max_bytes = check_max_bytes(max_bytes)
        self.token = token
        self.open_paths = tuple(open_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers") or []
        if self.token is not None and scope.get("path") not in self.open_paths:
            if not same_token(bearer(headers), self.token):
                await _reply(send, 401, "this server needs its token: send 'Authorization: Bearer TOKEN'",
                             [(b"www-authenticate", b'Bearer realm="mlnb"')])
                return
        declared = next((v for k, v in headers if k.lower() == b"content-length"), None)
        if declared is not None:
            if not declared.strip().isdigit():
                await _reply(send, 400, "Content-Length is not a whole number")
                return
            if int(declared) > self.max_bytes:
                await _reply(send, 413, self._too_large())
                return
        counted = 0
        started = False

        async def limited_receive() -> dict:
            nonlocal counted
            message = await receive()
            if message["type"] == "http.request":
                counted += len(message.get("body", b""))
                if counted > self.max_bytes:
                    raise _TooLarge()
            return message

        async def tracked_send(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracked_send)
        except BaseException as exc:
            if not _too_large(exc):
                raise
            if not started:  # else a handler answered before reading all of its body: nothing to add
                await _reply(send, 413, self._too_large())

    def _too_large(self) -> str:
        return f"the request body is larger than this server's limit of {self.max_bytes} bytes"
