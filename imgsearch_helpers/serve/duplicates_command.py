"""`imgsearch duplicates`: find the groups of copies in a folder, and act on them (set aside, undo,
"not duplicates"), keeping the folder's collections in step with the moves (`gallery.set_aside`)."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from ..data.rules import TRASH_FOLDER, describe_ignored
from ..errors import UsageError


def run_duplicates(args, settings) -> dict:
    from ..gallery import set_aside as aside

    root = Path(args.folder)
    if args.undo:
        moves = aside.undo(root)
        return {"folder": args.folder, "moved_back": [asdict(m) for m in moves], "synced": sync(root, settings, args)}
    if args.not_duplicates:
        pairs = aside.remember_not_duplicates(root, args.not_duplicates)
        return {"folder": args.folder, "not_duplicates": args.not_duplicates, "pairs_remembered": pairs}
    found = find_groups(args, settings, aside.not_duplicates(root))
    result = {"folder": args.folder, **found.as_dict()}
    if args.set_aside:
        moves = aside.set_aside(root, found.groups, tuple(args.protect or ()))
        result |= {"set_aside": [asdict(m) for m in moves], "synced": sync(root, settings, args)}
    return result


def find_groups(args, settings, apart):
    from ..embed.cache import open_cache
    from ..models.descriptors import build_instance_embedder
    from ..retrieval.duplicates import THRESHOLD, find_duplicates

    threshold = THRESHOLD if args.threshold is None else args.threshold
    if not 0 < threshold <= 1:
        raise UsageError(f"--threshold must be in (0, 1], not {threshold}")
    return find_duplicates(args.folder, settings, open_cache(settings), threshold=threshold,
                           verify=not args.no_verify, progress=not args.quiet, include_hidden=args.include_hidden,
                           apart=apart, embedder=build_instance_embedder(args.model, settings=settings))


def sync(root: Path, settings, args) -> list[dict]:
    """Bring every Milvus collection of this folder in step with it after files moved: the moved
    files' rows go (or come back, from the embedding cache)."""
    from ..gallery.collections import GalleryRef, Registry
    from ..gallery.service import SearchService

    key = GalleryRef.of(root, settings).key
    synced = []
    for entry in Registry(settings).entries():
        if entry.gallery == key and entry.engine == "milvus":
            service = SearchService(entry.model, "milvus", root, settings)
            try:
                counts = service.build(progress=not args.quiet).counts()
            finally:
                service.close()
            synced.append({"collection": entry.collection, "added": counts["added"], "removed": counts["removed"]})
    return synced


def show_duplicates(result: dict) -> str:
    if "pairs_remembered" in result:
        return (f"remembered: {len(result['not_duplicates'])} files are not duplicates of each other "
                f"({result['pairs_remembered']} pairs in {TRASH_FOLDER}/)")
    if "moved_back" in result:
        return "\n".join([f"moved back {m['source']}" for m in result["moved_back"]]
                         + [f"{len(result['moved_back'])} files moved back"] + synced_lines(result))
    return "\n".join(group_lines(result) + aside_lines(result))


def group_lines(result: dict) -> list[str]:
    lines = [f"group {n} ({len(group)} images):\n" + "\n".join(f"  {path}" for path in group)
             for n, group in enumerate(result["groups"], start=1)]
    lines += [f"skipped {entry}" for entry in result["skipped"]]
    lines += [describe_ignored(result["ignored"])] if result["ignored"] else []
    found = sum(len(group) for group in result["groups"])
    return lines + [f"{len(result['groups'])} groups, {found} images ({result['exact_pairs']} exact, "
                    f"{result['near_pairs']} near copies joined)"]


def aside_lines(result: dict) -> list[str]:
    if "set_aside" not in result:
        return []
    moved = result["set_aside"]
    batch = moved[0]["target"].split("/")[1] if moved else None
    where = f" into {TRASH_FOLDER}/{batch}/ (undo: imgsearch duplicates {result['folder']} --undo)" if moved else ""
    return [f"set aside {len(moved)} files{where}"] + synced_lines(result)


def synced_lines(result: dict) -> list[str]:
    return [f"collection {s['collection']}: {s['removed']} rows removed, {s['added']} added" for s in result["synced"]]
