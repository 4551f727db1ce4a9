"""Feder's views of FAISS IVF_FLAT and hnswlib indexes, inline in notebooks and offline (notebook 5).

    index = FederIndex(path, media={id: image_path})  # checks the file, makes thumbnails
    index                                             # a cell showing it sends the data to the page once
    index.overview()                                  # each view draws from that data
    index.search_by_id(17, k=10, nprobe=4, stage="fine")

`files` reads index files as Feder does, `assets` delivers its script and values, `snapshots`
turns live views into screenshots in saved notebooks.
"""
from .views import FederIndex, FederView

__all__ = ["FederIndex", "FederView"]
