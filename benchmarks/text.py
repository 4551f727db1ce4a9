"""Text-to-image search quality: each class name as a phrase is a query, its class's images the
relevant set; the classes' WordNet definitions (which do not name them) as a harder query set.

    python benchmarks/text.py [--out FILE]

The offline path always runs, on the configured backend and again on PyTorch (`torch_offline`,
the same run: every network of the path, the sentence model included); CLIP (ViT-B-32, OpenAI
weights) runs when its weights load, else the file says why. Milvus Lite IVF_FLAT (nlist 16,
nprobe 8), inner product, in a temporary folder; image vectors go through the configured
embedding cache.
"""
from __future__ import annotations

from _harness import Bench, run_benchmark

from imgsearch_helpers.data.tutorial import load_catalog
from imgsearch_helpers.embed.cache import open_cache
from imgsearch_helpers.errors import ClipUnavailable
from imgsearch_helpers.evaluation.results import metric_fields
from imgsearch_helpers.evaluation.runs import evaluate_text
from imgsearch_helpers.index import GALLERY_IVF, open_engine
from imgsearch_helpers.models.clip import load_clip
from imgsearch_helpers.models.sentence import ClassNameTextEncoder, load_sentence_model
from imgsearch_helpers.retrieval.search import ingest
from imgsearch_helpers.retrieval.text import ClipTextPath, OfflineTextPath, class_queries

EXAMPLES = ["a white dog", "a black dog", "a red sports car", "a bowl of soup", "a bird on a branch"]


def path_row(path, catalog, cache, settings, name: str) -> dict:
    """Index the gallery with `path`, score both query sets, and list the examples' top 5 labels."""
    engine = open_engine("milvus", metric="IP", collection=f"text_{name}", index=GALLERY_IVF, settings=settings)
    try:
        engine.drop()
        indexed = ingest(catalog, path.images, engine, cache)
        rows = {kind: evaluate_text(path, engine, catalog, class_queries(catalog, kind)) for kind in
                ("names", "definitions")}
        ids, _ = engine.search(path.text_vectors(EXAMPLES), 5)
    finally:
        engine.close()
    labels = catalog.set_index("id")["label"]
    return {
        "path": path.name,
        **metric_fields({"names": rows["names"]}, ("mhr@10", "towhee_map@10", "ap@10"), key="{metric}"),
        **metric_fields({"definitions": rows["definitions"]}, key="{row}_{metric}"),
        "query_ms": round(rows["names"]["query_ms"], 2),
        "index_images_s": round(indexed.seconds, 1),
        "examples_top5": {text: labels[row].tolist() for text, row in zip(EXAMPLES, ids.tolist())},
    }


def measure(bench: Bench) -> dict:
    settings = bench.settings()
    catalog = load_catalog(settings)
    cache = open_cache(settings)
    offline = path_row(OfflineTextPath(settings=settings), catalog, cache, settings, "offline")
    on_torch = bench.settings(backend="torch")
    encoder = ClassNameTextEncoder(model=load_sentence_model(on_torch))
    torch_offline = path_row(OfflineTextPath(settings=on_torch, encoder=encoder), catalog, cache, settings,
                             "offline_torch")
    try:
        clip, clip_note = path_row(ClipTextPath(load_clip(settings=settings)), catalog, cache, settings, "clip"), None
    except ClipUnavailable as exc:
        clip, clip_note = None, str(exc)
    return {
        "slice": settings.slice,
        "queries": catalog["label"].nunique(),
        "gallery": len(catalog),
        "index": GALLERY_IVF.as_dict(),
        "offline_text_mhr@10": offline["mhr@10"],
        "offline_text_ap@10": offline["ap@10"],
        "offline_definitions_mhr@10": offline["definitions_mhr@10"],
        "offline_text_query_ms": offline["query_ms"],
        "torch_text_query_ms": torch_offline["query_ms"],
        "backend": settings.backend,
        "offline": offline,
        "torch_offline": torch_offline,
        "clip_mhr@10": clip["mhr@10"] if clip else None,
        "clip": clip,
        "clip_note": clip_note,
    }


if __name__ == "__main__":
    run_benchmark(measure, __doc__, "text.json")
