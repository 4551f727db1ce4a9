"""`imgsearch serve` against a hostile or careless client: a real uvicorn process over a small
folder of photos (Milvus Lite), driven over HTTP as the reproductions of issue 28 did.

One server has a token (the app mounted), one has none (loopback only, API only). Every request
here is one a client can send; every test checks what the server answered and what it left on disk.
"""
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from PIL import Image
from realdata import ROOT

from imgsearch_helpers.local_server import free_port, serving
from imgsearch_helpers.serve.uploads import MAX_FILES_PER_REQUEST, check_quota

TOKEN = "a-long-random-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
IMGSEARCH = Path(sys.executable).parent / "imgsearch"
CLASSES = ("goldfish", "warplane", "Afghan_hound")


def query(label: str, n: int = 0) -> Path:
    return sorted((ROOT / "test" / label).glob("*.JPEG"))[n]


def train(label: str, n: int) -> Path:
    return sorted((ROOT / "train" / label).glob("*.JPEG"))[n]


def start(folder: Path, gallery: Path, *flags: str):
    """(base URL, env, the `serving` context) of `imgsearch serve` on a free port."""
    port = free_port()
    (folder / "tmp").mkdir(parents=True)
    env = {**os.environ, "MILVUS_URI": str(folder / "milvus" / "x.db"), "GRADIO_TEMP_DIR": str(folder / "gradio"),
           "TMPDIR": str(folder / "tmp")}  # where a spooled request body would land
    command = [str(IMGSEARCH), "serve", str(gallery), "--port", str(port), "--quiet", "--no-text", *flags]
    base = f"http://127.0.0.1:{port}"
    return base, env, serving(command, f"{base}/api/health", folder / "serve.log", env, timeout_s=300)


@pytest.fixture(scope="module")
def gallery(tmp_path_factory, real_dataset):
    folder = tmp_path_factory.mktemp("photos")
    for label in CLASSES:
        (folder / label).mkdir()
        for n in range(3):
            shutil.copy(train(label, n), folder / label)
    return folder


@pytest.fixture(scope="module")
def guarded(tmp_path_factory, gallery):
    """The server with a token and the app: (base URL, its scratch folder, its process)."""
    folder = tmp_path_factory.mktemp("guarded")
    base, _, context = start(folder, gallery, "--token", TOKEN)
    with context as process:
        yield base, folder, process


@pytest.fixture(scope="module")
def open_server(tmp_path_factory, gallery):
    """The server without a token, on loopback, API only."""
    folder = tmp_path_factory.mktemp("open")
    base, _, context = start(folder, gallery, "--no-app")
    with context:
        yield base


@pytest.fixture(scope="module")
def client(guarded):
    with httpx.Client(base_url=guarded[0], headers=AUTH, timeout=120) as client:
        yield client


def call_app(client, data: list, timeout: float = 20) -> str:
    """One call of the app's search function through Gradio's HTTP API: the event's whole stream."""
    event = client.post("/gradio_api/call/search_upload", json={"data": data})
    assert event.status_code == 200, event.text
    stream = client.get(f"/gradio_api/call/search_upload/{event.json()['event_id']}", timeout=timeout)
    return stream.text


def named_path(path: str) -> list:
    return [{"path": path, "meta": {"_type": "gradio.FileData"}}, "efficientnet_lite0", "milvus", 1, "", False, False]


def files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


# --- 1. the app reads only what was uploaded to it, and asks for the token ----------------------
def test_the_app_reads_no_file_a_client_names(client, guarded):
    """The exact request of the report (with the token: even a logged-in client may not name paths)."""
    _, folder, process = guarded
    outside_image = query("goldfish")  # an image on the disk, outside the gallery
    for path in ("/dev/zero", "/etc/passwd", "/etc/shadow", "/no/such/file", str(outside_image)):
        start_s = time.monotonic()
        answer = call_app(client, named_path(path))
        assert time.monotonic() - start_s < 15 and process.poll() is None
        assert "event: error" in answer and "not uploaded by a user" in answer, answer[:500]
        assert httpx.get(f"{guarded[0]}/api/health", timeout=5).status_code == 200  # still serving
    secrets = {Path("/etc/passwd").read_bytes(), outside_image.read_bytes()}
    copied = [p for p in files_under(folder / "gradio") if p.read_bytes() in secrets or p.name in ("passwd", "shadow")]
    assert copied == []
    assert client.get("/gradio_api/file=/etc/passwd").status_code != 200


def test_the_app_still_searches_what_is_uploaded_to_it(client):
    with open(query("warplane"), "rb") as handle:
        uploaded = client.post("/gradio_api/upload", files={"files": (query("warplane").name, handle)})
    assert uploaded.status_code == 200, uploaded.text
    answer = call_app(client, named_path(uploaded.json()[0]), timeout=60)
    assert "event: complete" in answer and "warplane" in answer, answer[:500]


def test_without_the_token_the_app_sends_browsers_to_log_in_and_refuses_its_api(guarded):
    base = guarded[0]
    page = httpx.get(f"{base}/", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/login"
    assert "password" in httpx.get(f"{base}/login").text
    for method, path in (("POST", "/gradio_api/call/search_upload"), ("POST", "/gradio_api/call/switch"),
                         ("POST", "/gradio_api/upload"), ("GET", "/config"), ("GET", "/gradio_api/info")):
        answer = httpx.request(method, f"{base}{path}", json={"data": []})
        assert answer.status_code == 401, (path, answer.status_code)


def test_logging_in_with_the_token_opens_the_app(guarded):
    base = guarded[0]
    wrong = httpx.post(f"{base}/login", data={"token": "guess"})
    assert wrong.status_code == 401 and "not this server" in wrong.text
    with httpx.Client(base_url=base) as browser:
        logged = browser.post("/login", data={"token": TOKEN})
        assert logged.status_code == 303 and "HttpOnly" in logged.headers["set-cookie"]
        assert TOKEN not in logged.headers["set-cookie"]  # the cookie is derived from the token
        assert browser.get("/").status_code == 200 and browser.get("/config").status_code == 200


# --- 2. concurrent writes -----------------------------------------------------------------------
def test_concurrent_uploads_and_searches_all_succeed_and_every_kept_file_has_a_row(client, guarded, gallery):
    before = client.get("/api/count").json()["count"]
    sources = [query(label) for label in CLASSES] + [train(label, 5) for label in CLASSES] + [train("goldfish", 6),
                                                                                                train("warplane", 6)]

    def upload(n: int):
        with open(sources[n], "rb") as handle:
            return client.post("/api/images", files=[("files", (f"burst-{n}.jpg", handle))])

    def search(n: int):
        with open(sources[n], "rb") as handle:
            return client.post("/api/search", files={"file": ("q.jpg", handle)}, data={"k": "3"})

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda n: upload(n) if n < 8 else search(n - 8), range(16)))
    assert [a.status_code for a in answers] == [200] * 16, [a.text for a in answers if a.status_code != 200]
    kept = sorted(p.name for p in (gallery / "uploads").glob("burst-*"))
    assert kept == sorted(f"burst-{n}.jpg" for n in range(8))
    assert client.get("/api/count").json()["count"] == before + 8
    for n in range(8):
        assert client.get("/api/count", params={"where": f'relpath == "uploads/burst-{n}.jpg"'}).json()["count"] == 1
    client.delete("/api/images", params={"relpath": [f"uploads/burst-{n}.jpg" for n in range(8)]})


# --- 3. k is bounded ----------------------------------------------------------------------------
@pytest.mark.parametrize("k", ["100000000", str(2**63), "0", "-1"])
def test_k_out_of_bounds_is_refused_at_once(client, k):
    start_s = time.monotonic()
    with open(query("goldfish"), "rb") as handle:
        answer = client.post("/api/search", files={"file": ("q.jpg", handle)}, data={"k": k})
    assert answer.status_code == 400 and "k" in answer.json()["error"] and time.monotonic() - start_s < 5
    text = client.post("/api/search/text", json={"text": "a fish", "k": int(k)})
    assert text.status_code == 400 and "k" in text.json()["error"]


def test_the_command_line_refuses_a_huge_k(gallery, guarded, tmp_path):
    env = {**os.environ, "MILVUS_URI": str(tmp_path / "m" / "x.db")}
    done = subprocess.run([str(IMGSEARCH), "search", str(query("goldfish")), "--gallery", str(gallery), "-k",
                           "1000000000"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "k must be from 1 to 1000" in done.stderr, done.stderr[-800:]


def test_the_command_line_beside_a_running_server_says_to_ask_it(gallery, guarded):
    base, folder, _ = guarded
    env = {**os.environ, "MILVUS_URI": str(folder / "milvus" / "x.db")}  # the database the server holds
    done = subprocess.run([str(IMGSEARCH), "search", str(query("goldfish")), "--gallery", str(gallery)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr[-800:]
    assert "It is `imgsearch serve`" in done.stderr and f"{base}/api/search" in done.stderr, done.stderr[-800:]


# --- 6. the token is checked before the body is read ----------------------------------------------
def raw_post(base: str, path: str, headers: dict, body_bytes: int, chunk: int = 1 << 20) -> tuple[int, int]:
    """POST `body_bytes` of zeros (declared in Content-Length) over a socket, stopping as soon as the
    server answers; (status, bytes sent)."""
    host, port = base.removeprefix("http://").split(":")
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {body_bytes}",
             "Content-Type: multipart/form-data; boundary=x", *(f"{k}: {v}" for k, v in headers.items())]
    sent = 0
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        conn.setblocking(False)
        while sent < body_bytes:
            try:
                if conn.recv(1, socket.MSG_PEEK):
                    break  # the server answered before the body was sent
            except BlockingIOError:
                pass
            try:
                sent += conn.send(b"\0" * min(chunk, body_bytes - sent))
            except BlockingIOError:
                time.sleep(0.01)
            except (BrokenPipeError, ConnectionResetError):
                break
        conn.setblocking(True)
        status = int(conn.recv(100).split()[1])
    return status, sent


def test_a_big_body_without_the_token_is_refused_before_it_is_read(guarded):
    base, folder, _ = guarded
    status, sent = raw_post(base, "/api/images", {}, 1_000_000_000)
    assert status == 401 and sent < 100_000_000
    assert sum(p.stat().st_size for p in files_under(folder / "tmp")) < 1_000_000


def test_a_body_over_its_limit_is_refused_before_it_is_spooled(guarded):
    base, folder, _ = guarded
    status, sent = raw_post(base, "/api/search", AUTH, 500_000_000)
    assert status == 413 and sent < 100_000_000
    assert sum(p.stat().st_size for p in files_under(folder / "tmp")) < 1_000_000


def test_a_chunked_body_is_cut_off_at_its_limit(client, guarded):
    def zeros():  # one file part that never ends: the parser spools it until the limit cuts it off
        yield b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n'
        for _ in range(60):
            yield b"\0" * 1_000_000

    answer = client.post("/api/search", content=zeros(), headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert answer.status_code == 413 and "limit" in answer.json()["error"]


# --- 7. exposure ----------------------------------------------------------------------------------
@pytest.mark.parametrize("flags, message", [
    (["--host", "0.0.0.0"], "refusing to serve on 0.0.0.0 without a token"),
    (["--token", ""], "the token is empty"),
    (["--port", "99999"], "--port must be a number from 1 to 65535"),
])
def test_an_exposing_or_malformed_serve_is_refused_before_any_work(gallery, tmp_path, flags, message):
    env = {**os.environ, "MILVUS_URI": str(tmp_path / "m" / "x.db")}
    env.pop("IMGSEARCH_API_TOKEN", None)
    start_s = time.monotonic()
    done = subprocess.run([str(IMGSEARCH), "serve", str(gallery), *flags], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr, done.stderr[-800:]
    assert time.monotonic() - start_s < 30 and not (tmp_path / "m").exists()  # no collection was opened


def test_a_page_of_another_site_cannot_post_to_a_server_without_a_token(open_server):
    with open(query("goldfish"), "rb") as handle:
        content = handle.read()
    for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"}):
        answer = httpx.post(f"{open_server}/api/images", files=[("files", ("x.jpg", content))], headers=headers)
        assert answer.status_code == 403, headers
    same = httpx.post(f"{open_server}/api/search", files={"file": ("x.jpg", content)},
                      headers={"Origin": open_server}, data={"k": "1"})
    assert same.status_code == 200, same.text


def test_a_server_without_a_token_answers_only_to_loopback_names(open_server):
    port = open_server.rsplit(":", 1)[1]
    assert httpx.get(f"{open_server}/api/count", headers={"Host": f"evil.example:{port}"}).status_code == 421
    assert httpx.get(f"{open_server}/api/count", headers={"Host": f"localhost:{port}"}).status_code == 200


# --- 8. uploads -----------------------------------------------------------------------------------
def uploads_of(gallery: Path) -> list[str]:
    return sorted(p.name for p in (gallery / "uploads").iterdir()) if (gallery / "uploads").is_dir() else []


def test_one_bad_file_refuses_the_whole_upload_and_keeps_nothing(client, gallery):
    before = uploads_of(gallery)
    good = query("goldfish").read_bytes()
    answer = client.post("/api/images", files=[("files", ("good.jpg", good)), ("files", ("bad.jpg", b"not a photo"))])
    assert answer.status_code == 400 and "bad.jpg" in answer.json()["error"]
    many = [("files", (f"f{n}.jpg", good)) for n in range(MAX_FILES_PER_REQUEST + 1)]
    answer = client.post("/api/images", files=many)
    assert answer.status_code == 400 and f"the limit is {MAX_FILES_PER_REQUEST}" in answer.json()["error"]
    assert uploads_of(gallery) == before


def test_upload_names_are_made_safe_and_take_the_real_formats_extension(client, gallery):
    jpeg = query("goldfish").read_bytes()
    png = io.BytesIO()
    Image.open(query("warplane")).save(png, format="PNG")
    names = {"nul\0name.jpg": jpeg, "x" * 400 + ".jpg": jpeg, "evil.html": jpeg, ".hidden.jpg": jpeg,
             "../../escape.png": png.getvalue(), "photo.jpg": png.getvalue()}
    kept = []
    for name, content in names.items():
        answer = client.post("/api/images", files=[("files", (name, content))])
        assert answer.status_code == 200, (name, answer.text)
        kept += answer.json()["files"]
    assert all(path.startswith("uploads/") and "\0" not in path and "/." not in path for path in kept)
    assert "uploads/evil.jpg" in kept and "uploads/hidden.jpg" in kept and "uploads/photo.png" in kept
    assert "uploads/escape.png" in kept and len(max(kept, key=len)) < 140
    assert all((gallery / path).is_file() for path in kept)
    client.delete("/api/images", params={"relpath": kept})


def test_the_uploads_folder_has_a_quota(tmp_path):
    (tmp_path / "uploads").mkdir()
    for n in range(3):
        (tmp_path / "uploads" / f"{n}.jpg").write_bytes(b"x" * 1000)
    incoming = tmp_path / "new.jpg"
    incoming.write_bytes(b"x" * 1000)
    check_quota(tmp_path / "uploads", [incoming], max_files=4, max_mb=1)
    with pytest.raises(Exception, match="the uploads folder is full"):
        check_quota(tmp_path / "uploads", [incoming, incoming], max_files=4, max_mb=1)


# --- 9. start and stop ----------------------------------------------------------------------------
def test_ctrl_c_stops_the_server_quietly(tmp_path, gallery):
    base, env, context = start(tmp_path, gallery, "--no-app")
    with context as process:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
    log = (tmp_path / "serve.log").read_text()
    assert process.returncode == 0 and "Traceback" not in log, log[-1500:]


def test_a_busy_port_is_named_before_any_work(guarded, gallery, tmp_path):
    port = guarded[0].rsplit(":", 1)[1]
    env = {**os.environ, "MILVUS_URI": str(tmp_path / "m" / "x.db")}
    done = subprocess.run([str(IMGSEARCH), "serve", str(gallery), "--port", port], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in done.stderr, done.stderr[-800:]
    assert "serving" not in done.stdout and not (tmp_path / "m").exists()


# --- 10. every error is JSON with the status that says whose fault it was ---------------------------
def test_refused_values_are_400_json_and_ids_are_strings(client):
    assert client.delete("/api/images", params={"id": str(2**70)}).status_code == 400
    assert client.delete("/api/images", params={"id": "-5"}).status_code == 400
    wrong_type = client.post("/api/search/text", json={"text": 5, "k": "many"})
    assert wrong_type.status_code == 400 and "k" in wrong_type.json()["error"]
    assert "error" in client.get("/api/nothing-here").json()
    for where in ("(" * 1000 + 'label == "a"' + ")" * 1000, "not " * 5000 + 'label == "a"',
                  "size > 99999999999999999999999", 'label == "\\u00e9"'):
        answer = client.get("/api/count", params={"where": where})
        assert answer.status_code == 400 and answer.json()["error"], (where[:20], answer.text[:200])
    with open(query("goldfish"), "rb") as handle:
        hits = client.post("/api/search", files={"file": ("q.jpg", handle)}, data={"k": "2"}).json()["hits"]
    assert all(isinstance(hit["id"], str) and int(hit["id"]) >= 0 for hit in hits)
    assert json.loads(json.dumps(hits))[0]["id"] == hits[0]["id"]
