"""Feder's views in a real browser: Debian's Chromium, headless, every network request refused.

The page holds the tiny slice's real embeddings in a FAISS IVF_FLAT and an hnswlib index, with
the images as thumbnails. Feder's own panels must report what was asked (nlist, k, nprobe, ef),
its search results must equal FAISS's and hnswlib's for the same parameters, and the console
must stay clean. Screenshots land in <results_dir>/screenshots/.
"""
import pytest

from imgsearch_helpers.browser import headless_chromium, open_offline, wait_until_still
from imgsearch_helpers.config import get_settings
from imgsearch_helpers.data.tutorial import load_catalog
from imgsearch_helpers.embed.stream import embed_paths
from imgsearch_helpers.feder import FederIndex
from imgsearch_helpers.feder.assets import feder_script, fetch_feder_js
from imgsearch_helpers.index import IndexSpec, open_engine
from imgsearch_helpers.vectors import l2_normalize

pytestmark = pytest.mark.browser  # drives Debian's Chromium

NLIST, NPROBE, K, EF = 16, 4, 6, 24


@pytest.fixture(scope="module")
def gallery(lite0):
    catalog = load_catalog(get_settings(slice="tiny"))
    embedded = embed_paths(catalog.path, lite0, progress=False)
    assert len(embedded.positions) == len(catalog) == 100
    return catalog, l2_normalize(embedded.vectors)


@pytest.fixture(scope="module")
def engines(gallery, tmp_path_factory):
    catalog, vectors = gallery
    folder = tmp_path_factory.mktemp("feder-indexes")
    ivf = open_engine("faiss", index=IndexSpec("IVF_FLAT", {"nlist": NLIST}, {"nprobe": NPROBE}))
    hnsw = open_engine("hnswlib", index=IndexSpec("HNSW", {"M": 8, "efConstruction": 64}, {"ef": EF}))
    media = dict(zip(catalog.id.tolist(), catalog.path.tolist()))
    indexes = {}
    for name, engine in (("ivf", ivf), ("hnsw", hnsw)):
        engine.add(catalog.id.to_numpy(), vectors)
        indexes[name] = FederIndex.from_engine(engine, folder / f"{name}.index", media, progress=False)
    return {"ivf": ivf, "hnsw": hnsw}, indexes


@pytest.fixture(scope="module")
def browser():
    assert fetch_feder_js().is_file() and feder_script().code is not None  # the pinned copy, no CDN
    with headless_chromium() as chromium:
        yield chromium


def render(browser, index, views, tmp_path, name):
    """Open the page offline, wait until every view drew, and collect Feder's logged search results."""
    page_file = tmp_path / f"{name}.html"
    page_file.write_text(index.page(*views, title=name))
    opened = open_offline(browser, page_file, height=700 * len(views) + 200)
    results = []
    opened.page.on("console", lambda message: results.append(message) if message.type == "log" else None)
    opened.page.reload()
    opened.page.wait_for_function(
        "[...document.querySelectorAll('.imgsearch-feder-view')].every(e => e.dataset.status !== 'waiting')",
        timeout=120_000)
    wait_until_still(opened.page, ".imgsearch-feder-view")  # Feder animates its search views
    shots = get_settings().results_dir / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    opened.page.screenshot(path=str(shots / f"feder_{name}.png"), full_page=True)
    statuses = [e.get_attribute("data-status") for e in opened.page.query_selector_all(".imgsearch-feder-view")]
    texts = [e.inner_text() for e in opened.page.query_selector_all(".imgsearch-feder-view")]
    logged = [value for value in map(logged_value, results)
              if isinstance(value, dict) and ("fsResIds" in value or "topkResults" in value)]
    return opened, statuses, texts, logged


def logged_value(message):
    """The first argument of a console.log call (Feder logs each search's result)."""
    try:
        return message.args[0].json_value() if message.args else None
    except Exception:  # a value that is not JSON (a DOM node, a function): not a search result
        return None


def test_ivf_views_draw_the_clusters_and_apply_k_and_nprobe(browser, gallery, engines, tmp_path):
    engine, index = engines[0]["ivf"], engines[1]["ivf"]
    catalog, vectors = gallery
    target = int(catalog.id[37])
    views = [index.overview(), index.search_by_id(target, k=K, nprobe=NPROBE),
             index.search_by_id(target, k=K, nprobe=NPROBE, stage="fine"),
             index.search_by_vector(vectors[52], k=K, nprobe=NPROBE, image=catalog.path[52], stage="project")]
    opened, statuses, texts, logged = render(browser, index, views, tmp_path, "ivf")
    assert statuses == ["drawn"] * 4
    assert opened.errors == [] and opened.refused == []
    assert f"100 vectors, divided into {NLIST} clusters." in texts[0]
    assert f"Find the {NPROBE} (nprobe={NPROBE}) closest clusters." in texts[1]
    assert len([line for line in texts[1].splitlines() if line.startswith("cluster-")]) == NPROBE
    assert f"Find the {K} (k={K}) vectors closest to the target from these {NPROBE} (nprobe={NPROBE})" in texts[2]
    assert f"in the {NPROBE} (nprobe={NPROBE}) clusters using umap" in texts[3]
    fine = opened.page.query_selector_all(".imgsearch-feder-view")[2]
    gallery_items = fine.query_selector_all(".panel-img-gallery-item")
    assert len(gallery_items) == K  # the thumbnails of the k results, as inline data: URLs
    assert all("data:image/jpeg;base64" in item.get_attribute("style") for item in gallery_items)
    assert "data:image/jpeg;base64" in fine.query_selector(".panel-img").get_attribute("style")  # the target
    # Feder's own search equals FAISS's with the same nprobe
    want = engine.search(vectors[[37, 37, 52]], K)[0].tolist()
    assert sorted(result["fsResIds"] for result in logged) == sorted(want)  # views may finish in any order


def test_hnsw_views_draw_the_levels_and_apply_k_and_ef(browser, gallery, engines, tmp_path):
    engine, index = engines[0]["hnsw"], engines[1]["hnsw"]
    catalog, vectors = gallery
    views = [index.overview(), index.search_by_vector(vectors[11], k=K, ef=EF, image=catalog.path[11])]
    opened, statuses, texts, logged = render(browser, index, views, tmp_path, "hnsw")
    assert statuses == ["drawn", "drawn"]
    assert opened.errors == [] and opened.refused == []
    levels = index.info.max_level + 1
    assert f"100 vectors, including {levels} levels" in texts[0]
    assert len([line for line in texts[0].splitlines() if line.startswith("Level ")]) == min(3, levels)
    assert f"k = {K}, ef_search = {EF}." in texts[1]  # Feder's label for its `ef` parameter
    assert len([line for line in texts[1].splitlines() if line.startswith("Level ")]) == levels
    found = [item["id"] for item in logged[0]["topkResults"]]
    assert len(found) == K
    assert found == engine.search(vectors[[11]], K)[0][0].tolist()  # hnswlib's answer for the same ef

