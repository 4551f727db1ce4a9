"""Ingest beyond one process: Ray Data reads, decodes and embeds a gallery on a pool of workers
(a laptop's local Ray or a Ray cluster) and the workers upsert into a Milvus server or cluster.

`ray_ingest.RayRunner` is the runner a `SearchService.build` is given for it (`imgsearch ingest
FOLDER --ray [ADDRESS]`); `workers` holds what runs on the workers. Ray is imported only when they
are used.
"""
from .ray_ingest import RayRunner

__all__ = ["RayRunner"]
