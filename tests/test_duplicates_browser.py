"""The app's Duplicates tab in Chromium (issue 31, item 6): `imgsearch serve FOLDER` on a folder with
a planted copy; the tab shows the group with a suggested keeper, "set the others aside" moves the copy
into `.imgsearch-trash/` and takes its row out of the collection, "Undo" brings both back, and a
group marked "not duplicates" stays out of the next search. Nothing is deleted at any step."""
import os
import shutil
import sys
from pathlib import Path

import httpx
import pytest
from PIL import Image

from imgsearch_helpers.browser import FLAGS, chromium_path
from imgsearch_helpers.local_server import free_port, serving

pytestmark = pytest.mark.browser  # drives Debian's Chromium

TOKEN = "duplicates-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def app(tmp_path_factory, real_dataset, seeded_cache):
    top = tmp_path_factory.mktemp("dups")
    gallery = top / "photos"
    for label in ("goldfish", "warplane"):
        (gallery / label).mkdir(parents=True)
        for image in sorted((real_dataset / "train" / label).glob("*.JPEG"))[:3]:
            shutil.copy(image, gallery / label / image.name)
    original = sorted((gallery / "goldfish").iterdir())[0]
    (gallery / "shared").mkdir()
    Image.open(original).resize((200, 150)).save(gallery / "shared" / "small copy.jpg", quality=60)
    port = free_port()
    env = {**os.environ, "IMGSEARCH_CACHE_DIR": str(seeded_cache(top / "cache")),
           "MILVUS_URI": str(top / "milvus" / "dups.db"), "GRADIO_TEMP_DIR": str(top / "uploads")}
    command = [str(Path(sys.executable).parent / "imgsearch"), "serve", str(gallery), "--port", str(port), "--token",
               TOKEN, "--quiet", "--no-text"]
    base = f"http://127.0.0.1:{port}"
    with serving(command, f"{base}/api/health", top / "serve.log", env, timeout_s=300):
        yield base, gallery, original


@pytest.fixture(scope="module")
def page(app):
    from playwright.sync_api import sync_playwright

    base = app[0]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium_path()), args=FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        page.goto(base + "/")
        page.wait_for_selector("#token", timeout=60_000)
        page.fill("#token", TOKEN)
        page.click("button[type=submit]")
        page.wait_for_selector("button[role=tab]:has-text('Duplicates')", timeout=60_000)
        page.click("button[role=tab]:has-text('Duplicates')")
        yield page
        browser.close()


def click_and_read(page, button: str, expected: str) -> str:
    page.click(f"#{button}")
    page.wait_for_function("(text) => document.querySelector('#dup-status').innerText.includes(text)",
                           arg=expected, timeout=180_000)
    return page.inner_text("#dup-status")


def rows(base: str) -> int:
    return httpx.get(f"{base}/api/count", headers=AUTH, timeout=60).json()["count"]


def test_the_tab_shows_the_group_with_its_keeper_sets_the_copy_aside_and_undoes_it(app, page):
    base, gallery, original = app
    before = sorted(p.relative_to(gallery) for p in gallery.rglob("*") if p.is_file())
    assert rows(base) == 7
    assert "1 groups of copies" in click_and_read(page, "dup-find", "groups of copies")
    table = page.inner_text("#dup-table")
    assert "small copy.jpg" in table and original.name in table and "keep" in table and "set aside" in table
    assert page.locator("#dup-images img").count() == 2
    click_and_read(page, "dup-set-aside", "Set aside 1 files")
    assert not (gallery / "shared" / "small copy.jpg").exists()
    assert list((gallery / ".imgsearch-trash").rglob("small copy.jpg"))  # moved, not deleted
    assert original.exists() and rows(base) == 6  # the index followed the move
    click_and_read(page, "dup-undo", "Moved 1 files back")
    assert (gallery / "shared" / "small copy.jpg").exists() and rows(base) == 7
    after = sorted(p.relative_to(gallery) for p in gallery.rglob("*")
                   if p.is_file() and ".imgsearch-trash" not in p.parts)
    assert after == before


def test_a_group_marked_not_duplicates_stays_out_of_the_next_search(app, page):
    click_and_read(page, "dup-find", "groups of copies")
    page.fill("#dup-group input", "1")
    click_and_read(page, "dup-apart", "remembered as not duplicates")
    assert "0 groups of copies" in click_and_read(page, "dup-find", "groups of copies")
