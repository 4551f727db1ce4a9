"""Duplicates in a Pictures folder, side by side in one run: `imgsearch duplicates` and the hash
methods of imagededup (PHash and DHash at their default threshold, no downloaded weights).

    python benchmarks/pictures_folder.py --sources ../shared/data/reverse_image_search/train --out data/pictures
    python benchmarks/duplicates.py --folder data/pictures       # its truth: data/pictures.truth.json

Scored on the planted pairs of the folder's truth file (`pictures_folder.py`): recall by kind of
copy and in all, precision of every pair found. All methods are scored on the same files: those the
package's walk lists (hidden folders, caches, files that are not images and the second path of a link
left out); imagededup walks the folder itself (`encode_images(recursive=True)`, its two workers),
and its pairs outside those files are not counted. Our side runs `find_duplicates`, as the command
does, with no embedding cache (the model's export is cached, as after a first run); `seconds` is the
whole call of each method, walk and decoding included.
"""
from __future__ import annotations

import itertools
import json
from collections import Counter
from pathlib import Path

from _harness import Bench, run_benchmark

from imgsearch_helpers.config import display_path
from imgsearch_helpers.data.folders import list_images
from imgsearch_helpers.evaluation.timing import time_runs
from imgsearch_helpers.retrieval.duplicates import find_duplicates


def add_options(parser) -> None:
    parser.add_argument("--folder", type=Path, required=True, help="a folder made by pictures_folder.py")


def measure(bench: Bench) -> dict:
    folder = bench.args.folder.resolve()
    truth = json.loads(Path(f"{folder}.truth.json").read_text())
    files = {path.relative_to(folder).as_posix() for path in list_images(folder)}
    planted = {frozenset((a, b)): kind for a, b, kind in truth["pairs"]}
    rows = [score(name, pairs, seconds, planted, files) for name, pairs, seconds in
            [ours(folder, bench), peer(folder, "PHash"), peer(folder, "DHash")]]
    for row in rows:
        print(f"{row['method']:<34} recall {row['recall']:.3f}  precision {row['precision']:.3f}  "
              f"{row['seconds']:6.1f} s  {row['recall_by_kind']}", flush=True)
    return {"folder": display_path(bench.args.folder), "files": len(files), "planted_pairs": len(planted),
            "rows": rows}


def ours(folder: Path, bench: Bench) -> tuple[str, set, float]:
    run = time_runs(lambda: find_duplicates(folder, bench.settings(), cache=None, progress=False))
    pairs = {frozenset(Path(p).relative_to(folder).as_posix() for p in pair)
             for group in run.result.groups for pair in itertools.combinations(group, 2)}
    return "imgsearch duplicates", pairs, run.total


def peer(folder: Path, method: str) -> tuple[str, set, float]:
    from imagededup import methods

    hasher = getattr(methods, method)(verbose=False)

    def find() -> dict:
        encodings = hasher.encode_images(image_dir=folder, recursive=True)
        return hasher.find_duplicates(encoding_map=encodings)

    run = time_runs(find)
    pairs = {frozenset((relative(folder, a), relative(folder, b))) for a, found in run.result.items() for b in found}
    return f"imagededup {method} (distance 10)", pairs, run.total


def relative(folder: Path, key: str) -> str:
    path = Path(key)
    return (path.relative_to(folder) if path.is_absolute() else path).as_posix()


def score(method: str, pairs: set, seconds: float, planted: dict, files: set) -> dict:
    pairs = {pair for pair in pairs if pair <= files}
    found = Counter(planted[pair] for pair in pairs if pair in planted)
    kinds = Counter(planted.values())
    right = sum(found.values())
    return {"method": method, "seconds": round(seconds, 1), "found_pairs": len(pairs), "right_pairs": right,
            "recall": right / len(planted), "precision": right / max(1, len(pairs)),
            "recall_by_kind": {kind: round(found[kind] / n, 3) for kind, n in kinds.items()}}


if __name__ == "__main__":
    run_benchmark(measure, __doc__, "duplicates.json", add_options)
