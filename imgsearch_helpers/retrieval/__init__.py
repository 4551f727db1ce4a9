"""Retrieval: vectors into an engine and hits out, and the steps that re-rank them.

- `search`: ingest a catalog into any engine, embed queries, and the read path every search takes
  (`ReadPath`: the engine's hits, then re-ranking steps);
- `recipes`: an encoder (models, pooling, flips, ensembles, class probabilities) and its steps;
- the steps: `postprocess` (whitening, query expansion, database-side augmentation), `diffusion`
  (a walk over the gallery's neighbour graph; `diffused` as a step) and `verify` (local features, RANSAC);
- `duplicates`: exact and near copies in a folder, as groups;
- `text` (sentences to image vectors: CLIP or the offline path) and `pipelines` (Towhee) are
  imported from their modules: they load torch or towhee.
"""
from .diffusion import Diffusion
from .duplicates import find_duplicates
from .postprocess import Whitening
from .recipes import Recipe, RecipeEmbedder
from .search import IngestReport, ReadPath, embed_queries, ingest, search_paths
from .verify import Verifier

__all__ = ["Diffusion", "IngestReport", "ReadPath", "Recipe", "RecipeEmbedder", "Verifier", "Whitening",
           "embed_queries", "find_duplicates", "ingest", "search_paths"]
