"""The app's Duplicates tab, for a gallery folder: the groups of copies side by side (size,
resolution, date, folder), a suggested keeper in each, "set the others aside" (moved into
`.imgsearch-trash/`, never deleted) with an undo, and "not duplicates" remembered; the app's
collections follow every move (`gallery.set_aside`, the same calls as `imgsearch duplicates`)."""
from __future__ import annotations

import os
import time
from pathlib import Path

import gradio as gr

from ..data.images import upright_size
from ..data.rules import TRASH_FOLDER
from ..embed.cache import open_cache
from ..errors import ImgsearchError
from ..gallery import set_aside as aside
from ..gallery.collections import GalleryRef
from ..models.descriptors import build_instance_embedder
from ..retrieval.duplicates import find_duplicates

COLUMNS = ["group", "file", "pixels", "MB", "modified", "folder", "suggested"]


class DuplicatesTab:
    """The tab's state: the groups last found in the showcase's gallery folder."""

    def __init__(self, showcase):
        self.showcase = showcase
        self.root = GalleryRef.of(showcase.gallery, showcase.settings).folder  # None: the tutorial dataset
        self.groups: list[list[str]] = []

    def find(self, progress=gr.Progress(track_tqdm=True)):  # noqa: B008 - Gradio's way to report progress
        """(thumbnails, table, status) of the groups of copies in the folder."""
        if self.root is None:
            return [], [], "Duplicates are found in a gallery folder: serve one (`imgsearch serve FOLDER`)."
        settings = self.showcase.settings
        found = find_duplicates(self.root, settings, open_cache(settings), apart=aside.not_duplicates(self.root),
                                embedder=build_instance_embedder(settings=settings))
        self.groups = found.groups
        return self.view(f"{len(self.groups)} groups of copies in {self.root.name}.")

    def view(self, status: str):
        items, rows = [], []
        for number, group in enumerate(self.groups, start=1):
            keeper = aside.choose_keeper(self.root, group)
            for path in group:
                suggestion = "keep" if path == keeper else "set aside"
                items.append((self.showcase.thumbnails.get(path), f"{number} · {suggestion} · {Path(path).name}"))
                rows.append([number, *describe(self.root, path), suggestion])
        return items, rows, status

    def set_aside(self):
        if not self.groups:
            return [], [], "Find duplicates first."
        try:
            moves = aside.set_aside(self.root, self.groups)
        except ImgsearchError as exc:
            return *self.view("")[:2], f"**{exc}**"
        self.groups = []
        self.follow()
        return [], [], (f"Set aside {len(moves)} files into {TRASH_FOLDER}/ (nothing deleted); the index "
                        "follows. **Undo** moves them back.")

    def undo(self):
        try:
            moves = aside.undo(self.root)
        except ImgsearchError as exc:
            return [], [], f"**{exc}**"
        self.follow()
        return [], [], f"Moved {len(moves)} files back; the index follows. Find duplicates to see the groups again."

    def not_duplicates(self, number):
        """Remember that group `number`'s images are not copies of each other, and leave it out."""
        if not self.groups or not 1 <= int(number or 0) <= len(self.groups):
            return *self.view("")[:2], f"Choose a group from 1 to {len(self.groups)}."
        group = self.groups.pop(int(number) - 1)
        aside.remember_not_duplicates(self.root, group)
        return self.view(f"Group {int(number)} remembered as not duplicates ({len(group)} images).")

    def follow(self) -> None:
        """Every collection the app has built takes the moves in (rows out, or back from the cache)."""
        for service in self.showcase.services.values():
            service.build(progress=False)


def describe(root: Path, path: str) -> list:
    info = os.stat(path)
    width, height = upright_size(path)
    relpath = Path(path).relative_to(root)
    return [relpath.name, f"{width} x {height}", round(info.st_size / 1e6, 2),
            time.strftime("%Y-%m-%d %H:%M", time.localtime(info.st_mtime)), str(relpath.parent)]


def add_tab(showcase) -> None:
    """The tab, inside the app's `gr.Blocks`."""
    tab = DuplicatesTab(showcase)
    with gr.Tab("Duplicates"):
        with gr.Row():
            find = gr.Button("Find duplicates", elem_id="dup-find", variant="primary")
            set_aside = gr.Button("Set the others aside", elem_id="dup-set-aside")
            undo = gr.Button("Undo", elem_id="dup-undo")
            number = gr.Number(label="group", precision=0, minimum=1, elem_id="dup-group", scale=0)
            apart = gr.Button("Not duplicates", elem_id="dup-apart")
        status = gr.Markdown(elem_id="dup-status")
        images = gr.Gallery(label="groups: the suggested keeper and the others", columns=6, height="auto",
                            elem_id="dup-images")
        table = gr.Dataframe(headers=COLUMNS, interactive=False, elem_id="dup-table")
        outputs = [images, table, status]
        find.click(tab.find, [], outputs)
        set_aside.click(tab.set_aside, [], outputs)
        undo.click(tab.undo, [], outputs)
        apart.click(tab.not_duplicates, [number], outputs)
