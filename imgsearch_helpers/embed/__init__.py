"""Embedding: image files to vectors in batches, streamed (decoded on worker threads while the
network runs) and cached on disk by model and content (`cache`)."""
from .cache import EmbeddingCache, content_digest, open_cache
from .stream import BATCH_SIZE, EmbedReport, ImageEncoder, Network, StreamsImages, embed_paths, iter_embeddings

__all__ = ["BATCH_SIZE", "EmbedReport", "EmbeddingCache", "ImageEncoder", "Network", "StreamsImages",
           "content_digest", "embed_paths", "iter_embeddings", "open_cache"]
