"""Saved notebooks keep screenshots of Feder's views, not the live views' data.

A live Feder view needs the index, the thumbnails and Feder's script on the page: megabytes per
index. When the runner saves an executed notebook, each view is drawn once more in headless
Chromium (with the network refused) and its output replaced by a JPEG screenshot; the data
outputs shrink to their one-line description. Running the notebook brings the live views back.
"""
from __future__ import annotations

import base64
import tempfile
from pathlib import Path

from ..browser import headless_chromium, open_offline, wait_until_still
from ..errors import BrowserUnavailable, RenderError, UsageError

DATA_NOTE = " (sent to the page when the notebook runs; left out of the saved notebook)"
STILL_TIMEOUT_S = 120
VIEW_NOTE = " (screenshot of the live view, taken in headless Chromium when the notebook was run)"


def feder_outputs(notebook) -> tuple[dict, list]:
    """The data outputs by key, and the (output, key) of each view, in notebook order."""
    data, views = {}, []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            tag = output.get("metadata", {}).get("text/html", {}).get("imgsearch_feder")
            if not tag:
                continue
            if tag["role"] == "data":
                data[tag["key"]] = output
            elif tag["role"] == "view":
                views.append((output, tag["key"]))
    return data, views


def snapshot_feder_outputs(notebook) -> str:
    """Replace Feder's live outputs in an executed notebook by screenshots; says what it did."""
    data, views = feder_outputs(notebook)
    if not data and not views:
        return "no Feder views"
    try:
        shots = screenshots({key: _html(out) for key, out in data.items()}, [(_html(out), key) for out, key in views])
        summary = f"{len(shots)} Feder views saved as screenshots"
    except BrowserUnavailable as exc:
        shots, summary = [None] * len(views), f"Feder views not saved as screenshots: {exc}"
    for (output, _), shot in zip(views, shots):
        caption = _plain(output)
        output["data"] = {"text/plain": caption + (VIEW_NOTE if shot else f" (no screenshot: {summary})")}
        if shot:
            output["data"]["image/jpeg"] = base64.b64encode(shot).decode("ascii")
        output["metadata"] = {"imgsearch_feder": {"role": "snapshot"}}
    for output in data.values():
        output["data"] = {"text/plain": _plain(output) + DATA_NOTE}
        output["metadata"] = {"imgsearch_feder": {"role": "data-removed"}}
    return summary


def screenshots(data_html: dict, views: list[tuple[str, str]], quality: int = 70, kind: str = "jpeg",
                play_animations: bool = False) -> list[bytes]:
    """Image bytes of each view, drawn on one offline page that holds every index's data, each at
    its animation's last frame. Unless `play_animations`, the animations run 50 times faster (see
    feder_view.js): the same last frame, within Feder's own run-to-run layout noise."""
    fast = [] if play_animations else ["<script>window.imgsearchFederSnapshot = true;</script>"]
    body = [*fast, *data_html.values()]
    for i, (view_html, key) in enumerate(views):
        if key not in data_html:
            raise UsageError("a Feder view's index data is missing from the notebook (was its cell run?)")
        body.append(f'<div id="snapshot-{i}" style="display: inline-block">{view_html}</div>')
    page = ('<!DOCTYPE html><html><head><meta charset="utf-8"></head><body style="background: #fff; margin: 0">'
            + "\n".join(body) + "</body></html>")
    with tempfile.TemporaryDirectory() as scratch, headless_chromium() as browser:
        path = Path(scratch) / "feder.html"
        path.write_text(page)
        opened = open_offline(browser, path, height=800)
        opened.page.wait_for_function(
            "[...document.querySelectorAll('.imgsearch-feder-view')].every(e => e.dataset.status !== 'waiting')",
            timeout=300_000)
        _raise_on_errors(opened)  # e.g. Feder's script could not be loaded: nothing would ever draw
        if not wait_until_still(opened.page, "body", timeout_s=STILL_TIMEOUT_S):
            raise RenderError(f"Feder views were still animating after {STILL_TIMEOUT_S} s: no screenshot of their end")
        _raise_on_errors(opened)
        options = {"type": kind, **({"quality": quality} if kind == "jpeg" else {})}
        return [opened.page.locator(f"#snapshot-{i} .imgsearch-feder").screenshot(**options) for i in range(len(views))]


def _raise_on_errors(opened) -> None:
    if opened.errors:
        raise RenderError(f"Feder views failed in the browser: {opened.errors[:3]}")


def _html(output) -> str:
    text = output["data"]["text/html"]
    return "".join(text) if isinstance(text, list) else text


def _plain(output) -> str:
    text = output["data"].get("text/plain", "")
    return ("".join(text) if isinstance(text, list) else text).split(DATA_NOTE)[0]
