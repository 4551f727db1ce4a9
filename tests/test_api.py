"""`imgsearch serve` as a user runs it: a real uvicorn process over a folder of photos, its
collection on the Milvus server fixture, a bearer token; every endpoint, bad uploads, the token."""
import io
import os
import shutil
import sys
from pathlib import Path

import httpx
import pytest
from PIL import Image
from realdata import ROOT

from imgsearch_helpers.local_server import free_port, serving

TOKEN = "s3cret-test-token"
CLASSES = {"fish": "goldfish", "plane": "warplane", "001": "Afghan_hound"}


def query(label: str) -> Path:
    return sorted((ROOT / "test" / label).glob("*.JPEG"))[0]


@pytest.fixture(scope="module")
def server(tmp_path_factory, milvus_server, real_dataset, seeded_cache):
    folder = tmp_path_factory.mktemp("api")
    gallery = folder / "photos"
    for name, label in CLASSES.items():
        (gallery / name).mkdir(parents=True)
        for image in sorted((ROOT / "train" / label).glob("*.JPEG"))[:3]:
            shutil.copy(image, gallery / name / image.name)
    port = free_port()
    env = {**os.environ, "IMGSEARCH_CACHE_DIR": str(seeded_cache(folder / "cache", text=True)),
           "MILVUS_URI": milvus_server.uri, "GRADIO_TEMP_DIR": str(folder / "gradio")}
    command = [str(Path(sys.executable).parent / "imgsearch"), "serve", str(gallery), "--port", str(port), "--token",
               TOKEN, "--quiet"]
    base = f"http://127.0.0.1:{port}"
    with serving(command, f"{base}/api/health", folder / "serve.log", env, timeout_s=300):
        yield base, gallery


@pytest.fixture(scope="module")
def client(server):
    base, _ = server
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120) as client:
        yield client


def post_image(client, path: Path, **form):
    with open(path, "rb") as handle:
        return client.post("/api/search", files={"file": (path.name, handle)}, data=form)


def test_health_needs_no_token_and_names_the_collection(server):
    base, gallery = server
    health = httpx.get(f"{base}/api/health").json()
    assert health["status"] == "ok" and health["rows"] == 9 and health["gallery"] == str(gallery.resolve())


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}])
def test_a_missing_or_wrong_token_is_refused(server, headers):
    base, _ = server
    answer = httpx.get(f"{base}/api/count", headers=headers)
    assert answer.status_code == 401 and "Bearer" in answer.json()["error"]


def test_search_by_image_finds_its_folder(client):
    answer = post_image(client, query("goldfish"), k="4")
    assert answer.status_code == 200, answer.text
    hits = answer.json()["hits"]
    assert len(hits) == 4 and [h["label"] for h in hits[:3]] == ["fish"] * 3
    assert hits[0]["relpath"].startswith("fish/") and hits[0]["similarity"] >= hits[-1]["similarity"]


def test_search_with_a_filter_and_count(client):
    answer = post_image(client, query("goldfish"), k="9", where='label in ["001", "plane"]')
    assert {h["label"] for h in answer.json()["hits"]} == {"001", "plane"} and len(answer.json()["hits"]) == 6
    assert client.get("/api/count", params={"where": 'label == "001"'}).json()["count"] == 3
    bad = post_image(client, query("goldfish"), where="label = 'x'")
    assert bad.status_code == 400 and "compare with ==" in bad.json()["error"]


def test_search_by_text(client):
    answer = client.post("/api/search/text", json={"text": "Afghan hound", "k": 3})
    assert answer.status_code == 200, answer.text
    assert [h["label"] for h in answer.json()["hits"]] == ["001"] * 3
    assert client.post("/api/search/text", json={"text": "  "}).status_code == 400


def test_collections_lists_this_gallery(client, server):
    _, gallery = server
    listed = client.get("/api/collections").json()["collections"]
    assert any(row["gallery"] == str(gallery.resolve()) and row["rows"] >= 9 for row in listed)


def test_add_then_delete_by_path_and_by_id(client, server):
    _, gallery = server
    with open(query("warplane"), "rb") as handle:
        added = client.post("/api/images", files=[("files", ("new plane.jpg", handle))]).json()
    assert added["added"] == 1 and added["files"] == ["uploads/new plane.jpg"] and added["rows"] == 10
    assert (gallery / "uploads" / "new plane.jpg").is_file()
    hits = post_image(client, query("warplane"), k="1").json()["hits"]
    assert hits[0]["relpath"] == "uploads/new plane.jpg" and hits[0]["similarity"] > 0.99
    gone = client.delete("/api/images", params={"relpath": "uploads/new plane.jpg"}).json()
    assert gone == {"deleted": 1, "rows": 9}
    some_id = post_image(client, query("goldfish"), k="1").json()["hits"][0]["id"]
    assert client.delete("/api/images", params={"id": some_id}).json() == {"deleted": 1, "rows": 8}
    assert client.delete("/api/images").status_code == 400


def png_of(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (width, height)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("name, content, status, message", [
    ("empty.jpg", b"", 400, "empty file"),
    ("notes.jpg", b"a shopping list, not a picture", 400, "not an image file"),
    ("cut.jpg", None, 400, "corrupt or truncated"),
    ("huge.png", png_of(8000, 6000), 400, "image too large"),  # 48 MP in a small file: the limit is on pixels
    ("big.jpg", b"\xff" * 21_000_000, 413, "over the limit of 20,064,000 bytes"),  # refused before it is read
])
def test_a_bad_upload_is_a_clear_error_and_the_server_keeps_serving(client, server, name, content, status, message):
    content = query("goldfish").read_bytes()[:2048] if content is None else content
    answer = client.post("/api/search", files={"file": (name, content)})
    assert answer.status_code == status and message in answer.json()["error"]
    assert name in answer.json()["error"] or status == 413
    assert post_image(client, query("goldfish"), k="1").status_code == 200


def test_the_app_and_the_openapi_page_are_served_too(server, client):
    base, _ = server
    assert "gradio" in client.get("/", timeout=60).text.lower()  # the app wants the token too
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/search", "/api/search/text", "/api/images", "/api/count", "/api/collections", "/api/health"} <= set(
        paths)


def search_with_a_gallery_photo(client, server, **form) -> tuple[Path, list[dict]]:
    """The first plane photo of the gallery searched with `form`: the photo, and the hits."""
    original = sorted((server[1] / "plane").glob("*.JPEG"))[0]
    answer = post_image(client, original, k="4", **form)
    assert answer.status_code == 200, answer.text
    return original, answer.json()["hits"]


def test_a_verified_search_marks_the_hits_that_show_the_query(client, server):
    original, hits = search_with_a_gallery_photo(client, server, verify="true")
    assert hits[0]["relpath"] == f"plane/{original.name}" and hits[0]["verified"] is True
    flags = [h["verified"] for h in hits]
    assert flags == sorted(flags, reverse=True)  # verified hits first
    assert all(h["verified"] is None for h in post_image(client, original, k="4").json()["hits"])


def test_a_diffused_search_returns_k_hits_and_refuses_a_filter(client, server):
    original, hits = search_with_a_gallery_photo(client, server, diffuse="true")
    assert len(hits) == 4 and len({h["id"] for h in hits}) == 4
    refused = post_image(client, original, k="4", diffuse="true", where='label == "plane"')
    assert refused.status_code == 400 and "diffusion ranks the whole collection" in refused.text
