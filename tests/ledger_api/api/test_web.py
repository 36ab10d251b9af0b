"""Web pages: a strict CSP on every page and asset, nothing external or inline, labelled inputs."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from ledger_api.api.app import create_app
from ledger_api.api.routes.web import CONTENT_SECURITY_POLICY, PAGES, asset_names

#: Anything that would make a browser fetch from elsewhere (absolute or protocol-relative URLs, CSS imports).
_EXTERNAL = re.compile(r"(?i)(https?:)?//[a-z0-9-]+(\.[a-z0-9-]+)+|@import|url\(\s*['\"]?(https?:|//)")
_INLINE_HANDLER = re.compile(r"(?i)<[^>]*\son[a-z]+\s*=")


def test_pages_and_assets_are_served_with_a_strict_csp() -> None:
    client = TestClient(create_app())
    for path in [*PAGES, *(f"/static/{name}" for name in asset_names())]:
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
    assert "default-src 'none'" in CONTENT_SECURITY_POLICY and "'unsafe-inline'" not in CONTENT_SECURITY_POLICY
    assert client.get("/verify").headers["content-type"].startswith("text/html")
    assert client.get("/static/common.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/static/style.css").headers["content-type"].startswith("text/css")
    for missing in ("/static/nothing.js", "/static/app.py", "/static/..%2Fapp.py", "/static/web.html"):
        assert client.get(missing).status_code in (404, 422), missing


def test_no_served_asset_loads_anything_external_or_inline() -> None:
    client = TestClient(create_app())
    referenced: set[str] = set()
    for path in PAGES:
        html = client.get(path).text
        assert not _EXTERNAL.search(html), path
        assert not _INLINE_HANDLER.search(html) and " style=" not in html, path
        for script in re.findall(r"<script\b([^>]*)>(.*?)</script>", html, flags=re.S):
            assert 'src="/static/' in script[0] and not script[1].strip(), f"inline script in {path}"
        referenced |= set(re.findall(r'(?:src|href)="(/static/[^"]+)"', html))
        assert re.search(r'<html lang="en">', html) and "<main" in html and "<h1>" in html
    assert referenced and all(client.get(p).status_code == 200 for p in referenced)
    for name in asset_names():
        body = client.get(f"/static/{name}").text
        assert not _EXTERNAL.search(body), name
        assert "innerHTML" not in body and "eval(" not in body, name
        for imported in re.findall(r'from "(\./[^"]+)"', body):
            assert imported.removeprefix("./") in asset_names(), imported


def test_every_input_has_a_label_and_the_verdict_is_announced() -> None:
    client = TestClient(create_app())
    for path in PAGES:
        html = client.get(path).text
        labelled = set(re.findall(r'<label for="([^"]+)"', html))
        inputs = set(re.findall(r'<input id="([^"]+)"', html))
        assert inputs <= labelled, (path, inputs - labelled)
    verify = client.get("/verify").text
    assert 'id="verdict" role="status" aria-live="polite"' in verify
    assert 'id="drop-zone" class="drop-zone" tabindex="0" role="button"' in verify and 'type="file"' in verify
    assert "never leaves this computer" in verify
