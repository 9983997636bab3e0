"""``GET /api/ui``: the status page, one self-contained HTML file (``triggers/ui/status.html``).

The page shows only what the HTTP API answers (``GET /api/batches``, ``GET /api/batches/{id}``,
``POST .../cancel``, ``POST .../rerun``), fetched by its own script with the function key as
the ``x-functions-key`` header. The key may come as ``?code=`` (a browser cannot send a
header when opening a page): the script keeps it in memory only and removes it from the
address bar and the history entry (``history.replaceState``); nothing on the page links with it.

Each answer gets a fresh nonce: the Content-Security-Policy runs only the page's own inline
script and style carrying it (an injected ``<script>`` or event handler does not run, no
image or frame loads) and lets the script talk to this origin only.
"""

from __future__ import annotations

import functools
import secrets
from pathlib import Path

import azure.functions as func

from triggers.blueprint import bp

PAGE = Path(__file__).with_name("ui") / "status.html"
NONCE = "{{nonce}}"


@functools.cache
def _template() -> str:
    return PAGE.read_text(encoding="utf-8")


def content_security_policy(nonce: str) -> str:
    return (f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
            "connect-src 'self'; img-src 'none'; base-uri 'none'; form-action 'none'; "
            "frame-ancestors 'none'")


@bp.route(route="ui", methods=["GET"])
def status_page(req: func.HttpRequest) -> func.HttpResponse:
    """The status page (HTML); same function-key auth as the API."""
    nonce = secrets.token_urlsafe(18)
    return func.HttpResponse(
        _template().replace(NONCE, nonce), status_code=200, mimetype="text/html",
        charset="utf-8",
        headers={"Content-Security-Policy": content_security_policy(nonce),
                 # the address may hold ?code=: never send it on, never keep the page
                 "Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
                 "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY"})
