"""Pictures for the notebooks: image grids and query | results rows."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.patches import Rectangle

from ..data.thumbnails import thumbnail
from ..models.detect import largest_box


def setup_notebook_display(quality: int = 80) -> None:
    """In a notebook: inline figures as JPEG (grids of photos are several times smaller than as
    PNG), and tables shown whole (pandas cuts cells at 50 characters: paths, model names, lists).

    Outside IPython it does nothing: set_matplotlib_formats would create an IPython shell, which
    makes the process look interactive (sys.ps1) to libraries such as Gradio.
    """
    try:
        from IPython import get_ipython
        from matplotlib_inline.backend_inline import set_matplotlib_formats
    except ImportError:
        return
    if get_ipython() is not None:
        set_matplotlib_formats("jpeg", pil_kwargs={"quality": quality})
        pd.set_option("display.max_colwidth", None)
        pd.set_option("display.width", 200)


setup_notebook_display()


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


def show_results(queries: pd.DataFrame, ids, distances, catalog: pd.DataFrame, k: int = 5, size: float = 2.0,
                 judge: bool = True):
    """One row per query: the query image, then its top-k results with label and distance.

    With `judge`, a result whose label matches the query's is titled in green, otherwise red.
    """
    fig, axes = _result_grid(len(queries), k, size)
    for row, (query, row_ids, row_dists) in enumerate(zip(queries.itertuples(), ids, distances)):
        axes[row, 0].imshow(thumbnail(query.path))
        axes[row, 0].set_title(f"query\n{query.label}", fontsize=8, fontweight="bold")
        _show_hits(axes[row, 1:], row_ids[:k], row_dists[:k], catalog, query.label if judge else None)
    fig.tight_layout()
    return fig


def show_text_results(sentences, ids, distances, catalog: pd.DataFrame, k: int = 5, size: float = 2.0):
    """One row per sentence: the sentence, then its top-k images with label and similarity."""
    fig, axes = _result_grid(len(sentences), k, size)
    for row, (sentence, row_ids, row_dists) in enumerate(zip(sentences, ids, distances)):
        axes[row, 0].text(0.5, 0.5, f"\u201c{sentence}\u201d", ha="center", va="center", wrap=True,
                          fontsize=10, fontweight="bold", transform=axes[row, 0].transAxes)
        _show_hits(axes[row, 1:], row_ids[:k], row_dists[:k], catalog, None)
    fig.tight_layout()
    return fig


def _result_grid(rows: int, k: int, size: float):
    fig, axes = plt.subplots(rows, k + 1, figsize=(size * (k + 1), size * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    return fig, axes


def _show_hits(axes, ids, distances, catalog: pd.DataFrame, label=None) -> None:
    """Result thumbnails titled with label and distance; green or red against `label` when given."""
    by_id = catalog.set_index("id")
    for ax, rid, dist in zip(axes, ids, distances):
        if rid < 0:
            continue
        hit = by_id.loc[rid]
        ax.imshow(thumbnail(hit.path))
        color = "black" if label is None else ("green" if hit.label == label else "red")
        ax.set_title(f"{hit.label}\n{dist:.3f}", fontsize=8, color=color)


def plot_quality_speed(rows, quality: str = "mhr@10", speed: str = "images_per_s", size=(11, 4.6)):
    """Search quality against embedding speed: one numbered point per row, the numbers explained
    beside the plot (labels on the points would overlap), coloured by what the recipe relies on."""
    fig, (ax, key) = plt.subplots(1, 2, figsize=size, gridspec_kw={"width_ratios": [3, 2]})
    kinds = {False: ("tab:blue", "works for any collection"), True: ("tab:red", "relies on ImageNet classes")}
    for number, row in enumerate(rows, start=1):
        colour, _ = kinds[bool(row.get("imagenet_only"))]
        ax.scatter(row[speed], row[quality], color=colour)
        ax.annotate(str(number), (row[speed], row[quality]), fontsize=8, xytext=(4, 3), textcoords="offset points")
    present = sorted({bool(row.get("imagenet_only")) for row in rows})
    ax.legend(handles=[plt.Line2D([], [], color=kinds[kind][0], marker="o", ls="", label=kinds[kind][1])
                       for kind in present], fontsize=8, loc="lower left")
    ax.set(xlabel="images embedded per second (CPU, cold, log scale)", ylabel=quality,
           xscale="log", title=f"{quality} against embedding speed")
    ax.grid(alpha=0.3)
    key.axis("off")
    lines = [f"{n:>2}  {row['model'].replace('efficientnet_', '')}: {row['technique']}" for n, row in
             enumerate(rows, start=1)]
    key.text(0, 1, "\n".join(lines), va="top", family="monospace", fontsize=7.5, transform=key.transAxes)
    fig.tight_layout()
    return fig


def show_detections(images, boxes_per_image, titles=None, size: float = 4.0):
    """Photos with their detected boxes; the largest box (the one that gets cropped) in red."""
    fig, axes = plt.subplots(1, len(images), figsize=(size * len(images), size * 0.8), squeeze=False)
    for ax, image, boxes, title in zip(axes.flat, images, boxes_per_image, titles or [""] * len(images)):
        ax.imshow(image)
        biggest = largest_box(boxes)
        for box in boxes:
            color, width = ("red", 2.5) if box is biggest else ("yellow", 1.2)
            ax.add_patch(Rectangle((box.x1, box.y1), box.x2 - box.x1, box.y2 - box.y1, fill=False,
                                   edgecolor=color, linewidth=width))
            ax.text(box.x1, box.y1, f"{box.label} {box.score:.2f}", color="black", fontsize=7,
                    bbox={"facecolor": color, "alpha": 0.8, "pad": 1})
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    return fig
