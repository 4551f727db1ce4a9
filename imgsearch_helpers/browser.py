"""Headless Chromium (Debian's package, driven by Playwright) for pages that must really render.

Used by the Feder tests and by the notebook runner, which saves screenshots of Feder's live views
into the committed notebooks. Pages are opened from files with every http(s) request refused,
so what renders is what works offline.
"""
from __future__ import annotations

import re
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .config import Settings, get_settings
from .errors import BrowserUnavailable

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-quic", "--disable-sync"]
NETWORK = re.compile(r"^(https?|wss?)://")


def chromium_path(settings: Settings | None = None) -> Path:
    """settings.chromium (IMGSEARCH_CHROMIUM), else `chromium` on the PATH (Debian: apt-get install chromium)."""
    settings = settings or get_settings()
    found = settings.chromium or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found or not Path(found).exists():
        raise BrowserUnavailable("no Chromium found: install it (Debian: apt-get install chromium) "
                                 "or set IMGSEARCH_CHROMIUM to its executable")
    return Path(found)


@contextmanager
def headless_chromium():
    """A Playwright browser on the system's Chromium (never a downloaded one)."""
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(executable), args=FLAGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def outside_event_loop(fn, *args):
    """Run `fn` on a thread of its own: Playwright's sync API refuses to run where an asyncio loop
    is running, as in a notebook kernel."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(fn, *args).result()


@dataclass
class OfflinePage:
    """A page opened with the network refused, and what went wrong on it."""

    page: object
    errors: list[str] = field(default_factory=list)  # console errors and uncaught exceptions
    refused: list[str] = field(default_factory=list)  # URLs the page tried to fetch


def open_offline(browser, path: Path, width: int = 1100, height: int = 800) -> OfflinePage:
    context = browser.new_context(viewport={"width": width, "height": height}, device_scale_factor=1)
    opened = OfflinePage(context.new_page())

    def refuse(route):
        opened.refused.append(route.request.url)
        route.abort()

    context.route(NETWORK, refuse)
    opened.page.on("console", lambda message: opened.errors.append(message.text) if message.type == "error" else None)
    opened.page.on("pageerror", lambda error: opened.errors.append(str(error)))
    opened.page.goto(Path(path).resolve().as_uri())
    return opened


def wait_until_still(page, selector: str, timeout_s: float = 90.0, every_s: float = 1.0) -> bool:
    """Wait until the canvases inside `selector` stop changing (an animation has ended).

    Returns False if they were still changing after `timeout_s`.
    """
    import time

    probe = """(selector) => [...document.querySelectorAll(selector + ' canvas')]
        .map((c) => { const d = c.toDataURL('image/jpeg', 0.3); return d.length + ':' + d.slice(-64); }).join('|')"""
    deadline, last = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        frame = page.evaluate(probe, selector)
        if frame and frame == last:
            return True
        last = frame
        time.sleep(every_s)
    return False
