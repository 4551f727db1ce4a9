"""Pictures for the notebooks: image grids and query | results rows."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from .images import load_image

THUMB = 160  # thumbnails keep committed notebooks small


def use_jpeg_figures(quality: int = 80) -> None:
    """Inline figures as JPEG: grids of photos are several times smaller than as PNG."""
    try:
        from matplotlib_inline.backend_inline import set_matplotlib_formats
    except ImportError:
        return
    set_matplotlib_formats("jpeg", pil_kwargs={"quality": quality})


use_jpeg_figures()


def thumbnail(path):
    image = load_image(path, min_side=THUMB)
    image.thumbnail((THUMB, THUMB))
    return image


def show_images(paths, titles=None, ncols: int = 5, size: float = 2.2):
    """A grid of images with optional titles."""
    paths = list(paths)
    titles = list(titles) if titles is not None else [""] * len(paths)
    nrows = max(1, -(-len(paths) // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, path, title in zip(axes.flat, paths, titles):
        ax.imshow(thumbnail(path))
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return fig


def show_results(queries: pd.DataFrame, ids, distances, catalog: pd.DataFrame, k: int = 5, size: float = 2.0):
    """One row per query: the query image, then its top-k results with label and distance.

    A result whose label matches the query's is titled in green, otherwise red.
    """
    by_id = catalog.set_index("id")
    fig, axes = plt.subplots(len(queries), k + 1, figsize=(size * (k + 1), size * len(queries)), squeeze=False)
    for row, (query, row_ids, row_dists) in enumerate(zip(queries.itertuples(), ids, distances)):
        axes[row, 0].imshow(thumbnail(query.path))
        axes[row, 0].set_title(f"query\n{query.label}", fontsize=8, fontweight="bold")
        for col, (rid, dist) in enumerate(zip(row_ids[:k], row_dists[:k]), start=1):
            if rid < 0:
                continue
            hit = by_id.loc[rid]
            axes[row, col].imshow(thumbnail(hit.path))
            color = "green" if hit.label == query.label else "red"
            axes[row, col].set_title(f"{hit.label}\n{dist:.3f}", fontsize=8, color=color)
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    return fig


def plot_quality_speed(rows, quality: str = "mhr10", speed: str = "images_per_s", size=(7.5, 4.5)):
    """Scatter of search quality against embedding speed, one labelled point per row."""
    fig, ax = plt.subplots(figsize=size)
    for row in rows:
        ax.scatter(row[speed], row[quality], color="tab:red" if row.get("imagenet_only") else "tab:blue")
        label = f"{row['model'].replace('efficientnet_', '')}: {row['technique']}"
        ax.annotate(label, (row[speed], row[quality]), fontsize=7, xytext=(4, 2), textcoords="offset points")
    ax.set(xlabel="images embedded per second (CPU, cold)", ylabel=quality.replace("10", "@10"), xscale="log",
           title="quality against speed (red: relies on ImageNet classes)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
