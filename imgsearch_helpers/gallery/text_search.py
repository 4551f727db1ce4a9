"""Text search over a service's gallery for the app and the HTTP API: the offline text path that
`benchmarks/text.py` measures (EfficientNet-Lite0+1+2 class probabilities + flip), from the cache."""
from __future__ import annotations

import threading
import time

from ..data.folders import FIELDS
from ..index import open_engine
from ..retrieval.search import ingest
from ..retrieval.text import OfflineTextPath
from .service import Results, SearchService


class TextSearch:
    """Sentence -> the gallery's images, searched exactly in memory beside the image collection."""

    def __init__(self, service: SearchService, progress: bool = True):
        start = time.perf_counter()
        self.service = service
        self.path = OfflineTextPath(settings=service.settings)
        self.engine = open_engine("exact", metric="IP", fields=FIELDS)
        ingest(service.indexed(), self.path.images, self.engine, service.cache, progress=progress)
        self.build_s = time.perf_counter() - start
        self.name = self.path.name
        self._lock = threading.Lock()  # the sentence model serves one request at a time, as the image model does

    def search(self, sentence: str, k: int, where: str | None = None) -> Results:
        with self._lock:
            vectors = self.path.text_vectors([sentence])
        return self.service.search_vectors(vectors, k, where, engine=self.engine)
