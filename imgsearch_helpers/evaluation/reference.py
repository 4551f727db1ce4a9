"""Figures Towhee published for the same data (1,000 gallery images, 100 queries, top 10).

From the towhee-io/examples notebooks `image/reverse_image_search` ("build image search engine"
and "deep dive image search", GPU runs, 2022-2023). They are shown beside our measurements as
reference rows, clearly labelled, when a model's weights cannot be downloaded. Towhee's "mAP"
divides by the number of hits (see `metrics`); it published no standard AP@10 or speed we can
compare.
"""
from __future__ import annotations

SOURCE = "published by Towhee (GPU), not measured here"
PUBLISHED = {
    "resnet50": [{"technique": "raw L2", "mhr@10": 0.687, "towhee_map@10": 0.887},
                 {"technique": "cosine", "mhr@10": 0.781, "towhee_map@10": 0.917}],
    # Towhee ran torchvision's efficientnet_b7; timm's tf_efficientnet_b7 is the same architecture
    # with other weights, the one this project would download
    "tf_efficientnet_b7": [{"technique": "cosine", "mhr@10": 0.878, "towhee_map@10": 0.955,
                            "source": "published by Towhee for torchvision's efficientnet_b7 (GPU), "
                                      "not measured here"}],
}


def published_rows(model: str, **columns) -> list[dict]:
    """Towhee's figures for `model` as table rows (empty if it published none)."""
    return [{"model": model, "source": SOURCE, **row, **columns} for row in PUBLISHED.get(model, [])]
