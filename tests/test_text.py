"""Text-to-image search: the CLIP path with a small randomly initialised open_clip model (code
path, shapes, normalization, index round trip, local weights, both towers exported), and the
offline path for real."""
import json

import numpy as np
import open_clip
import pytest
import torch

from imgsearch_helpers.config import get_settings
from imgsearch_helpers.data.images import load_image
from imgsearch_helpers.data.tutorial import load_catalog
from imgsearch_helpers.embed.stream import embed_paths
from imgsearch_helpers.errors import ClipUnavailable
from imgsearch_helpers.evaluation.runs import evaluate_text
from imgsearch_helpers.index import IndexSpec, open_engine
from imgsearch_helpers.models.clip import load_clip
from imgsearch_helpers.models.sentence import ClassNameTextEncoder
from imgsearch_helpers.retrieval.recipes import Recipe
from imgsearch_helpers.retrieval.search import ingest
from imgsearch_helpers.retrieval.text import ClipTextPath, OfflineTextPath, class_queries, open_text_path
from imgsearch_helpers.runtime import MIN_COSINE
from imgsearch_helpers.vectors import l2_normalize

TINY = "imgsearch-tiny-clip"
TINY_CONFIG = {"embed_dim": 32,
               "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16, "head_width": 32},
               "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2}}


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    config = tmp_path_factory.mktemp("clip") / f"{TINY}.json"
    config.write_text(json.dumps(TINY_CONFIG))
    open_clip.add_model_config(config)
    return load_clip(TINY, pretrained=None)


@pytest.fixture(scope="module")
def catalog(real_dataset):
    return load_catalog(get_settings(slice="tiny"))


@pytest.fixture(scope="module")
def encoder():
    return ClassNameTextEncoder()


def test_random_clip_is_labelled_as_such(tiny_clip):
    assert tiny_clip.random and "random" in tiny_clip.weights
    assert "RANDOM WEIGHTS: not CLIP results" in ClipTextPath(tiny_clip).name


def test_clip_vectors_are_unit_length_with_the_model_dimension(tiny_clip, catalog):
    path = ClipTextPath(tiny_clip)
    texts = path.text_vectors(["a white dog", "a black dog", ""])
    embedded = embed_paths(catalog.path[:6], path.images, progress=False)
    images, report = embedded.vectors, embedded.report
    assert texts.shape == (3, 32) and images.shape == (6, 32) and embedded.positions == list(range(6))
    np.testing.assert_allclose(np.linalg.norm(texts, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(images, axis=1), 1, atol=1e-5)
    assert not np.allclose(texts[0], texts[1])  # different sentences, different vectors
    assert report.failures == []


@pytest.mark.parametrize("kind, index_type", [("milvus", "FLAT"), ("hnswlib", "HNSW")])
def test_clip_images_round_trip_through_an_index(tiny_clip, catalog, kind, index_type, tmp_path):
    engine = open_engine(kind, metric="IP", collection="clip_round_trip", index=IndexSpec(index_type),
                         settings=get_settings(milvus_uri=str(tmp_path / "clip.db")))
    path = ClipTextPath(tiny_clip)
    gallery = catalog.iloc[:20]
    report = ingest(gallery, path.images, engine, progress=False)
    assert report.added == engine.count() == 20
    vectors = embed_paths(gallery.path, path.images, progress=False).vectors
    ids, _ = engine.search(vectors, 1)
    assert ids[:, 0].tolist() == gallery.id.tolist()  # every image finds itself first
    assert engine.search(path.text_vectors(["a photo"]), 5)[0].shape == (1, 5)
    engine.close()


def torch_texts(clip, sentences) -> np.ndarray:
    with torch.no_grad():
        return l2_normalize(clip.images.model.encode_text(clip.tokenizer(sentences)).numpy())


def torch_images(clip, batch) -> np.ndarray:
    with torch.no_grad():
        return l2_normalize(clip.images.model.encode_image(torch.from_numpy(batch)).numpy())


def test_local_clip_weights_are_loaded_from_the_weights_folder(tiny_clip, tmp_path):
    weights = tmp_path / "open_clip" / f"{TINY}-mytag.bin"
    weights.parent.mkdir()
    changed = load_clip(TINY, pretrained=None)
    with torch.no_grad():
        for parameter in changed.images.model.parameters():
            parameter.add_(0.01)  # not the seed-0 weights: loading must take these
    torch.save(changed.images.model.state_dict(), weights)
    loaded = load_clip(TINY, "mytag", get_settings(weights_dir=tmp_path))
    assert "local file" in loaded.weights and not loaded.random and loaded.images.key != tiny_clip.images.key
    np.testing.assert_allclose(loaded.texts(["a dog"]), torch_texts(changed, ["a dog"]), atol=1e-5)
    assert not np.allclose(loaded.texts(["a dog"]), tiny_clip.texts(["a dog"]), atol=1e-3)


def test_both_clip_towers_run_exported_and_agree_with_pytorch(tiny_clip, catalog):
    assert tiny_clip.images.runtime.name.startswith("openvino-") and tiny_clip.text_runtime is not None
    assert tiny_clip.images.key.endswith("|" + tiny_clip.images.runtime.name)
    sentences = ["a white dog", "a black dog", "", "an aeroplane over the sea at dusk"]
    batch = np.stack([tiny_clip.images.preprocess(load_image(p)) for p in catalog.path[:6]])
    for exported, reference in ((tiny_clip.texts(sentences), torch_texts(tiny_clip, sentences)),
                                (tiny_clip.images.embed_batch(batch), torch_images(tiny_clip, batch))):
        assert (exported * reference).sum(1).min() >= MIN_COSINE


def test_clip_stays_on_pytorch_when_asked_or_when_a_tower_fails_its_check(tiny_clip, tmp_path):
    on_torch = load_clip(TINY, pretrained=None, settings=get_settings(backend="torch", cache_dir=tmp_path))
    assert on_torch.images.runtime is None and on_torch.text_runtime is None and "|" not in on_torch.images.key
    assert not (tmp_path / "models").exists()  # nothing exported
    settings = get_settings(cache_dir=tmp_path)
    assert load_clip(TINY, pretrained=None, settings=settings).text_runtime is not None
    meta_file = next((tmp_path / "models").glob("*/meta.json"))
    meta = json.loads(meta_file.read_text())
    meta["checks"] = {name: 0.5 if name.startswith("text") else value for name, value in meta["checks"].items()}
    meta_file.write_text(json.dumps(meta))  # as a runtime version that moved the text vectors would leave it
    named = get_settings(cache_dir=tmp_path, backend="openvino")  # a failure already kept is said when asked for
    with pytest.warns(UserWarning, match=r"CLIP text vectors unlike PyTorch's \(smallest cosine 0.50000"):
        failed = load_clip(TINY, pretrained=None, settings=named)
    assert failed.text_runtime is None and failed.images.runtime is not None
    np.testing.assert_allclose(failed.texts(["a dog"]), torch_texts(failed, ["a dog"]), atol=1e-6)


def test_clip_without_weights_is_a_clear_error_and_auto_falls_back(tmp_path):
    settings = get_settings(weights_dir=tmp_path)
    with pytest.raises(ClipUnavailable, match=r"ViT-B-32 \(openai\) cannot be downloaded here.*open_clip/ViT-B-32"):
        load_clip(settings=settings)
    with pytest.raises(ClipUnavailable):
        open_text_path("clip", settings)
    path, note = open_text_path("auto", settings, recipe=Recipe("efficientnet_lite0", "probabilities"))
    assert path.kind == "offline" and note.startswith("CLIP is not available, so the offline path runs.")


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="unknown text path 'bert'"):
        open_text_path("bert")
    with pytest.raises(ValueError, match="unknown open_clip model 'ViT-Q-99'"):
        load_clip("ViT-Q-99")
    with pytest.raises(ValueError, match="class-probability recipe"):
        OfflineTextPath(Recipe("efficientnet_lite0"))


def test_a_sentence_becomes_a_distribution_over_imagenet_classes(encoder):
    weights = encoder.distribution(["Afghan hound", "a bowl of soup"])
    assert weights.shape == (2, 1000)
    np.testing.assert_allclose(weights.sum(axis=1), 1, rtol=1e-5)
    assert encoder.top_classes("Afghan hound", 1)[0][0] == "Afghan hound"
    assert encoder.top_classes("tench")[0][0] == "tench"
    with pytest.raises(ValueError, match="temperature must be positive"):
        ClassNameTextEncoder(temperature=0, model=encoder.model)


def test_offline_text_vectors_match_the_image_layout(encoder):
    single = OfflineTextPath(Recipe("efficientnet_lite0", "probabilities"), encoder=encoder)
    ensemble = OfflineTextPath(Recipe(("efficientnet_lite0", "efficientnet_lite1"), "probabilities"), encoder=encoder)
    one, two = single.text_vectors(["a white dog"]), ensemble.text_vectors(["a white dog"])
    assert one.shape == (1, 1000) and two.shape == (1, 2000) and ensemble.dim == 2000
    np.testing.assert_allclose(np.linalg.norm(one), 1, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(two), 1, rtol=1e-5)
    np.testing.assert_allclose(two[0, :1000] * np.sqrt(2), one[0], rtol=1e-5)


def test_class_queries_names_and_definitions(catalog):
    names = class_queries(catalog)
    assert len(names) == catalog.label.nunique() == 10
    assert names.text.str.contains("_").sum() == 0
    definitions = class_queries(catalog, "definitions")
    afghan = definitions.set_index("label").text.get("Afghan_hound")
    assert afghan is None or "hound" in afghan  # the tiny slice has every 10th class
    assert (definitions.text.str.len() > 15).all() and not (definitions.text == names.text).any()
    renamed = catalog.assign(path=catalog.path.str.replace("/n0", "/x0", regex=False))
    with pytest.raises(ValueError, match="no ImageNet definition"):
        class_queries(renamed, "definitions")


def test_evaluate_text_scores_each_class_query(encoder, catalog):
    path = OfflineTextPath(Recipe("efficientnet_lite0", "probabilities"), encoder=encoder)
    engine = open_engine("exact", metric="IP")
    ingest(catalog, path.images, engine, progress=False)
    row = evaluate_text(path, engine, catalog, class_queries(catalog), k=10, queries_from="names")
    assert row["path"] == "offline" and row["queries"] == 10 and row["queries_from"] == "names"
    assert 0 <= row["ap@10"] <= row["towhee_map@10"] <= 1 and row["query_ms"] > 0


def test_the_exported_sentence_model_matches_pytorch_and_is_exported_once(tmp_path):
    from imgsearch_helpers.models.sentence import load_sentence_model, load_torch_sentence_model
    from imgsearch_helpers.models.sentence_export import ExportedSentenceModel, export_folder

    settings = get_settings(cache_dir=tmp_path)
    exported = load_sentence_model(settings)
    assert isinstance(exported, ExportedSentenceModel)
    made = (export_folder(settings) / "model.onnx").stat().st_mtime
    sentences = ["a white dog", "", "goldfish " * 400, "a bowl of soup", "A RED SPORTS CAR!"]  # empty, truncated
    vectors = exported.encode(sentences, batch_size=2)
    reference = load_torch_sentence_model().encode(sentences, normalize_embeddings=True, show_progress_bar=False)
    assert vectors.shape == (5, 384) and (vectors * reference).sum(1).min() >= 0.999
    assert isinstance(load_sentence_model(settings), ExportedSentenceModel)
    assert (export_folder(settings) / "model.onnx").stat().st_mtime == made  # reused, not exported again
    torch_settings = get_settings(cache_dir=tmp_path, backend="torch")
    assert not isinstance(load_sentence_model(torch_settings), ExportedSentenceModel)
