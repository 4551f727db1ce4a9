"""`FederIndex` and `FederView`: an index file Feder can draw and the views drawn from it.

Every value reaches JavaScript as JSON (`js_value`), and only the search parameters Feder reads
are accepted: `k` and `nprobe` for IVF_FLAT, `k` and `ef` for HNSW.
"""
from __future__ import annotations

import base64
import hashlib
import html
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._io import write_text
from ..config import Settings, display_path
from ..errors import UsageError
from .assets import FEDER_VERSION, feder_script, js_value, thumbnail_url, thumbnail_urls
from .files import read_faiss_ivf_flat, read_hnswlib

STAGES = {"coarse": "Coarse Search", "fine": "Fine Search (Distance)", "project": "Fine Search (Project)"}
VIEW_PARAMS = ("width", "height", "canvasScale", "projectMethod", "projectSeed")
# Feder lays out IVF centroids, and the vectors of a fine search, with UMAP, whose default of 15
# neighbours fails on fewer than 16 points: fewer points get fewer neighbours.
UMAP_NEIGHBOURS = 15
WAIT_FOR_DATA_MS = 60_000

JS = Path(__file__).parent / "js"  # the browser side: feder_data.js and feder_view.js


class FederIndex:
    """An index file Feder can draw, its images as thumbnails, and Feder's script, for the browser.

    The file is read here first (`feder.files`), so a file Feder cannot draw is a Python error.
    `media` maps ids to image files; each becomes a small inline JPEG that Feder's panels show.
    """

    def __init__(self, path, media: dict | None = None, thumb_size: int = 80, settings: Settings | None = None,
                 progress: bool = True):
        self.path = Path(path)
        head = self.path.read_bytes()[:1] if self.path.is_file() else b""
        self.source = "faiss" if head == b"I" else "hnswlib"  # faiss files start with a fourcc "I..."
        self.info = read_faiss_ivf_flat(self.path) if self.source == "faiss" else read_hnswlib(self.path)
        self.index_type = "IVF_FLAT" if self.source == "faiss" else "HNSW"
        self.script = feder_script(settings)
        known = set(self.ids.tolist())
        media = {int(i): p for i, p in (media or {}).items() if int(i) in known}
        self.media = thumbnail_urls(media, thumb_size, progress) if media else {}
        self.thumb_size = thumb_size
        digest = hashlib.sha256(self.path.read_bytes())
        digest.update(js_value(sorted(self.media)).encode())
        self.key = f"{digest.hexdigest()[:12]}-{self.script.key[:8]}"

    @classmethod
    def from_engine(cls, engine, path, media: dict | None = None, **kwargs) -> FederIndex:
        """Save a FAISS IVF_FLAT or hnswlib engine's index to `path` and wrap it."""
        if not hasattr(engine, "save"):
            raise UsageError(f"the {engine.name} engine cannot save an index file; Feder draws faiss or hnswlib files")
        return cls(engine.save(path), media, **kwargs)

    @property
    def ids(self) -> np.ndarray:
        return self.info.ids if self.source == "faiss" else self.info.labels

    @property
    def size_mb(self) -> float:
        return self.path.stat().st_size / 1e6

    def __repr__(self) -> str:
        return (f"FederIndex({self.index_type}, {display_path(self.path)}, {len(self.ids)} vectors of dimension "
                f"{self.info.dim}, {self.size_mb:.1f} MB, {len(self.media)} thumbnails, Feder {FEDER_VERSION} from "
                f"{self.script.origin})")

    # --- the data, sent to the page once ---------------------------------------------------------
    def payload(self) -> dict:
        """What the browser needs: Feder's module, the index bytes, the thumbnails."""
        return {"key": self.key, "source": self.source, "media": self.media,
                "index": base64.b64encode(self.path.read_bytes()).decode("ascii"),
                "script": {"key": self.script.key, "code": self.script.code, "url": self.script.url}}

    def data_html(self, served: bool | None = None) -> str:
        """The data inline, or, `served` (default: in a Jupyter server's kernel), in a file beside the
        notebook that the page fetches from the server: the saved notebook then stays small, and
        a reopened notebook draws its views from that file."""
        element = f"imgsearch-feder-data-{uuid.uuid4().hex[:12]}"
        served = in_jupyter_server() if served is None else served
        if served:
            payload = {"key": self.key, "element": element, **served_file(self.key, self.payload())}
        else:
            payload = {**self.payload(), "element": element}
        note = html.escape(repr(self))
        return (f'<div id="{element}" class="imgsearch-feder-data" data-status="loading" '
                f'style="font: 12px monospace; color: #555">{note}</div>\n'
                f"<script>{_script('feder_data.js', '__DATA__', payload)}</script>")

    def _repr_mimebundle_(self, include=None, exclude=None):
        metadata = {"text/html": {"imgsearch_feder": {"role": "data", "key": self.key}}}
        return {"text/html": self.data_html(), "text/plain": repr(self)}, metadata

    # --- views ---------------------------------------------------------------------------------
    def overview(self, **view_params) -> FederView:
        what = "the clusters" if self.index_type == "IVF_FLAT" else "the top levels of the graph"
        return self._view({"action": "overview"}, f"{self.index_type} overview: {what}", view_params)

    def search_by_id(self, id: int, k: int = 10, nprobe: int | None = None, ef: int | None = None,
                     stage: str | None = None, **view_params) -> FederView:
        """Search with a stored vector, as Feder's `searchById`; `stage` picks the IVF view shown first."""
        id = int(id)
        if id not in set(self.ids.tolist()):
            raise UsageError(f"id {id} is not in {display_path(self.path)}")
        spec = {"action": "searchById", "id": id}
        return self._search(spec, self._vector_of(id), f"search by id {id}", k, nprobe, ef, stage, view_params)

    def search_by_vector(self, vector, k: int = 10, nprobe: int | None = None, ef: int | None = None,
                         image=None, name: str | None = None, stage: str | None = None, **view_params) -> FederView:
        """Search with any vector of the index's dimension; `image` is shown as the target, and
        `name` (default: the image's file name) names the query in the caption."""
        vector = np.asarray(vector, np.float32).ravel()
        if vector.shape[0] != self.info.dim:
            raise UsageError(f"the vector has dimension {vector.shape[0]}, the index {self.info.dim}")
        if not np.isfinite(vector).all():
            raise UsageError("the vector has NaN or infinite values")
        spec = {"action": "search", "vector": vector.tolist(),
                "targetMedia": thumbnail_url(image, self.thumb_size) if image is not None else None}
        name = name or (Path(image).name if image is not None else None)
        what = f"search by vector ({name})" if name else "search by vector"
        return self._search(spec, vector, what, k, nprobe, ef, stage, view_params)

    def _search(self, spec, vector, what, k, nprobe, ef, stage, view_params) -> FederView:
        params = self.search_params(k, nprobe, ef)
        notes = ", ".join(f"{name}={value}" for name, value in params.items())
        if self.index_type == "IVF_FLAT":
            stage = stage or "coarse"
            if stage not in STAGES:
                raise UsageError(f"stage must be one of {', '.join(STAGES)}, not {stage!r}")
            points = int(self.info.list_sizes()[self.info.probed_lists(vector, params["nprobe"])].sum())
            projection = points > 3
            if not projection and stage == "project":
                raise UsageError(f"the {params['nprobe']} probed clusters hold {points} vectors, too few to project: "
                                 "raise nprobe")
            view_params = {"fineSearchWithProjection": projection, "neighbours": points - 1, **view_params}
            # "opens at": Feder's panel switches views, and the caption stays
            notes += f"; opens at: {STAGES[stage]}" + ("" if projection else f" (projection off: {points} vectors)")
            spec["stage"] = None if stage == "coarse" else STAGES[stage]
        elif stage is not None:
            raise UsageError("stage applies to IVF_FLAT views; Feder's HNSW search has one view")
        return self._view({**spec, "params": params}, f"{self.index_type} {what}: {notes}", view_params)

    def search_params(self, k: int, nprobe: int | None, ef: int | None) -> dict:
        """The parameters Feder reads for this index type (its HNSW parameter is `ef`, not `ef_search`)."""
        if k < 1:
            raise UsageError(f"k must be at least 1, not {k}")
        if self.index_type == "IVF_FLAT":
            if ef is not None:
                raise UsageError("ef applies to HNSW; an IVF_FLAT search takes nprobe")
            nprobe = 8 if nprobe is None else int(nprobe)
            if not 1 <= nprobe <= self.info.nlist:
                raise UsageError(f"nprobe must be between 1 and nlist={self.info.nlist}, not {nprobe}")
            return {"k": int(k), "nprobe": nprobe}
        if nprobe is not None:
            raise UsageError("nprobe applies to IVF_FLAT; an HNSW search takes ef")
        return {"k": int(k), "ef": 64 if ef is None else int(ef)}

    def _vector_of(self, id: int) -> np.ndarray | None:
        if self.source != "faiss":
            return None
        return self.info.vectors[int(np.flatnonzero(self.info.ids == id)[0])]

    def _view(self, spec: dict, caption: str, view_params: dict) -> FederView:
        neighbours = view_params.pop("neighbours", UMAP_NEIGHBOURS)
        unknown = set(view_params) - set(VIEW_PARAMS) - {"fineSearchWithProjection"}
        if unknown:
            raise UsageError(f"unknown view parameter(s) {sorted(unknown)}: Feder reads {', '.join(VIEW_PARAMS)}")
        params = {"width": 1000, "height": 600, "projectMethod": "umap", "projectSeed": 1, **view_params}
        if self.index_type == "IVF_FLAT":
            params["projectParams"] = {"nNeighbors": max(2, min(UMAP_NEIGHBOURS, self.info.nlist - 1, neighbours))}
        return FederView(self, {**spec, "viewParams": params}, caption)

    def page(self, *views: FederView, title: str = "Feder") -> str:
        """A standalone HTML document: the data and the views (for a browser, or to share)."""
        body = "\n".join([self.data_html(), *(view.html() for view in views)])
        return (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title></head>\n'
                f'<body style="background: #fff; margin: 8px">\n{body}\n</body></html>\n')


@dataclass
class FederView:
    """One Feder view; shown in a notebook it draws from the index data already on the page."""

    index: FederIndex
    spec: dict
    caption: str

    def html(self) -> str:
        element = f"imgsearch-feder-view-{uuid.uuid4().hex[:12]}"
        spec = {**self.spec, "element": element, "key": self.index.key, "waitMs": WAIT_FOR_DATA_MS}
        width, height = spec["viewParams"]["width"], spec["viewParams"]["height"]
        return (f'<div class="imgsearch-feder" style="width: {width}px">\n'
                f'<div class="imgsearch-feder-caption" style="font: 12px sans-serif; padding: 4px 0">'
                f"{html.escape(self.caption)}</div>\n"
                f'<div id="{element}" class="imgsearch-feder-view" data-status="waiting" '
                f'style="width: {width}px; height: {height}px; background: #000"></div>\n</div>\n'
                f"<script>{_script('feder_view.js', '__SPEC__', spec)}</script>")

    def _repr_mimebundle_(self, include=None, exclude=None):
        metadata = {"text/html": {"imgsearch_feder": {"role": "view", "key": self.index.key}}}
        return {"text/html": self.html(), "text/plain": f"Feder view: {self.caption}"}, metadata


def in_jupyter_server() -> bool:
    """True in a kernel a Jupyter server started (JupyterLab, Notebook): it sets JPY_SESSION_NAME."""
    return bool(os.environ.get("JPY_SESSION_NAME"))


DATA_FOLDER = "feder-data"  # beside the notebook (the kernel's folder), git-ignored; Jupyter serves no hidden files


def served_file(key: str, payload: dict) -> dict:
    """Write `payload` where the Jupyter server serves it; what the page needs to find it."""
    path = Path.cwd() / DATA_FOLDER / f"{key}.json"
    if not path.is_file():
        write_text(path, js_value(payload))
    return {"file": path.as_posix(), "home": Path.home().as_posix()}


def _script(name: str, placeholder: str, value) -> str:
    """One of the package's scripts with `placeholder` replaced by `value` as JSON."""
    return (JS / name).read_text().replace(placeholder, js_value(value))
