"""Web pages served by the API: verify a document, a trader's declarations, the latest audit report.

Plain HTML, CSS and small vanilla ES modules shipped as package data (``ledger_api/api/web/``): no
build step, no external resources. Every page and asset goes out with a strict Content-Security-Policy
(same-origin scripts, styles and fetches only; no inline script; no framing). The pages hold no
data of their own: after sign-in with an API token (kept in ``sessionStorage``) they call the same
``/v1`` routes as any client, so authorization stays server-side, per object. See docs/web.md.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import Response
from starlette.exceptions import HTTPException

__all__ = ["CONTENT_SECURITY_POLICY", "PAGES", "SECURITY_HEADERS", "asset_names", "router"]

router = APIRouter(tags=["web"], include_in_schema=False)

#: Same origin only: scripts, styles, images and fetches; nothing inline, no plugins, no framing.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
#: Headers on every page and static asset.
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-cache",
}
#: URL path → page file under ``web/``.
PAGES = {"/": "index.html", "/verify": "verify.html", "/trader": "trader.html", "/auditor": "auditor.html"}
_MEDIA_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}

AssetName = Annotated[str, Path(pattern=r"^[a-z][a-z0-9-]*\.(css|js)$", description="a static asset")]


def _web_dir() -> resources.abc.Traversable:
    return resources.files("ledger_api.api").joinpath("web")


@cache
def asset_names() -> tuple[str, ...]:
    """Every static asset the service serves (file names under ``web/static/``; read once)."""
    return tuple(
        sorted(
            f.name for f in _web_dir().joinpath("static").iterdir() if f.is_file() and f.name.endswith((".css", ".js"))
        )
    )


@cache
def _read(relative: str) -> bytes:
    return _web_dir().joinpath(relative).read_bytes()


def _page(name: str) -> Response:
    return Response(_read(name), media_type="text/html; charset=utf-8", headers=SECURITY_HEADERS)


@router.get("/", summary="Start page")
async def index_page() -> Response:
    """Links to the three pages and how to sign in."""
    return _page(PAGES["/"])


@router.get("/verify", summary="Verification page")
async def verify_page() -> Response:
    """Drop a file (hashed in the browser) or paste a sha256 / CID → verdict, issuer, timeline."""
    return _page(PAGES["/verify"])


@router.get("/trader", summary="Trader page")
async def trader_page() -> Response:
    """The signed-in trader's own declarations with their timelines."""
    return _page(PAGES["/trader"])


@router.get("/auditor", summary="Auditor page")
async def auditor_page() -> Response:
    """The latest replay report, for auditor keys."""
    return _page(PAGES["/auditor"])


@router.get("/static/{name}", summary="Static asset")
async def static_asset(name: AssetName) -> Response:
    """A stylesheet or script module of the pages; 404 for anything not shipped."""
    if name not in asset_names():
        raise HTTPException(status_code=404, detail="Not found")
    suffix = name[name.rindex(".") :]
    return Response(_read(f"static/{name}"), media_type=_MEDIA_TYPES[suffix], headers=SECURITY_HEADERS)
