"""The web page at ``/``: chat, profile and taste edits, in plain HTML, CSS and JavaScript.

The files live in ``tastelens/api/web/`` and ship in the wheel (package data); nothing is
loaded from the Internet, and the Content-Security-Policy below says so to the browser
(``'self'`` only), so a stray external URL fails loudly in the browser tests instead of
working only while the machine happens to be online.

The page itself holds no data, so it is served without the API key (like /docs); every
call it makes goes to the ``/v1`` routes under the API's own access rule
(:mod:`tastelens.api.access`): when the server answers 401, or 403 for a token of another
user, the page asks for the user's access token (``tastelens token issue``) or the operator
key and sends it as ``Authorization: Bearer`` — kept in the tab's ``sessionStorage``, a
user's token under that user's id, never in the URL.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

WEB_DIR = Path(__file__).resolve().parent / "web"
ASSETS = {"app.js": "text/javascript", "style.css": "text/css", "favicon.svg": "image/svg+xml"}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}

page = APIRouter(include_in_schema=False)


@page.get("/")
@page.head("/")
async def index() -> FileResponse:
    """The page."""
    return FileResponse(WEB_DIR / "index.html", media_type="text/html; charset=utf-8",
                        headers=_HEADERS)


@page.get("/web/{name}")
@page.head("/web/{name}")
async def asset(name: str) -> FileResponse:
    """The page's script, style sheet and icon (a fixed list: nothing else is served)."""
    media = ASSETS.get(name)
    if media is None:
        raise StarletteHTTPException(404, f"no such page asset {name!r}")
    return FileResponse(WEB_DIR / name, media_type=media, headers=_HEADERS)
