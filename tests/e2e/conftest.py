"""Real headless Chromium (Debian ``chromium``) driven by Playwright against a real service on a
real anvil. Playwright's own browser download is never used: the tests launch /usr/bin/chromium
and FAIL (not skip) when it is missing — ``make dev`` installs it (``browser-tools``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, Playwright, sync_playwright

from tests.ledger_api.api.conftest import service  # noqa: F401  (the module-scoped real service)

CHROMIUM = Path("/usr/bin/chromium")
#: The flags that work on these machines (closed network: no background connections at all).
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    """The Playwright driver (no browser of its own)."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (make browser-tools)")
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowserContext]:
    """Chromium with a fresh, empty user-data-dir (one per test module)."""
    context = playwright.chromium.launch_persistent_context(
        str(tmp_path_factory.mktemp("chromium-profile")), executable_path=str(CHROMIUM), headless=True,
        args=CHROMIUM_ARGS, accept_downloads=True,
    )  # fmt: skip
    context.set_default_timeout(15_000)
    yield context
    context.close()


@pytest.fixture
def page(browser: BrowserContext) -> Iterator[Page]:
    """A new tab (its own sessionStorage, so its own sign-in); fails the test on a page error or a
    Content-Security-Policy violation."""
    tab = browser.new_page()
    problems: list[str] = []
    tab.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    tab.on("console", lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None)
    yield tab
    tab.close()
    assert not problems, problems
