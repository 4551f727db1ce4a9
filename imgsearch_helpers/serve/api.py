"""`imgsearch serve`: one HTTP server with JSON endpoints under /api (OpenAPI page at /docs) and
the showcase app at /.

    GET    /api/health                  status, collection, rows (no token needed)
    GET    /api/collections             the collections built here
    GET    /api/count?where=...         rows (matching a filter)
    POST   /api/search                  multipart `file` (+ `k`, `where`): the most similar images
    POST   /api/search/text             JSON {"text", "k", "where"}: images for a sentence
    POST   /api/images                  multipart `files`: saved under <gallery>/uploads/ and indexed
    DELETE /api/images?id=..&relpath=.. remove rows (the files stay where they are)

It binds 127.0.0.1 unless told otherwise. With a token (`--token` or IMGSEARCH_API_TOKEN), every
/api endpoint but health wants `Authorization: Bearer <token>`; the app at / is not behind it, so
serve with `--no-app` when exposing the API. Uploads get the app's limits and messages; errors
are JSON `{"error": ...}` with a status that says whose fault it was, and the server keeps serving.
"""
from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, File, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from ..errors import (
    EngineError,
    ImgsearchError,
    InputError,
    NotBuiltError,
    Unauthorized,
    UploadTooLarge,
    UsageError,
)
from .service import SearchService, hits_as_dicts
from .uploads import MAX_UPLOAD_MB, upload_problem

TOKEN_VARIABLE = "IMGSEARCH_API_TOKEN"
CHUNK = 1 << 20
# HTTP status per error family: the first that matches (more specific families first)
BEARER = HTTPBearer(auto_error=False)  # module level: FastAPI reads the annotations by name
STATUS = ((UploadTooLarge, 413), (NotBuiltError, 409), (UsageError, 400), (InputError, 400), (EngineError, 503))


class TextQuery(BaseModel):
    text: str
    k: int = 10
    where: str | None = None


def create_api(service: SearchService, text=None, token: str | None = None) -> FastAPI:
    """The JSON API over `service` (and `text`, a `TextSearch`, when given)."""
    api = FastAPI(title="imgsearch", description="Reverse image search over one gallery's collection.")

    def authorized(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]) -> None:
        if token and (credentials is None or not secrets.compare_digest(credentials.credentials, token)):
            raise Unauthorized("a valid `Authorization: Bearer <token>` header is required")

    guarded = [Depends(authorized)]

    @api.exception_handler(ImgsearchError)
    def failed(request: Request, exc: ImgsearchError) -> JSONResponse:
        if isinstance(exc, Unauthorized):
            return JSONResponse({"error": str(exc)}, 401, headers={"WWW-Authenticate": "Bearer"})
        status = next((code for kind, code in STATUS if isinstance(exc, kind)), 500)
        return JSONResponse({"error": str(exc)}, status)

    @api.get("/api/health")
    def health() -> dict:
        return {"status": "ok", "collection": service.collection, "gallery": service.gallery.label,
                "rows": service.engine.count()}

    @api.get("/api/collections", dependencies=guarded)
    def collections() -> dict:
        from .cli import list_collections

        return list_collections(service.registry, service.settings)

    @api.get("/api/count", dependencies=guarded)
    def count(where: str | None = None) -> dict:
        return {"count": service.count(where), "where": where}

    @api.post("/api/search", dependencies=guarded)
    def search(file: Annotated[UploadFile, File()], k: Annotated[int, Form()] = 10,
               where: Annotated[str | None, Form()] = None, verify: Annotated[bool, Form()] = False,
               diffuse: Annotated[bool, Form()] = False) -> dict:
        start = time.perf_counter()
        with received(file) as path:
            found = service.search_images([path], k, where or None, verify=verify, diffuse=diffuse)
        return {"hits": hits_as_dicts(found.hits)[0], "gone": found.gone, "k": k, "where": where,
                "ms": round(1000 * (time.perf_counter() - start), 1)}

    @api.post("/api/search/text", dependencies=guarded)
    def search_text(query: TextQuery) -> dict:
        if text is None:
            raise UsageError("this server has no text search (started with --no-text)")
        if not query.text.strip():
            raise UsageError("the text is empty")
        found = text.search(query.text.strip(), query.k, query.where or None)
        return {"hits": hits_as_dicts(found.hits)[0], "gone": found.gone, "k": query.k, "path": text.name}

    @api.post("/api/images", dependencies=guarded)
    def add_images(files: Annotated[list[UploadFile], File()]) -> dict:
        if service.gallery.is_dataset:
            raise UsageError("the tutorial dataset cannot take new images: serve a folder of your own")
        saved = []
        for file in files:
            with received(file) as path:
                saved.append(keep_upload(path, service.root / "uploads", file.filename))
        report = service.add_files(saved)
        skipped = [str(f) for f in report.embed.failures]
        return {"added": report.added, "files": [str(p.relative_to(service.root)) for p in saved],
                "skipped": skipped, "rows": service.engine.count()}

    @api.delete("/api/images", dependencies=guarded)
    def delete_images(id: Annotated[list[int] | None, Query()] = None,
                      relpath: Annotated[list[str] | None, Query()] = None) -> dict:
        if not id and not relpath:
            raise UsageError("name the rows to delete: ?id=... or ?relpath=... (repeatable)")
        return {"deleted": service.delete(id or (), relpath or ()), "rows": service.engine.count()}

    return api


@contextmanager
def received(upload: UploadFile):
    """The upload in a temporary file, refused (InputError) when too large or not a usable image."""
    suffix = Path(upload.filename or "upload").suffix[:10]
    with tempfile.TemporaryDirectory(prefix="imgsearch-upload-") as scratch:
        path = Path(scratch) / f"query{suffix}"
        size = 0
        with open(path, "wb") as out:
            while chunk := upload.file.read(CHUNK):
                size += len(chunk)
                if size > MAX_UPLOAD_MB * 1_000_000:
                    raise UploadTooLarge(f"{upload.filename}: over {MAX_UPLOAD_MB} MB; the limit is {MAX_UPLOAD_MB} MB")
                out.write(chunk)
        problem = upload_problem(path)
        if problem:
            raise InputError(f"{upload.filename}: {problem}")
        yield path


def keep_upload(path: Path, folder: Path, name: str | None) -> Path:
    """Copy a checked upload into `folder` under its own name, never over an existing file."""
    folder.mkdir(parents=True, exist_ok=True)
    stem, suffix = Path(Path(name or "upload.jpg").name).stem or "upload", Path(name or ".jpg").suffix or ".jpg"
    target, n = folder / f"{stem}{suffix}", 1
    while target.exists():
        target, n = folder / f"{stem}-{n}{suffix}", n + 1
    shutil.copyfile(path, target)
    return target


def serve(model: str, engine: str, gallery, settings, host: str = "127.0.0.1", port: int = 8000,
          token: str | None = None, app: bool = True, text: bool = True) -> None:
    """Build (or reuse) the gallery's collection, then serve the API (and the app) until stopped."""
    import uvicorn

    token = token or os.environ.get(TOKEN_VARIABLE) or None
    service = SearchService(model, engine, gallery, settings)
    report = service.ensure_built()
    print(f"{service.collection}: " + (f"built, {report}" if report else "reused"), flush=True)
    text_search = None
    if text:
        from .text_search import TextSearch

        text_search = TextSearch(service)
    api = create_api(service, text_search, token)
    if app:
        import gradio as gr

        from .app import Showcase, build_app, launch_options

        showcase = Showcase.around(service, text_search)
        api = gr.mount_gradio_app(api, build_app(showcase).queue(default_concurrency_limit=1), path="/",
                                  ssr_mode=False, **launch_options())
    print(f"serving {service.gallery.label} on http://{host}:{port} (API under /api, docs at /docs"
          + (", the app at /" if app else "") + ")", flush=True)
    try:
        uvicorn.run(api, host=host, port=port, log_level="warning")
    finally:
        service.close()
        if service.settings.uses_milvus_lite:
            from ..index.milvus import stop_lite_servers

            stop_lite_servers()
