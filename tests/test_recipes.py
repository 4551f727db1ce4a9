"""Recipes: class probabilities, mirrored passes, ensembles, query expansion and the other steps of the
read path, their labels, held-out queries."""
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from realdata import TRAIN

from imgsearch_helpers.data.tutorial import ground_truth, holdout_split
from imgsearch_helpers.embed.cache import EmbeddingCache
from imgsearch_helpers.embed.stream import embed_paths
from imgsearch_helpers.errors import UsageError
from imgsearch_helpers.evaluation.instance import INSTANCE_RECIPES
from imgsearch_helpers.evaluation.quality import QUALITY_RECIPES, collection_name, run_recipe
from imgsearch_helpers.index import ExactEngine, MilvusEngine
from imgsearch_helpers.models import DEFAULT_MODEL, build_embedder
from imgsearch_helpers.models.descriptors import Pooling
from imgsearch_helpers.retrieval.postprocess import QueryExpansion, expand
from imgsearch_helpers.retrieval.recipes import Recipe, RecipeEmbedder
from imgsearch_helpers.retrieval.search import ReadPath
from imgsearch_helpers.runtime import MIN_COSINE
from imgsearch_helpers.vectors import l2_normalize

LABELS = ["goldfish", "Rhodesian_ridgeback", "warplane"]


def gallery_of(per_label: int) -> pd.DataFrame:
    assert all((TRAIN / label).is_dir() for label in LABELS)
    rows = [(str(p), label) for label in LABELS for p in sorted((TRAIN / label).glob("*.JPEG"))[:per_label]]
    return pd.DataFrame(rows, columns=["path", "label"]).assign(id=lambda f: np.arange(100, 100 + len(f)))


@pytest.fixture(scope="module")
def gallery(real_dataset):
    return gallery_of(4)


@pytest.fixture(scope="module")
def embedders(lite0):
    return {"efficientnet_lite0": lite0}


def test_recipe_rejects_bad_switches():
    with pytest.raises(ValueError, match="unknown head 'logits'"):
        Recipe(head="logits")
    with pytest.raises(ValueError, match="expand must be"):
        Recipe(expand=-1)
    with pytest.raises(ValueError, match="at least one model"):
        Recipe(models=())
    with pytest.raises(ValueError, match="alpha weighs hits by their cosine"):
        Recipe(normalize=False, expand=3, alpha=3)


def test_recipe_names_say_what_it_does():
    assert Recipe("efficientnet_lite0", normalize=False).technique == "raw L2"
    assert Recipe("efficientnet_lite0", normalize=False).metric == "L2"
    both = Recipe(("efficientnet_lite0", "efficientnet_lite1"), "probabilities", flip=True, expand=3)
    assert both.model == "efficientnet_lite0 + efficientnet_lite1"
    assert both.technique == "class probabilities + flip + ensemble + query expansion 3"
    assert both.metric == "IP" and both.imagenet_only and not Recipe().imagenet_only
    instance = Recipe("efficientnet_lite0", pooling=Pooling(), whiten=0.5, dba=2, expand=2, alpha=3, verify=True)
    assert instance.name == "lite0 + regional GeM + whiten 0.5 + DBA 2 + QE 2 + verify"
    assert instance.encoder == Recipe("efficientnet_lite0", pooling=Pooling())  # the steps do not change the vectors


def test_both_notebooks_recipes_are_one_kind_with_distinct_labels():
    for recipes, label in ((QUALITY_RECIPES, lambda r: (r.model, r.technique)), (INSTANCE_RECIPES, lambda r: r.name)):
        assert all(isinstance(r, Recipe) for r in recipes)
        assert len({label(r) for r in recipes}) == len(recipes)


def test_quality_recipes_are_distinct_and_collections_ignore_expansion():
    keys = [(r.model, r.technique) for r in QUALITY_RECIPES]
    assert len(keys) == len(set(keys))
    assert collection_name(Recipe(flip=True, expand=3)) == collection_name(Recipe(flip=True))
    assert collection_name(Recipe(flip=True)) != collection_name(Recipe())


def test_probabilities_are_square_roots_of_the_classifier_softmax(lite0, gallery, embedders):
    vectors, positions, _ = embed_paths(gallery.path, RecipeEmbedder(Recipe(head="probabilities"), embedders=embedders),
                                        progress=False)
    features, _, _ = embed_paths(gallery.path, lite0, progress=False)
    assert vectors.shape == (len(gallery), 1000) and positions == list(range(len(gallery)))
    np.testing.assert_allclose(vectors ** 2, lite0.class_probabilities(features), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # the classifier agrees with the folder: a goldfish photo's top class is ImageNet's goldfish (index 1)
    assert int(np.argmax(vectors[0])) == 1


@pytest.mark.parametrize("backend", ["torch", "default"])
def test_mirrored_pass_embeds_the_mirror_image(lite0, gallery, tmp_path, backend):
    """On PyTorch (f32) the two vectors agree to rounding. A bf16 runtime rounds the two nearly equal
    inputs differently (a few hundredths per value), so there the bar is its own check's: cosine."""
    embedder = build_embedder(DEFAULT_MODEL, backend="torch") if backend == "torch" else lite0
    path = gallery.path[0]
    mirror_file = tmp_path / "mirror.png"
    Image.open(path).convert("RGB").transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(mirror_file)
    mirrored, _, _ = embed_paths([path], embedder.mirrored(), progress=False)
    of_mirror_file, _, _ = embed_paths([mirror_file], embedder, progress=False)
    original, _, _ = embed_paths([path], embedder, progress=False)
    assert embedder.mirrored().key == embedder.key + "/mirrored" and not embedder.mirror
    if backend == "torch":
        np.testing.assert_allclose(mirrored, of_mirror_file, rtol=1e-3, atol=1e-3)
    unit = l2_normalize(mirrored)[0]
    to_mirror_file, to_original = (float(unit @ l2_normalize(v)[0]) for v in (of_mirror_file, original))
    assert to_mirror_file >= MIN_COSINE and to_original < to_mirror_file - 0.01


def test_flip_caches_both_passes_and_averages_them(lite0, gallery, embedders, tmp_path):
    recipe_embedder = RecipeEmbedder(Recipe(flip=True), embedders=embedders)
    with EmbeddingCache(tmp_path / "c.sqlite") as cache:
        vectors, _, report = embed_paths(gallery.path, recipe_embedder, cache, progress=False)
        assert cache.count(lite0.key) == len(gallery) and cache.count(lite0.key + "/mirrored") == len(gallery)
        again, _, _ = embed_paths(gallery.path, recipe_embedder, cache, progress=False)
    plain, _, _ = embed_paths(gallery.path, lite0, progress=False)
    mirrored, _, _ = embed_paths(gallery.path, lite0.mirrored(), progress=False)
    expected = (plain + mirrored) / 2
    np.testing.assert_allclose(vectors, expected / np.linalg.norm(expected, axis=1, keepdims=True), atol=1e-4)
    np.testing.assert_allclose(again, vectors, atol=1e-6)
    assert report.embedded == len(gallery)


def test_ensemble_concatenates_unit_parts(gallery, embedders):
    recipe_embedder = RecipeEmbedder(Recipe(("efficientnet_lite0", "efficientnet_lite1")), embedders=embedders)
    vectors, _, _ = embed_paths(gallery.path[:3], recipe_embedder, progress=False)
    lite1 = embedders["efficientnet_lite1"]
    assert vectors.shape == (3, embedders["efficientnet_lite0"].dim + lite1.dim) == (3, recipe_embedder.dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(vectors[:, -lite1.dim:], axis=1), np.sqrt(0.5), atol=1e-5)


def test_query_expansion_moves_the_query_towards_its_top_hits():
    engine = ExactEngine("IP")
    gallery = np.array([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [0.0, 1.0, 0.0], [0.6, 0.0, 0.8], [0.55, 0.0, 0.835]],
                       np.float32)
    engine.add(np.arange(5), gallery)
    query = np.array([[0.9, 0.0, 0.436]], np.float32)
    plain, _ = ReadPath(engine, Recipe().steps()).search(query, 5)
    expanded, _ = ReadPath(engine, Recipe(expand=3).steps()).search(query, 5)
    # plain: 0 (0.90), 3 (0.89), 4 (0.86); the mean of the query and those three is nearer to 3 and 4
    assert plain[0].tolist()[:3] == [0, 3, 4]
    assert expanded[0].tolist()[:3] == [3, 4, 0]


def test_query_expansion_is_one_step_from_the_plain_mean_to_alpha_weights():
    rng = np.random.default_rng(3)
    gallery, queries = l2_normalize(rng.normal(size=(40, 8))), l2_normalize(rng.normal(size=(5, 8)))
    engines = {metric: ExactEngine(metric) for metric in ("IP", "L2")}
    for engine in engines.values():
        engine.add(np.arange(40), gallery)
    # through the engine, alpha-QE is the in-memory expansion DBA uses, to the bit
    for alpha in (0.0, 3.0):
        found = ReadPath(engines["IP"], [QueryExpansion(3, alpha)]).search(queries, 5)
        wanted = engines["IP"].search(expand(queries, gallery, 3, alpha), 5)
        assert all(np.array_equal(a, b) for a, b in zip(found, wanted))
    # unscaled (raw vectors, L2), alpha 0 is the plain mean of the query and its hits
    hits, _ = engines["L2"].search(queries, 3)
    found, _ = ReadPath(engines["L2"], [QueryExpansion(3, unit=False)]).search(queries, 5)
    assert (found == engines["L2"].search((queries + gallery[hits].sum(1)) / 4, 5)[0]).all()


def test_steps_that_change_the_stored_vectors_refuse_a_gallery_they_did_not_index():
    engine = ExactEngine("IP")
    engine.add(np.arange(3), np.eye(3, dtype=np.float32))
    for recipe in (Recipe(whiten=0.5), Recipe(dba=2), Recipe(diffuse=True)):
        with pytest.raises(UsageError, match="index the gallery through the read path first"):
            ReadPath(engine, recipe.steps()).search(np.eye(3, dtype=np.float32)[:1], 2)


def test_fetch_returns_rows_in_the_order_asked(tmp_path):
    vectors = np.eye(4, 3, dtype=np.float32) + np.arange(4)[:, None]
    for engine in (ExactEngine("L2"), MilvusEngine(uri=str(tmp_path / "m.db"), collection="fetch", index_type="FLAT")):
        engine.add(np.array([10, 11, 12, 13]), vectors)
        engine.commit()
        got = engine.fetch(np.array([[13, 10], [-1, 12]]))
        assert got.shape == (2, 2, 3)
        np.testing.assert_allclose(got[0, 0], vectors[3])
        np.testing.assert_allclose(got[0, 1], vectors[0])
        np.testing.assert_allclose(got[1, 0], 0.0)
        np.testing.assert_allclose(got[1, 1], vectors[2])
        engine.close()


def test_holdout_takes_one_image_per_class_out_of_the_gallery(real_dataset):
    catalog = gallery_of(5)
    gallery, queries = holdout_split(catalog, fold=2)
    assert len(queries) == len(LABELS) and sorted(queries.label) == sorted(LABELS)
    assert len(gallery) == len(catalog) - len(LABELS)
    assert not set(queries.path) & set(gallery.path)
    expected = catalog.sort_values("path").groupby("label").nth(2)
    assert set(queries.path) == set(expected.path)
    assert all(len(relevant) == 4 for relevant in ground_truth(gallery, queries))
    with pytest.raises(ValueError, match="fold must be between 0 and 4"):
        holdout_split(catalog, fold=5)


def test_run_recipe_scores_held_out_queries(gallery, embedders, tmp_path):
    train, held = holdout_split(gallery, fold=0)
    truth = ground_truth(train, held)
    opened = []

    def factory(metric, collection):
        opened.append((metric, collection))
        return MilvusEngine(uri=str(tmp_path / "r.db"), collection=collection, index_type="FLAT", metric=metric)

    row = run_recipe(Recipe(head="probabilities"), train, held, truth, factory, embedders=embedders,
                     speed_paths=held.path, source="test")
    assert opened == [("IP", "quality_lite0_probabilities")]
    assert row["queries"] == len(LABELS) and row["dim"] == 1000 and row["source"] == "test"
    assert row["index_mb"] == pytest.approx(len(train) * 1000 * 4 / 1e6)
    assert row["images_per_s"] > 0
    # three very different classes: class probabilities put every query's 3 class-mates first
    assert row["mhr@10"] == 1.0 and row["ap@10"] == 1.0
