"""The HTTP front of devhost: HTTP-triggered functions under ``/api/`` and the durable API.

Auth levels behave as on the host: ``anonymous`` is open; ``function`` and ``admin`` need the
master key as ``?code=`` or header ``x-functions-key`` (401 otherwise). The access log is off:
URLs can carry ``code=`` and secrets never reach the logs.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import re
from typing import Any
from urllib.parse import urlsplit

import azure.functions as func
from aiohttp import web

from devhost.durable.client_api import RPC_PREFIX, WEBHOOK_PREFIX, ClientApi
from devhost.indexer import FunctionInfo, invoke

log = logging.getLogger("devhost.http")


def has_key(request: web.Request, master_key: str) -> bool:
    """True when the request carries the master key (query ``code`` or ``x-functions-key``)."""
    given = request.query.get("code") or request.headers.get("x-functions-key") or ""
    return hmac.compare_digest(given.encode(), master_key.encode())


def route_path(route: str, prefix: str) -> str:
    """Host route template → aiohttp path: drop constraints (``{id:int}``, ``{x?}``), catch-all."""
    def convert(match: re.Match[str]) -> str:
        inner = match.group(1)
        if inner.startswith("*"):
            return "{" + inner[1:].split(":")[0] + ":.*}"
        return "{" + inner.split(":")[0].rstrip("?") + "}"

    path = re.sub(r"\{([^}]+)\}", convert, route.strip("/"))
    return f"/{prefix}/{path}" if prefix else f"/{path}"


def build_app(functions: list[FunctionInfo], client_api: ClientApi, master_key: str,
              route_prefix: str = "api") -> web.Application:
    """The aiohttp application serving the app's HTTP functions and the durable API."""
    app = web.Application(client_max_size=256 * 1024 * 1024)
    for info in functions:
        if info.trigger_type != "httpTrigger":
            continue
        path = route_path(info.trigger.get("route") or info.name, route_prefix)
        methods = [m.upper() for m in (info.trigger.get("methods") or ["GET", "POST"])]
        handler = _function_handler(info, client_api, master_key)
        for method in methods:
            app.router.add_route(method, path, handler)
    client_api.add_routes(app, RPC_PREFIX)
    own = own_hosts(client_api.base_url)

    @web.middleware
    async def webhook_auth(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith(WEBHOOK_PREFIX) and not has_key(request, master_key):
            return web.Response(status=401)
        if request.path == RPC_PREFIX or request.path.startswith(RPC_PREFIX + "/"):
            refused = rpc_refusal(request, own)
            if refused is not None:
                log.warning("refused %s %s: %s", request.method, request.path, refused.reason)
                return refused
        return await handler(request)

    app.middlewares.append(webhook_auth)
    client_api.add_routes(app, WEBHOOK_PREFIX)
    return app


def own_hosts(base_url: str) -> set[str]:
    """The ``host:port`` names devhost answers to on loopback (for ``Host`` and ``Origin``)."""
    port = urlsplit(base_url).port
    return {f"{name}:{port}" for name in ("127.0.0.1", "localhost", "[::1]")}


def rpc_refusal(request: web.Request, own: set[str]) -> web.Response | None:
    """Why a request to the keyless RPC endpoint is refused, or ``None`` to serve it.

    The host's RPC endpoint is for the worker's own client. devhost, being keyless there, also
    keeps out what a web page in the developer's browser can send without a CORS preflight
    (simple requests: ``text/plain`` or form bodies, or no body, with an ``Origin``), and pages
    reaching it through DNS rebinding (a foreign ``Host``):

    - the peer must be a loopback address (403);
    - ``Host`` must be devhost's own ``127.0.0.1|localhost|[::1]:<port>`` (403);
    - an ``Origin`` header, if any, must be devhost's own ``http://`` origin (403);
    - a body must be ``application/json`` (415). The Durable SDK sends JSON, or no body
      (terminate, start without input; aiohttp then says ``application/octet-stream``), and a
      browser sends ``Origin`` with every POST, so an empty cross-site POST is refused above.
    """
    remote = request.remote or ""
    try:
        loopback = ipaddress.ip_address(remote.split("%", 1)[0]).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        return web.Response(status=403, reason="not a loopback peer")
    if request.host not in own:
        return web.Response(status=403, reason="not devhost's host name")
    origin = request.headers.get("Origin")
    if origin is not None and origin not in {f"http://{host}" for host in own}:
        return web.Response(status=403, reason="foreign origin")
    has_body = request.body_exists or (request.content_length or 0) > 0
    if has_body and request.content_type != "application/json":
        return web.Response(status=415, reason="only application/json is accepted")
    return None


def _function_handler(info: FunctionInfo, client_api: ClientApi, master_key: str) -> Any:
    level = str(info.trigger.get("authLevel") or "function").lower()

    async def handle(request: web.Request) -> web.StreamResponse:
        if level != "anonymous" and not has_key(request, master_key):
            return web.Response(status=401)
        req = func.HttpRequest(
            method=request.method, url=str(request.url), headers=dict(request.headers),
            params=dict(request.query), route_params=dict(request.match_info),
            body=await request.read())
        kwargs: dict[str, Any] = {info.arg_name: req}
        if info.client_binding:
            kwargs[info.client_binding] = client_api.binding_json()
        try:
            result = await invoke(info, kwargs)
        except Exception as exc:
            log.error("function %s failed: %s", info.name, exc)
            return web.Response(status=500)
        return to_response(result)

    return handle


def to_response(result: Any) -> web.Response:
    """``func.HttpResponse`` (or a str/bytes/None return) → aiohttp response."""
    if isinstance(result, func.HttpResponse):
        headers = {k: v for k, v in result.headers.items() if k.lower() != "content-type"}
        content_type = result.headers.get("Content-Type") or result.mimetype or "text/plain"
        if "charset" not in content_type and content_type.startswith(("text/", "application/j")):
            content_type += f"; charset={result.charset or 'utf-8'}"
        return web.Response(status=result.status_code, body=result.get_body(), headers={
            **headers, "Content-Type": content_type})
    if result is None:
        return web.Response(status=204)
    body = result if isinstance(result, bytes) else str(result).encode()
    return web.Response(status=200, body=body)
