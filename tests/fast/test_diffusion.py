"""Diffusion re-ranking over the gallery's mutual-neighbour graph, on small vectors built to show
what it does: a dense cluster outvotes a lone look-alike, unreached images keep cosine order."""
import numpy as np
import pytest

from imgsearch_helpers.errors import UsageError
from imgsearch_helpers.evaluation.instance import Prepared
from imgsearch_helpers.index import ExactEngine
from imgsearch_helpers.retrieval.diffused import DiffusedEngine
from imgsearch_helpers.retrieval.diffusion import Diffusion, DiffusionSettings, mutual_graph
from imgsearch_helpers.retrieval.recipes import Recipe
from imgsearch_helpers.vectors import l2_normalize


def unit(rows) -> np.ndarray:
    return l2_normalize(np.asarray(rows, np.float32))


def cluster(centre, count, spread, seed) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return unit(np.asarray(centre, np.float32) + spread * rng.normal(size=(count, len(centre))))


def test_the_graph_is_symmetric_normalized_and_keeps_only_mutual_neighbours():
    # on a line: b's nearest is c and c's is b; a's nearest is b, but b does not choose a
    points = unit([[1, 0.0], [1, 0.5], [1, 0.6], [1, 2.0]])
    graph = mutual_graph(points, k=1, gamma=1.0).toarray()
    assert np.allclose(graph, graph.T) and (graph >= 0).all() and np.allclose(np.diag(graph), 0)
    assert graph[1, 2] > 0 and graph[0, 1] == 0 and graph[2, 3] == 0
    assert graph[1, 2] == pytest.approx(1.0)  # D^-1/2 W D^-1/2 with one edge: w / sqrt(w * w)


def test_a_dense_cluster_outranks_a_lone_image_that_looks_more_like_the_query():
    query = unit([[1, 0, 0, 0]])
    lone = unit([[1, 0.35, 0, 0]])  # cosine 0.94 to the query, with no neighbours of its own kind
    members = cluster([1, 0, 0.55, 0], 10, 0.04, seed=0)  # each about 0.87: a tight group of ten
    far = cluster([0, 0, 0, 1], 10, 0.3, seed=1)
    gallery = np.vstack([lone, members, far])
    plain = np.argsort(-(query @ gallery.T)[0])
    diffusion = Diffusion.fit(gallery, DiffusionSettings(k=5, seeds=5))
    ranked = list(diffusion.rank(query, 11)[0])
    assert plain[0] == 0 and ranked[0] in range(1, 11)
    # the lone image (a seed with no mutual neighbours) drops behind the four group members that
    # were seeds and behind group members the query never touched directly
    assert ranked.index(0) >= 5 and set(ranked) == set(range(11))


def test_the_scores_solve_the_diffusion_equation():
    gallery = np.vstack([cluster([1, 0, 0], 15, 0.2, seed=2), cluster([0, 1, 0], 15, 0.2, seed=3)])
    settings = DiffusionSettings(k=4, alpha=0.8, seeds=3)
    diffusion = Diffusion.fit(gallery, settings)
    queries = cluster([1, 0.2, 0], 3, 0.1, seed=4)
    scores = diffusion.scores(queries)
    start = scores - settings.alpha * (diffusion.graph @ scores.T).T  # f = alpha S f + y  =>  y = f - alpha S f
    assert (np.count_nonzero(np.abs(start) > 1e-4, axis=1) == settings.seeds).all()
    assert np.allclose(np.sort(start, 1)[:, -3:], np.sort(np.clip(queries @ gallery.T, 0, None), 1)[:, -3:], atol=1e-4)


def test_images_the_walk_never_reaches_follow_in_cosine_order():
    near, other = cluster([1, 0, 0], 6, 0.05, seed=5), cluster([0, 1, 0.3], 6, 0.05, seed=6)
    gallery = np.vstack([near, other])
    query = unit([[1, 0.1, 0]])
    ranked = Diffusion.fit(gallery, DiffusionSettings(k=3, seeds=1)).rank(query, len(gallery))[0]
    assert set(ranked[:6]) == set(range(6))
    tail_cosines = (query @ gallery[ranked[6:]].T)[0]
    assert (np.diff(tail_cosines) <= 1e-7).all()


def test_a_recipe_with_diffusion_names_it_and_ranks_through_it():
    gallery = np.vstack([cluster([1, 0, 0], 8, 0.05, seed=7), cluster([0, 1, 0], 8, 0.05, seed=8)])
    recipe = Recipe(diffuse=True)
    assert recipe.name == "lite0 + cosine + diffusion"
    queries = cluster([0, 1, 0.1], 2, 0.05, seed=9)
    ranked = Prepared.fit(recipe, gallery).rank(queries, ["a", "b"], depth=8)
    assert ranked.shape == (2, 8) and set(ranked[0]) == set(range(8, 16))
    assert (ranked == Diffusion.fit(gallery).rank(queries, 8)).all()


def test_an_engines_collection_diffused_answers_with_its_ids_and_refuses_a_filter():
    gallery = np.vstack([cluster([1, 0, 0], 6, 0.05, seed=10), cluster([0, 1, 0], 6, 0.05, seed=11)])
    ids = np.arange(len(gallery)) * 7 + 100  # not positions
    engine = ExactEngine("IP", fields={"group": "int"})
    engine.add(ids, gallery, {"group": [0] * 6 + [1] * 6})
    diffused = DiffusedEngine(engine, DiffusionSettings(k=3))
    query = cluster([0, 1, 0.1], 1, 0.05, seed=12)
    found, cosines = diffused.search(query, 5)
    positions = Diffusion.fit(gallery, DiffusionSettings(k=3)).rank(query, 5)
    assert diffused.name == "exact + diffusion" and (found == ids[positions]).all()
    assert np.allclose(cosines, query @ gallery[positions[0]].T, atol=1e-6)
    with pytest.raises(UsageError, match="diffusion ranks the whole collection"):
        diffused.search(query, 5, where="group == 1")
