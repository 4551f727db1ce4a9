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
endpoint but health wants `Authorization: Bearer <token>` (a browser logs in to the app at
/login); the checks in `guard` run before any body is read. Every input is bounded (`k`, the
files per request and their size, the filter, the ids). Errors are JSON `{"error": ...}` with a
status that says whose fault it was, and the server keeps serving. Ids are 63-bit integers, sent
as strings: a JavaScript client would round numbers above 2^53.
"""
from __future__ import annotations

import logging
import tempfile
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from ..data.regions import Region
from ..errors import CacheError, EngineError, ImgsearchError, InputError, NotBuiltError, UploadTooLarge, UsageError
from ..gallery.service import MAX_K, SearchService, hits_as_dicts
from ..index.filters import MAX_LENGTH as MAX_FILTER
from .uploads import MAX_FILES_PER_REQUEST, MAX_UPLOAD_MB, check_quota, keep_upload, upload_problem

CHUNK = 1 << 20
MAX_ID = 2**63 - 1
MAX_TEXT = 1000
MAX_ROWS_PER_DELETE = 1000
# HTTP status per error family: the first that matches (more specific families first)
STATUS = ((UploadTooLarge, 413), (NotBuiltError, 409), (UsageError, 400), (InputError, 400), (EngineError, 503),
          (CacheError, 503))
LOG = logging.getLogger("imgsearch.api")


class TextQuery(BaseModel):
    text: str = Field(max_length=MAX_TEXT)
    k: int = Field(10, ge=1, le=MAX_K)
    where: str | None = Field(None, max_length=MAX_FILTER)


def create_api(service: SearchService, text=None) -> FastAPI:
    """The JSON API over `service` (and `text`, a `TextSearch`, when given); auth is the `Guard`'s."""
    api = FastAPI(title="imgsearch", description="Reverse image search over one gallery's collection.")
    add_error_handlers(api)

    @api.get("/api/health")
    def health() -> dict:
        return {"status": "ok", "collection": service.collection, "gallery": service.gallery.label,
                "rows": service.engine.count()}

    @api.get("/api/collections")
    def collections() -> dict:
        from ..gallery.collections import list_collections

        return list_collections(service.registry, service.settings)

    @api.get("/api/count")
    def count(where: Annotated[str | None, Query(max_length=MAX_FILTER)] = None) -> dict:
        return {"count": service.count(where), "where": where}

    @api.post("/api/search")
    def search(file: Annotated[UploadFile, File()], k: Annotated[int, Form(ge=1, le=MAX_K)] = 10,
               where: Annotated[str | None, Form(max_length=MAX_FILTER)] = None,
               verify: Annotated[bool, Form()] = False, diffuse: Annotated[bool, Form()] = False,
               region: Annotated[str | None, Form(max_length=40)] = None) -> dict:
        start = time.perf_counter()
        box = Region.parse(region) if region else None  # a bad box is refused before the upload is read
        with received(file) as path:
            found = service.search_images([path], k, where or None, verify=verify, diffuse=diffuse, region=box)
        hits = hits_as_dicts(found.hits)[0]
        return {"hits": as_json(hits), "gone": found.gone, "k": k, "where": where, "region": region,
                "match": bool(hits) if service.local else None, "ms": round(1000 * (time.perf_counter() - start), 1)}

    @api.post("/api/search/text")
    def search_text(query: TextQuery) -> dict:
        if text is None:
            raise UsageError("this server has no text search (started with --no-text)")
        if not query.text.strip():
            raise UsageError("the text is empty")
        found = text.search(query.text.strip(), query.k, query.where or None)
        return {"hits": as_json(hits_as_dicts(found.hits)[0]), "gone": found.gone, "k": query.k, "path": text.name}

    @api.post("/api/images")
    def add_images(files: Annotated[list[UploadFile], File()]) -> dict:
        if service.gallery.is_dataset:
            raise UsageError("the tutorial dataset cannot take new images: serve a folder of your own")
        if len(files) > MAX_FILES_PER_REQUEST:
            raise UsageError(f"{len(files)} files in one request; the limit is {MAX_FILES_PER_REQUEST}")
        return add_uploads(service, files)

    @api.delete("/api/images")
    def delete_images(id: Annotated[list[int] | None, Query(max_length=MAX_ROWS_PER_DELETE)] = None,
                      relpath: Annotated[list[str] | None, Query(max_length=MAX_ROWS_PER_DELETE)] = None) -> dict:
        if not id and not relpath:
            raise UsageError("name the rows to delete: ?id=... or ?relpath=... (repeatable)")
        bad = [i for i in id or () if not 0 <= i <= MAX_ID]
        if bad:
            raise UsageError(f"id {bad[0]} is not an image id (ids are 0 to 2^63-1)")
        return {"deleted": service.delete(id or (), relpath or ()), "rows": service.engine.count()}

    @api.api_route("/api/{anything:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
    def unknown(anything: str) -> JSONResponse:  # before the app mounted at / answers in its own words
        return JSONResponse({"error": f"no endpoint /api/{anything} (the list is at /docs)"}, 404)

    return api


def add_error_handlers(api: FastAPI) -> None:
    """Every error as JSON `{"error": ...}`: ours by family, a refused value 400, anything else 500."""

    @api.exception_handler(ImgsearchError)
    def failed(request: Request, exc: ImgsearchError) -> JSONResponse:
        status = next((code for kind, code in STATUS if isinstance(exc, kind)), 500)
        return JSONResponse({"error": str(exc)}, status)

    @api.exception_handler(RequestValidationError)
    def refused(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in e['loc'][1:]) or e['loc'][0]}: {e['msg']}" for e in exc.errors()]
        return JSONResponse({"error": "; ".join(problems)}, 400)

    @api.exception_handler(HTTPException)
    def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, exc.status_code, headers=exc.headers)

    @api.exception_handler(Exception)
    def crashed(request: Request, exc: Exception) -> JSONResponse:
        LOG.exception("%s %s failed", request.method, request.url.path)
        return JSONResponse({"error": f"internal error ({type(exc).__name__}); the server's log has the details"},
                            500)


def as_json(hits: list[dict]) -> list[dict]:
    return [hit | {"id": str(hit["id"])} for hit in hits]


def add_uploads(service: SearchService, files: list[UploadFile]) -> dict:
    """Keep and index all the files, or none: a bad file refuses the request before anything is
    written, and a failed index removes what was kept."""
    folder = service.root / "uploads"
    with ExitStack() as stack:
        received_paths = [stack.enter_context(received(file)) for file in files]
        check_quota(folder, received_paths)
        saved = []
        try:
            for path, file in zip(received_paths, files):
                saved.append(keep_upload(path, folder, file.filename))
            report = service.add_files(saved)
        except BaseException:
            for path in saved:
                path.unlink(missing_ok=True)
            raise
    failed = {Path(failure.path).resolve() for failure in report.embed.failures}
    kept = [path for path in saved if path.resolve() not in failed]
    for path in set(saved) - set(kept):
        path.unlink(missing_ok=True)  # checked as an upload, yet not embeddable: not kept without a row
    return {"added": report.added, "files": [str(p.relative_to(service.root)) for p in kept],
            "skipped": [str(f) for f in report.embed.failures], "rows": service.engine.count()}


@contextmanager
def received(upload: UploadFile):
    """The upload in a temporary file, refused (InputError) when too large or not a usable image."""
    name = upload.filename or "upload"
    with tempfile.TemporaryDirectory(prefix="imgsearch-upload-") as scratch:
        path = Path(scratch) / "upload"  # the client's name never reaches the file system here
        size = 0
        with open(path, "wb") as out:
            while chunk := upload.file.read(CHUNK):
                size += len(chunk)
                if size > MAX_UPLOAD_MB * 1_000_000:
                    raise UploadTooLarge(f"{name!r}: over {MAX_UPLOAD_MB} MB; the limit is {MAX_UPLOAD_MB} MB")
                out.write(chunk)
        problem = upload_problem(path)
        if problem:
            raise InputError(f"{name!r}: {problem}")
        yield path


def serve(model: str, engine: str, gallery, settings, host: str = "127.0.0.1", port: int = 8000,
          token: str | None = None, app: bool = True, text: bool = True, allow_anyone: bool = False) -> None:
    """Build (or reuse) the gallery's collection, then serve the API (and the app) until stopped."""
    from .web import choose_token, describe_exposure, ensure_port_free, run_web

    token = choose_token(token, host, allow_anyone)
    ensure_port_free(host, port)
    service = SearchService(model, engine, gallery, settings)
    try:
        report = service.ensure_built()
        print(f"{service.collection}: " + (f"built, {report}" if report else "reused"), flush=True)
        text_search = None
        if text:
            from ..gallery.text_search import TextSearch

            text_search = TextSearch(service)
        api = create_api(service, text_search)
        if app:
            from .app import Showcase, build_app, mount_app

            api = mount_app(api, build_app(Showcase.around(service, text_search)))
        print(f"serving {service.gallery.label} on http://{host}:{port} (API under /api, docs at /docs"
              + (", the app at /" if app else "") + "); " + describe_exposure(host, port, token), flush=True)
        run_web(api, host, port, token)
    finally:
        service.close()
        if service.settings.uses_milvus_lite:
            from ..index.milvus import stop_lite_servers

            stop_lite_servers()
