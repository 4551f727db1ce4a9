"""The showcase app in a real browser: Debian's Chromium (headless) drives the running Gradio app.

The app runs as `make app` runs it (a subprocess on localhost, tiny slice, its own cache and
Milvus Lite database), with a token: the browser logs in first. An image upload shows k results
whose top one has the query's class, bad uploads show a message in the page, and the app goes on
answering afterwards.
"""
import os
import shutil
import sys
from pathlib import Path

import pytest
from PIL import Image

from imgsearch_helpers.browser import FLAGS, chromium_path
from imgsearch_helpers.local_server import free_port, serving

pytestmark = pytest.mark.browser  # drives Debian's Chromium

K = 6
TOKEN = "browser-test-token"


@pytest.fixture(scope="module")
def app(tmp_path_factory, real_dataset, seeded_cache):
    folder = tmp_path_factory.mktemp("app")
    port = free_port()
    env = {**os.environ, "IMGSEARCH_SLICE": "tiny",
           "IMGSEARCH_CACHE_DIR": str(seeded_cache(folder / "cache", text=True)),
           "MILVUS_URI": str(folder / "milvus" / "app.db"),
           "GRADIO_TEMP_DIR": str(folder / "uploads")}
    url = f"http://127.0.0.1:{port}/"
    command = [sys.executable, "-m", "imgsearch_helpers.serve.app", "--port", str(port), "--token", TOKEN]
    with serving(command, f"{url}api/health", folder / "app.log", env):
        yield url


@pytest.fixture(scope="module")
def browser(app):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium_path()), args=FLAGS, headless=True)
        yield browser
        browser.close()


def log_in(page, url: str, token: str) -> None:
    page.goto(url)  # the app sends a browser without its cookie to the log-in form
    page.wait_for_selector("#token", timeout=60_000)
    page.fill("#token", token)
    page.click("button[type=submit]")


@pytest.fixture(scope="module")
def page(app, browser):
    page = browser.new_page(viewport={"width": 1300, "height": 1000})
    log_in(page, app, TOKEN)
    page.wait_for_selector("#query-upload input[type=file]", state="attached", timeout=60_000)
    yield page
    page.close()


def test_a_browser_without_the_token_sees_the_log_in_form_not_the_app(app, browser):
    context = browser.new_context()
    page = context.new_page()
    log_in(page, app, "a wrong token")
    page.wait_for_selector("[role=alert]", timeout=30_000)
    assert "not this server" in page.inner_text("[role=alert]") and page.locator("#query-upload").count() == 0
    assert page.goto(f"{app}config").status == 401
    context.close()


def upload(page, path: Path) -> str:
    """Upload a file (clearing the previous one) and return the status line once it names the file."""
    if page.locator("#query-upload input[type=file]").count() == 0:
        page.locator("#query-upload button[aria-label='Clear']").click()
    page.set_input_files("#query-upload input[type=file]", str(path))
    page.wait_for_function("(name) => document.querySelector('#image-status').innerText.includes(name)",
                           arg=path.name, timeout=60_000)
    return page.inner_text("#image-status")


def captions(page, gallery: str) -> list[str]:
    return [e.inner_text() for e in page.query_selector_all(f"{gallery} .caption-label")]


def labels(page, gallery: str) -> list[str]:
    """Each result's label: captions are "<similarity> · <label>", the score first so it is never cut off."""
    return [caption.split(" · ", 1)[1] for caption in captions(page, gallery)]


def query_of(real_dataset, label: str) -> Path:
    return sorted((real_dataset / "test" / label).glob("*.JPEG"))[0]


SECOND = "triceratops"  # another class of the tiny slice (every 10th class by name)


def test_the_classes_used_are_in_the_tiny_slice():
    from imgsearch_helpers.config import get_settings
    from imgsearch_helpers.data.tutorial import load_catalog

    assert {"Afghan_hound", SECOND} <= set(load_catalog(get_settings(slice="tiny")).label)


def test_an_uploaded_photo_finds_its_class(page, real_dataset):
    status = upload(page, query_of(real_dataset, "Afghan_hound"))
    assert status.startswith(f"Top {K} for")
    found = captions(page, "#image-results")
    assert len(found) == K and labels(page, "#image-results")[0] == "Afghan_hound"
    assert 0 < float(found[0].split(" · ")[0]) < 1  # a test photo, not a gallery image finding itself


@pytest.mark.parametrize("name, content, message", [
    ("notes.txt", b"a shopping list, not a picture", "not an image file"),
    ("empty.jpg", b"", "empty file"),
    ("cut.jpg", None, "corrupt or truncated"),
])
def test_a_bad_upload_gets_a_message_and_the_app_keeps_serving(page, real_dataset, tmp_path, name, content, message):
    bad = tmp_path / name
    if content is None:  # the first 2 KB of a real JPEG
        content = query_of(real_dataset, SECOND).read_bytes()[:2048]
    bad.write_bytes(content)
    status = upload(page, bad)
    assert message in status and captions(page, "#image-results") == []
    again = upload(page, query_of(real_dataset, SECOND))
    assert again.startswith("Top") and labels(page, "#image-results")[0] == SECOND


def test_an_image_over_the_pixel_limit_is_refused(page, real_dataset, tmp_path):
    huge = tmp_path / "huge.png"
    Image.new("L", (8000, 6000)).save(huge)  # 48 MP, a small file: the limit is on pixels
    assert "image too large" in upload(page, huge)
    assert upload(page, query_of(real_dataset, "Afghan_hound")).startswith("Top")


def test_a_sentence_finds_its_class_with_the_search_button(page):
    page.get_by_role("tab", name="Search by text").click()
    page.fill("#query-text textarea", "Afghan hound")
    page.click("#text-search")
    page.wait_for_function("document.querySelector('#text-status').innerText.startsWith('Top')", timeout=60_000)
    assert "efficientnet_lite0 + efficientnet_lite1 + efficientnet_lite2" in page.inner_text("#text-status")
    found = labels(page, "#text-results")
    assert len(found) == K and found[0] == "Afghan_hound"


def test_a_filter_restricts_the_results(page, real_dataset, tmp_path):
    page.get_by_role("tab", name="Search by image").click()
    page.fill("#query-filter textarea", f'label == "{SECOND}"')
    query = tmp_path / "filtered query.jpg"  # a name no earlier status line holds
    shutil.copy(query_of(real_dataset, "Afghan_hound"), query)
    try:
        upload(page, query)
        assert set(labels(page, "#image-results")) == {SECOND}
    finally:
        page.fill("#query-filter textarea", "")


def test_choosing_another_engine_builds_it_and_reports_the_build_apart(page, real_dataset):
    page.get_by_role("tab", name="Search by image").click()
    upload(page, query_of(real_dataset, "Afghan_hound"))
    page.get_by_label("engine").click()
    page.get_by_role("option", name="exact").click()
    page.wait_for_function("document.querySelector('#image-status').innerText.includes('exact)')", timeout=120_000)
    assert "built in" in page.inner_text("#build-status") and "exact" in page.inner_text("#build-status")
    status = page.inner_text("#image-status")
    assert int(status.split(" in ")[-1].split(" ms")[0]) < 5000  # the search alone, not the build
    assert labels(page, "#image-results")[0] == "Afghan_hound"


def test_two_clicks_on_the_query_preview_fill_the_region_box_in_the_uploads_pixels(page, real_dataset):
    query = query_of(real_dataset, "Afghan_hound")
    upload(page, query)
    page.click("text=Find the original by local features")  # the accordion with the region field
    preview = page.locator("#query-preview img")
    preview.wait_for(timeout=30_000)
    box = preview.bounding_box()
    natural = preview.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    scale = min(1, box["width"] / natural[0], box["height"] / natural[1])  # shown scaled down, never up, centred
    shown = {"width": natural[0] * scale, "height": natural[1] * scale}
    left, top = (box["width"] - shown["width"]) / 2, (box["height"] - shown["height"]) / 2
    preview.click(position={"x": left + shown["width"] * 0.25, "y": top + shown["height"] * 0.25})
    page.wait_for_function("document.querySelector('#query-region textarea, #query-region input').placeholder"
                           ".includes('opposite corner')", timeout=30_000)
    preview.click(position={"x": left + shown["width"] * 0.75, "y": top + shown["height"] * 0.75})
    field = "#query-region textarea, #query-region input"
    page.wait_for_function(f"document.querySelector('{field}').value.split(',').length == 4", timeout=30_000)
    x, y, w, h = map(int, page.input_value(field).split(","))
    width, height = Image.open(query).size
    assert abs(x - width / 4) <= width * 0.05 and abs(y - height / 4) <= height * 0.05, (x, y, width, height)
    assert abs(w - width / 2) <= width * 0.05 and abs(h - height / 2) <= height * 0.05, (w, h, width, height)
