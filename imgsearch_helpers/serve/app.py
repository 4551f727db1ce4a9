"""The showcase: upload a photo (or type a sentence) and see the most similar gallery images.

    python -m imgsearch_helpers.serve.app [--model efficientnet_lite0] [--engine milvus] [--port 7860]

It runs on the same package functions as the notebooks and the CLI, binds to 127.0.0.1 unless
told otherwise, and builds the index first when it is missing (reusing it otherwise). Uploads
are checked before anything else: size, then whether it decodes as an image and how many pixels
it has; a bad upload gets a message in the page and the server goes on serving.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from a local demo

import gradio as gr  # noqa: E402

from ..config import get_settings  # noqa: E402
from ..errors import ImageError  # noqa: E402
from ..images import load_image  # noqa: E402
from ..index import ENGINES  # noqa: E402
from ..models import DEFAULT_MODEL, LITE_MODELS  # noqa: E402
from ..plot import thumbnail  # noqa: E402
from .service import SearchService  # noqa: E402

MAX_UPLOAD_MB = 20
MAX_PIXELS = 40_000_000  # 40 MP: any camera photo; a decompression bomb is refused before decoding


class Showcase:
    """The app's state: one built SearchService per (model, engine), made on first use."""

    def __init__(self, model: str, engine: str, text: bool = True, settings=None):
        self.settings = settings or get_settings()
        self.services: dict[tuple[str, str], SearchService] = {}
        self.default = (model, engine)
        self.service(model, engine)
        self.text = TextSearch(self.services[self.default]) if text else None

    def service(self, model: str, engine: str) -> SearchService:
        if (model, engine) not in self.services:
            service = SearchService(model, engine, settings=self.settings)
            report = service.ensure_built()
            print(f"{service.collection} ({engine}): " + (f"built, {report}" if report else "reused"), flush=True)
            self.services[(model, engine)] = service
        return self.services[(model, engine)]

    def search_upload(self, upload, model: str, engine: str, k: int, progress=gr.Progress(track_tqdm=True)):  # noqa: B008
        """(gallery items, status, preview) for an uploaded file; a bad file only changes the message.

        Gradio passes `progress`: the embedding bar of a first search with another model shows in the page.
        """
        if not upload:
            return [], "Upload an image, or pick one of the examples.", None
        path = Path(upload)
        problem = upload_problem(path)
        if problem:
            return [], f"**{path.name}**: {problem}", None
        start = time.perf_counter()
        hits = self.service(model, engine).search_images([path], int(k))[0]
        ms = 1000 * (time.perf_counter() - start)
        status = f"Top {len(hits)} for **{path.name}** in {ms:.0f} ms ({model}, {engine})."
        return gallery_items(hits), status, thumbnail(path)

    def search_text(self, sentence: str, k: int):
        if not sentence or not sentence.strip():
            return [], "Type a sentence, e.g. *a dog on a sofa*."
        start = time.perf_counter()
        hits = self.text.search(sentence.strip(), int(k))
        ms = 1000 * (time.perf_counter() - start)
        return gallery_items(hits), f"Top {len(hits)} for *{sentence.strip()}* in {ms:.0f} ms ({self.text.name})."


class TextSearch:
    """The offline text path over the app's gallery: Lite0 class probabilities, from cached features."""

    def __init__(self, service: SearchService):
        from ..index import open_engine
        from ..recipes import Recipe
        from ..search import ingest
        from ..text import OfflineTextPath

        self.service = service
        self.path = OfflineTextPath(Recipe(service.model_name, "probabilities"), settings=service.settings)
        self.engine = open_engine("exact", metric="IP")
        ingest(service.catalog, self.path.images, self.engine, service.cache, progress=False)
        self.name = f"offline text path: {service.model_name} class probabilities"

    def search(self, sentence: str, k: int):
        return self.service.hits(*self.engine.search(self.path.text_vectors([sentence]), k))[0]


def upload_problem(path: Path) -> str | None:
    """Why an uploaded file cannot be a query (None when it can)."""
    size = path.stat().st_size
    if size > MAX_UPLOAD_MB * 1_000_000:
        return f"the file is {size / 1e6:.1f} MB; the limit is {MAX_UPLOAD_MB} MB."
    try:
        load_image(path, max_pixels=MAX_PIXELS, min_side=224)
    except ImageError as exc:
        return exc.reason + "."
    return None


def gallery_items(hits) -> list:
    return [(thumbnail(hit.path), f"{hit.label} · {hit.similarity:.3f}") for hit in hits]


def build_app(showcase: Showcase, k: int = 6) -> gr.Blocks:
    model, engine = showcase.default
    catalog = showcase.services[showcase.default].catalog
    examples = catalog.groupby("label").head(1).path.head(6)  # one image of each of six classes
    with gr.Blocks(title="imgsearch") as app:
        gr.Markdown("# imgsearch\nReverse image search: EfficientNet-Lite embeddings, cosine search in Milvus. "
                    "Upload a photo, or pick an example from the gallery.")
        with gr.Row():
            model_choice = gr.Dropdown(list(LITE_MODELS), value=model, label="model")
            engine_choice = gr.Dropdown(list(ENGINES), value=engine, label="engine")
            top_k = gr.Slider(1, 20, value=k, step=1, label="results")
        with gr.Tab("Search by image"):
            with gr.Row():
                upload = gr.File(label="query image", type="filepath", elem_id="query-upload", scale=3)
                preview = gr.Image(label="query", type="pil", interactive=False, height=160, scale=1)
            gr.Examples([[str(p)] for p in examples], inputs=[upload], label="examples from the gallery")
            image_status = gr.Markdown(elem_id="image-status")
            image_results = gr.Gallery(label="most similar", columns=6, height="auto", elem_id="image-results")
        inputs = [upload, model_choice, engine_choice, top_k]
        for trigger in (upload.change, model_choice.change, engine_choice.change, top_k.release):
            trigger(showcase.search_upload, inputs, [image_results, image_status, preview])
        if showcase.text:
            with gr.Tab("Search by text"):
                sentence = gr.Textbox(label="a sentence", placeholder="a dog on a sofa", elem_id="query-text")
                text_status = gr.Markdown(elem_id="text-status")
                text_results = gr.Gallery(label="most similar", columns=6, height="auto", elem_id="text-results")
                sentence.submit(showcase.search_text, [sentence, top_k], [text_results, text_status])
    return app


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODEL, choices=LITE_MODELS)
    parser.add_argument("--engine", default=ENGINES[0], choices=ENGINES)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 exposes it to the network)")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--no-text", action="store_true", help="leave out the text search tab")
    args = parser.parse_args(argv)
    showcase = Showcase(args.model, args.engine, text=not args.no_text)
    app = build_app(showcase)
    app.queue(default_concurrency_limit=1).launch(server_name=args.host, server_port=args.port,
                                                  max_file_size=f"{MAX_UPLOAD_MB}mb", footer_links=[])


if __name__ == "__main__":
    main()
