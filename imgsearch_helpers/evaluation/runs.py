"""Scoring a search on labelled queries: each run is one table row of the metrics (`metrics.evaluate`)
and what the queries cost."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..data import tutorial
from ..embed.stream import ImageEncoder
from ..index import SearchEngine
from ..retrieval.search import embed_queries
from .metrics import evaluate
from .timing import time_runs


@dataclass
class QueryRun:
    """Every query searched once: the results and what they cost per query."""

    ids: np.ndarray
    distances: np.ndarray
    query_ms: float  # decode + embed + search, averaged over a batched run
    search_ms: float  # the index alone


def run_queries(queries: pd.DataFrame, encoder: ImageEncoder, engine: SearchEngine, k: int = 10,
                transform=None) -> QueryRun:
    """Search every query image, timed. Queries are embedded without the cache, so `query_ms` is
    what a search costs a user; a first query is embedded untimed (a one-time model trace)."""
    paths = queries["path"].tolist()
    embed_queries(paths[:1], encoder)
    embedding = time_runs(lambda: embed_queries(paths, encoder, transform=transform))
    searching = time_runs(lambda: engine.search(embedding.result, k))
    ids, distances = searching.result
    return QueryRun(ids, distances, 1000 * (embedding.total + searching.total) / len(paths),
                    1000 * searching.total / len(paths))


def score(run: QueryRun, ground_truth, k: int = 10, **columns) -> dict:
    """A run's metrics and timings as one table row."""
    row = evaluate(ground_truth, run.ids.tolist(), k, **columns)
    return {**row, "query_ms": run.query_ms, "search_ms": run.search_ms}


def evaluate_engine(queries: pd.DataFrame, ground_truth, encoder: ImageEncoder, engine: SearchEngine, k: int = 10,
                    transform=None, **columns) -> dict:
    """Search every query image and score the results: one table row (see `run_queries` for the timings)."""
    run = run_queries(queries, encoder, engine, k, transform)
    return score(run, ground_truth, k, model=encoder.name, engine=engine.name, **columns)


def evaluate_text(path, engine, catalog: pd.DataFrame, queries: pd.DataFrame, k: int = 10, **columns) -> dict:
    """Search each query's text; its class's images are the relevant set. One table row."""
    searching = time_runs(lambda: engine.search(path.text_vectors(queries["text"].tolist()), k))
    ids, _ = searching.result
    row = evaluate(tutorial.ground_truth(catalog, queries), ids.tolist(), k, path=path.kind, **columns)
    row["query_ms"] = 1000 * searching.total / len(queries)
    return row
