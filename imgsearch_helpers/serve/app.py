"""The showcase: upload a photo (or type a sentence) and see the most similar gallery images.

    python -m imgsearch_helpers.serve.app [--model efficientnet_lite0] [--engine milvus] [--port 7860] [--token T]

It runs on the same package functions as the notebooks and the CLI, binds to 127.0.0.1 unless
told otherwise, and builds the index first when it is missing (reusing it otherwise). Choosing
another model builds its index at once, with progress in the page and its time reported as a
build time. Uploads are checked before anything else: size, then whether it decodes as an image
and how many pixels it has; a bad upload gets a message in the page and the server goes on serving.
It is served as `imgsearch serve` serves it (`web.run_web`): the same token, limits and checks.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from a local demo

import gradio as gr  # noqa: E402

from ..config import get_settings  # noqa: E402
from ..data.images import upright_size  # noqa: E402
from ..data.regions import Region  # noqa: E402
from ..data.thumbnails import THUMB, Thumbnails, thumbnail  # noqa: E402
from ..data.tutorial import load_queries  # noqa: E402
from ..errors import FilterError, ImgsearchError, ServerError, UsageError  # noqa: E402
from ..gallery.collections import DATASET  # noqa: E402
from ..gallery.service import LOCAL_SUFFIX, SearchService  # noqa: E402
from ..index import ENGINES  # noqa: E402
from ..models import DEFAULT_MODEL, INSTANCE_SUFFIX, LITE_MODELS  # noqa: E402
from .duplicates_tab import add_tab  # noqa: E402
from .uploads import MAX_UPLOAD_MB, upload_problem  # noqa: E402

EXAMPLES = 6
KEEP_UPLOADS_S = 3600  # Gradio's copies of uploaded queries are deleted after an hour
APP_MODELS = [*LITE_MODELS, *(name + INSTANCE_SUFFIX for name in LITE_MODELS),  # +gem: the same object, not class
              DEFAULT_MODEL + LOCAL_SUFFIX]  # +local: the original of a real photo, by local features


class Showcase:
    """The app's state: one built SearchService per (model, engine), made on first use."""

    def __init__(self, model: str, engine: str, gallery=DATASET, text: bool = True, settings=None):
        self.settings = settings or get_settings()
        self.gallery = gallery
        self.services: dict[tuple[str, str], SearchService] = {}
        self.default = (model, engine)
        self.build(model, engine)
        self.text = None
        if text:  # the text path embeds the gallery with three models: done before the page opens
            from ..gallery.text_search import TextSearch

            self.text = TextSearch(self.services[self.default])
            print(f"text search: {self.text.name}, ready in {self.text.build_s:.1f} s", flush=True)

    @classmethod
    def around(cls, service: SearchService, text=None) -> Showcase:
        """The app over a service that is already built (and its text search): `imgsearch serve`."""
        showcase = cls.__new__(cls)
        showcase.settings = service.settings
        showcase.gallery = DATASET if service.gallery.is_dataset else service.gallery.key
        showcase.services = {(service.model_name, service.engine_kind): service}
        showcase.default, showcase.text = (service.model_name, service.engine_kind), text
        return showcase

    @property
    def thumbnails(self) -> Thumbnails:
        return self.services[self.default].thumbnails

    def build(self, model: str, engine: str) -> str:
        """Build (or reuse) the collection for (model, engine); says what it did."""
        if (model, engine) in self.services:
            return f"{model}, {engine}: ready."
        service = SearchService(model, engine, self.gallery, settings=self.settings)
        report = service.ensure_built()
        note = f"{service.collection} ({engine}): " + (f"built, {report}" if report else "reused")
        print(note, flush=True)
        self.services[(model, engine)] = service
        if report is None:
            return f"{model}, {engine}: ready."
        return f"Index for {model} ({engine}) built in {report.seconds:.1f} s ({report.plan.summary()})."

    def switch(self, model: str, engine: str, progress=gr.Progress(track_tqdm=True)):  # noqa: B008
        """A model or engine chosen in the page: build its index now, with progress in the page."""
        if model not in APP_MODELS or engine not in ENGINES:
            return f"Choose a model from {', '.join(APP_MODELS)} and an engine from {', '.join(ENGINES)}."
        return self.build(model, engine)

    def search_upload(self, upload, model: str, engine: str, k: int, where: str = "", verify: bool = False,
                      diffuse: bool = False):
        """(gallery items, status, preview) for an uploaded file; a bad file only changes the message."""
        if not upload:
            return [], "Upload an image, or pick one of the examples.", None
        path = Path(upload)
        if not is_uploaded(path):
            return [], "Upload an image: only files sent to this page are read.", None
        problem = upload_problem(path)
        if problem:
            return [], f"**{path.name}**: {problem}", None
        service = self.services.get((model, engine))
        if service is None:
            return [], f"The index for {model} ({engine}) is being built; search again when it is ready.", None
        start = time.perf_counter()
        try:
            found = service.search_images([path], int(k), where.strip() or None, verify=verify, diffuse=diffuse)
        except FilterError as exc:
            return [], f"**filter**: {exc}", thumbnail(path)
        except UsageError as exc:  # diffusion with a filter
            return [], f"**{exc}**", thumbnail(path)
        ms = 1000 * (time.perf_counter() - start)
        hits = found.hits[0]
        status = f"Top {len(hits)} for **{path.name}** in {ms:.0f} ms ({model}, {engine})."
        if service.local:
            status = local_status(hits, path.name, ms)
        if diffuse:
            status += " Ranked by diffusion over the gallery's neighbours."
        if verify:
            status += f" {sum(bool(hit.verified) for hit in hits)} verified by local features, listed first."
        return gallery_items(hits, service.thumbnails), status, thumbnail(path)

    def match_region(self, upload, model: str, engine: str, k: int, region: str = "", draw: bool = True):
        """(gallery items, status, drawn matches) of a local-feature search (`+local` models) with a
        box `x,y,w,h` of the query ("": all of it); the first match's features drawn when `draw`."""
        path = Path(upload) if upload else None
        if path is None or not is_uploaded(path) or upload_problem(path):
            return [], "Upload an image first.", None
        service = self.services.get((model, engine))
        if service is None or not service.local:
            return [], f"Choose **{DEFAULT_MODEL}{LOCAL_SUFFIX}** in the model list: it matches local features.", None
        start = time.perf_counter()
        try:
            box = Region.parse(region) if region and region.strip() else None
            with tempfile.TemporaryDirectory(prefix="imgsearch-app-") as folder:
                query = box.crop_to(path, Path(folder)) if box else path
                hits = service.search_images([query], int(k)).hits[0]
                drawn = service.draw_match(query, hits[0]) if hits and draw else None
        except UsageError as exc:
            return [], f"**{exc}**", None
        ms = 1000 * (time.perf_counter() - start)
        return gallery_items(hits, service.thumbnails), local_status(hits, path.name, ms), drawn

    def search_text(self, sentence: str, k: int, where: str = ""):
        if not sentence or not sentence.strip():
            return [], "Type a sentence, e.g. *a dog on a sofa*."
        start = time.perf_counter()
        try:
            hits = self.text.search(sentence.strip(), int(k), where.strip() or None).hits[0]
        except FilterError as exc:
            return [], f"**filter**: {exc}"
        ms = 1000 * (time.perf_counter() - start)
        status = f"Top {len(hits)} for *{sentence.strip()}* in {ms:.0f} ms ({self.text.name})."
        return gallery_items(hits, self.thumbnails), status


def pick_corner(upload, corner, event: gr.SelectData):
    """A click on the query's preview: the first marks a corner, the second the opposite one, and
    the box between them (in the uploaded image's pixels) goes into the region field."""
    if not upload or not is_uploaded(Path(upload)):
        return gr.update(), None
    width, height = upright_size(upload)
    scale = max(width, height) / THUMB if max(width, height) > THUMB else 1.0  # the preview is a thumbnail
    x, y = (min(round(v * scale), limit) for v, limit in zip(event.index, (width, height)))
    if corner is None:
        return gr.update(value="", placeholder=f"{x},{y},... now click the opposite corner"), (x, y)
    left, top = min(x, corner[0]), min(y, corner[1])
    return f"{left},{top},{max(1, abs(x - corner[0]))},{max(1, abs(y - corner[1]))}", None


def is_uploaded(path: Path) -> bool:
    """A file in Gradio's upload folder (where it keeps what clients send), not any path a client names."""
    from gradio.utils import get_upload_folder

    return path.resolve().is_relative_to(Path(get_upload_folder()).resolve())


def gallery_items(hits, thumbnails: Thumbnails) -> list:
    """Thumbnails (made once, `data.thumbnails`) captioned score first, so a long label cannot hide
    it (then ✓ if verified, and the matching features of a local-feature search)."""
    return [(thumbnails.get(hit.path), f"{hit.similarity:.3f} · {hit.label}" + (" ✓" if hit.verified else "")
             + (f" · {hit.inliers} features" if hit.inliers is not None else "")) for hit in hits]


def local_status(hits, name: str, ms: float) -> str:
    if not hits:
        return f"No match for **{name}**: no gallery image shares enough local features with it ({ms:.0f} ms)."
    return f"{len(hits)} match(es) for **{name}** by local features in {ms:.0f} ms, the most evidence first."


def example_queries(showcase: Showcase) -> list[str]:
    """Query images that are not in the gallery: the tutorial's test photos, one per class."""
    if showcase.gallery != DATASET:
        return []
    queries = load_queries(settings=showcase.settings)
    return queries.groupby("label").head(1)["path"].head(EXAMPLES).tolist()


def build_app(showcase: Showcase, k: int = 6) -> gr.Blocks:
    model, engine = showcase.default
    with gr.Blocks(title="imgsearch", delete_cache=(KEEP_UPLOADS_S, KEEP_UPLOADS_S)) as app:
        gr.Markdown("# imgsearch\nReverse image search: EfficientNet-Lite embeddings, cosine search in Milvus. "
                    "Upload a photo, or pick an example (test photos, not in the gallery).")
        with gr.Row():
            models = APP_MODELS if model in APP_MODELS else [model, *APP_MODELS]
            model_choice = gr.Dropdown(models, value=model, label="model")
            engine_choice = gr.Dropdown(list(ENGINES), value=engine, label="engine")
            top_k = gr.Slider(1, 20, value=k, step=1, label="results")
            verify = gr.Checkbox(label="verify the top 10 by local features", elem_id="query-verify")
            diffuse = gr.Checkbox(label="rank by the gallery's neighbours (diffusion: better for classes)",
                                  elem_id="query-diffuse")
        where = gr.Textbox(label="filter (optional)", placeholder='label in ["Afghan_hound", "goldfish"]',
                           elem_id="query-filter")
        build_status = gr.Markdown(elem_id="build-status")
        with gr.Tab("Search by image"):
            with gr.Row():
                upload = gr.File(label="query image", type="filepath", elem_id="query-upload", scale=3)
                preview = gr.Image(label="query (click two corners to search a box of it)", type="pil",
                                   interactive=False, height=160, scale=1, elem_id="query-preview")
            examples = example_queries(showcase)
            if examples:
                gr.Examples([[p] for p in examples], inputs=[upload], label="examples (test photos)")
            image_status = gr.Markdown(elem_id="image-status")
            image_results = gr.Gallery(label="most similar", columns=6, height="auto", elem_id="image-results")
            with gr.Accordion(f"Find the original by local features ({DEFAULT_MODEL}{LOCAL_SUFFIX})", open=False):
                with gr.Row():
                    region = gr.Textbox(label="region of the query (optional): x,y,w,h in pixels",
                                        placeholder="120,80,300,200", elem_id="query-region")
                    draw = gr.Checkbox(value=True, label="draw the matching features", elem_id="query-draw")
                    match = gr.Button("Match", elem_id="query-match")
                drawn = gr.Image(label="matching features: query (left), first match (right)", interactive=False,
                                 elem_id="query-drawn")
            match.click(showcase.match_region, [upload, model_choice, engine_choice, top_k, region, draw],
                        [image_results, image_status, drawn])
            corner = gr.State(None)  # the first corner clicked on the preview, in the upload's pixels
            preview.select(pick_corner, [upload, corner], [region, corner])
        inputs = [upload, model_choice, engine_choice, top_k, where, verify, diffuse]
        outputs = [image_results, image_status, preview]
        for choice in (model_choice, engine_choice):
            choice.change(showcase.switch, [model_choice, engine_choice], [build_status]).then(
                showcase.search_upload, inputs, outputs)
        upload.change(showcase.search_upload, inputs, outputs)
        top_k.release(showcase.search_upload, inputs, outputs)
        where.submit(showcase.search_upload, inputs, outputs)
        verify.change(showcase.search_upload, inputs, outputs)
        diffuse.change(showcase.search_upload, inputs, outputs)
        if showcase.text:
            with gr.Tab("Search by text"):
                sentence = gr.Textbox(label="a sentence", placeholder="a dog on a sofa", elem_id="query-text")
                search = gr.Button("Search", elem_id="text-search", variant="primary")
                text_status = gr.Markdown(elem_id="text-status")
                text_results = gr.Gallery(label="most similar", columns=6, height="auto", elem_id="text-results")
                for trigger in (sentence.submit, search.click):
                    trigger(showcase.search_text, [sentence, top_k, where], [text_results, text_status])
        if showcase.gallery != DATASET:  # the tutorial's images are not the user's to move
            add_tab(showcase)
    return app


def mount_app(api, blocks):
    """Mount the Gradio app at `/` of the FastAPI `api` with Gradio's file-path checks in force.

    Gradio checks the paths a client names in a file input only once its app has launched, and
    `gr.mount_gradio_app` leaves it marked not launched: a client could then name any file on
    the server (`/etc/shadow`, `/dev/zero`). Mounted here, it is marked launched, and the check
    is tried once so that a Gradio that stops refusing is an error at start, not a hole.
    """
    api = gr.mount_gradio_app(api, blocks, path="/", ssr_mode=False, **launch_options())
    blocks.has_launched = True
    refuse_outside_paths(blocks)
    return api


def refuse_outside_paths(blocks) -> None:
    from gradio.context import LocalContext
    from gradio.exceptions import InvalidPathError
    from gradio.processing_utils import _check_allowed

    context = LocalContext.blocks.set(blocks)
    try:
        _check_allowed(str(Path(__file__).resolve()), check_in_upload_folder=True)
    except InvalidPathError:
        return
    finally:
        LocalContext.blocks.reset(context)
    raise ServerError("this Gradio accepts a client-named file outside its upload folder; not serving the app "
                      "(serve with --no-app, or install the pinned Gradio)")


def screenshot(url: str, query: Path, width: int = 1300, height: int = 1000) -> bytes:
    """A JPEG of the app at `url` with `query` uploaded and its results on the page (headless
    Chromium): what a saved notebook keeps of the live app."""
    from ..browser import headless_chromium, outside_event_loop

    def shoot() -> bytes:
        with headless_chromium() as browser:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(url)
            page.wait_for_selector("#query-upload input[type=file]", state="attached", timeout=120_000)
            page.set_input_files("#query-upload input[type=file]", str(query))
            page.wait_for_function("(name) => document.querySelector('#image-status').innerText.includes(name)",
                                   arg=Path(query).name, timeout=120_000)
            page.wait_for_function("document.querySelectorAll('#image-results img').length > 0 && "
                                   "[...document.querySelectorAll('#image-results img')].every(i => i.complete)",
                                   timeout=60_000)
            return page.screenshot(type="jpeg", quality=75, full_page=True)

    return outside_event_loop(shoot)


def launch_options() -> dict:
    """Gradio's options shared by `make app` and `imgsearch serve`."""
    return {"max_file_size": f"{MAX_UPLOAD_MB}mb", "footer_links": []}


def main(argv=None) -> None:
    from fastapi import FastAPI

    from .web import choose_token, describe_exposure, ensure_port_free, port_number, run_web

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODEL, choices=APP_MODELS)
    parser.add_argument("--engine", default=ENGINES[0], choices=ENGINES)
    parser.add_argument("--gallery", default=DATASET, help="'dataset' (the tutorial's) or a folder of images")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (another than loopback needs a token)")
    parser.add_argument("--port", type=port_number, default=7860)
    parser.add_argument("--token", help="ask browsers for this token at /login (or IMGSEARCH_API_TOKEN)")
    parser.add_argument("--allow-anyone", action="store_true", help="serve on a non-loopback address without a token")
    parser.add_argument("--no-text", action="store_true", help="leave out the text search tab")
    args = parser.parse_args(argv)
    try:
        token = choose_token(args.token, args.host, args.allow_anyone)
        ensure_port_free(args.host, args.port)
    except ImgsearchError as exc:
        parser.exit(exc.exit_code, f"{parser.prog}: {exc}\n")
    showcase = Showcase(args.model, args.engine, args.gallery, text=not args.no_text)
    web = FastAPI()

    @web.get("/api/health")
    def health() -> dict:  # as `imgsearch serve` answers it: whether the app is up (no token needed)
        return {"status": "ok", "model": showcase.default[0], "engine": showcase.default[1]}

    app = mount_app(web, build_app(showcase).queue(default_concurrency_limit=1))
    print(f"the app on http://{args.host}:{args.port}/; {describe_exposure(args.host, args.port, token)}", flush=True)
    run_web(app, args.host, args.port, token)


if __name__ == "__main__":
    main()
