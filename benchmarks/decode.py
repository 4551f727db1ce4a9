"""Where a batch of photos spends its time before and in the network, stage by stage, and whether a
faster JPEG decoder would make ingest faster.

    python benchmarks/decode.py [--gallery DIR] [--images 300] [--out benchmarks/results/decode.json]

Per image, on one thread: read the file, decode it (the package's `load_image`: Pillow, reduced
while decoding where the photo is large), resize and crop to the network's square (uint8),
normalize to float; then the network per image at batch 16 and at batch 1 (both cores); the
decoding by kind of file (suffix): images, ms each, and the core-seconds of all of them. If
`simplejpeg` (libjpeg-turbo without Pillow) is installed, its decode time too, whether its pixels
equal Pillow's, and the package's batched embedding (`embed.iter_embeddings`, decoding on worker
threads while the network runs) with either decoder, side by side in one run. `--gallery` takes
any folder of images (default: the configured tutorial gallery), `--images 0` every readable one:

    python benchmarks/decode.py --gallery data/pictures --images 0 --out benchmarks/results/decode_pictures.json

`--descriptor`: the same for the descriptor of `imgsearch duplicates` (regional GeM, the whole
image at 320 pixels), with the gray copy and ORB features each image also gets, as a stage and in
the batched embedding (`retrieval.verify.Grays`):

    python benchmarks/decode.py --descriptor --gallery data/photos-20k --out benchmarks/results/decode_duplicates.json
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from _harness import Bench, run_benchmark
from PIL import Image

from imgsearch_helpers.data.images import load_image
from imgsearch_helpers.data.tutorial import list_images, load_catalog
from imgsearch_helpers.embed import stream as embed
from imgsearch_helpers.errors import ImageError
from imgsearch_helpers.evaluation.timing import time_interleaved, time_runs
from imgsearch_helpers.models import DEFAULT_MODEL, build_embedder
from imgsearch_helpers.models.descriptors import build_instance_embedder
from imgsearch_helpers.retrieval.duplicates import VERIFY_SIDE
from imgsearch_helpers.retrieval.verify import ORB, Grays, gray_at_side

try:
    import simplejpeg
except ImportError:
    simplejpeg = None


def per_image_ms(fn, items, rounds: int = 3) -> tuple[float, list]:
    """The median over `rounds` of milliseconds per item, and the last round's outputs."""
    timing = time_runs(lambda: [fn(item) for item in items], runs=rounds)
    return 1000 * timing.median / len(items), timing.result


def decode_with_simplejpeg(path, data=None, min_side=None, **_):
    """libjpeg-turbo through simplejpeg for colour JPEGs that decode at full scale (no EXIF turn:
    for measuring only); the rest through `load_image`."""
    data = data if data is not None else Path(path).read_bytes()
    with Image.open(io.BytesIO(data)) as opened:
        reduced = min_side and min(opened.size) // min_side >= 2
        if opened.format != "JPEG" or opened.mode != "RGB" or reduced:
            return load_image(path, data=data, min_side=min_side)
    return Image.fromarray(simplejpeg.decode_jpeg(data, colorspace="RGB"))


def network_ms(embedder, tensors, batch: int, rounds: int = 3) -> float:
    """Median over `rounds` of the network's milliseconds per image at `batch`."""
    stacked = [np.stack(tensors[i : i + batch]) for i in range(0, len(tensors) - batch + 1, batch)][:12]
    embedder.embed_batch(stacked[0])  # warm-up: a first trace at this batch size
    timing = time_runs(lambda: [embedder.embed_batch(block) for block in stacked], runs=rounds)
    return 1000 * timing.median / (len(stacked) * batch)


def stream_images(embedder, paths, decoder, features: bool = False) -> int:
    """The package's batched embedding (no cache) with `decoder` in place of `load_image`: images
    embedded; with `features`, each image's ORB features found on the way, as `duplicates` does."""
    original, embed.load_image = embed.load_image, decoder
    on_image = Grays(VERIFY_SIDE, ORB).keep if features else None
    try:
        return sum(len(b.positions) for b in embed.iter_embeddings(paths, embedder, progress=False, on_image=on_image))
    finally:
        embed.load_image = original


def measure_stages(embedder, paths, torch_embedder=None, features: bool = False) -> tuple[dict, list[bytes]]:
    """Each stage's ms an image, and the files' bytes as read (for decoding them again by kind)."""
    read_ms, datas = per_image_ms(lambda p: Path(p).read_bytes(), paths)
    decode_ms, decoded = per_image_ms(lambda item: load_image(item[0], data=item[1], min_side=embedder.min_side),
                                      list(zip(paths, datas)))
    resize_ms, pixels = per_image_ms(embedder.preprocess.pixels, decoded)
    normalize_ms, tensors = per_image_ms(embedder.preprocess.normalize, pixels)
    stages = {"read_ms": read_ms, "decode_pillow_ms": decode_ms, "resize_crop_ms": resize_ms,
              "normalize_ms": normalize_ms, "network_batch16_ms_per_image": network_ms(embedder, tensors, 16),
              "network_batch1_ms": network_ms(embedder, tensors, 1)}
    if torch_embedder is not None:  # bounds any end-to-end speedup over PyTorch
        stages["torch_network_batch16_ms_per_image"] = network_ms(torch_embedder, tensors, 16)
    if features:
        stages.update(feature_stages(decoded))
    if simplejpeg is not None:
        stages["decode_simplejpeg_ms"], fast = per_image_ms(
            lambda item: decode_with_simplejpeg(item[0], data=item[1], min_side=embedder.min_side),
            list(zip(paths, datas)))
        stages["simplejpeg_same_pixels"] = sum(np.array_equal(np.asarray(a), np.asarray(b))
                                               for a, b in zip(decoded, fast)) / len(paths)
    return {key: round(value, 3) for key, value in stages.items()}, datas


def feature_stages(decoded) -> dict:
    """What `duplicates` does too with each decoded image: its gray copy at the verification side
    and that copy's ORB features (found while the image is decoded for the descriptor)."""
    gray_ms, grays = per_image_ms(lambda image: gray_at_side(image, VERIFY_SIDE), decoded)
    extractor = ORB.create()
    orb_ms, _ = per_image_ms(lambda gray: ORB.describe(gray, extractor), grays)
    return {"gray_ms": gray_ms, "orb_ms": orb_ms}


def decodes(path, min_side: int) -> bool:
    """Whether `path` decodes (a real photo folder holds broken files too: they are left out)."""
    try:
        load_image(path, min_side=min_side)
    except ImageError:
        return False
    return True


def decode_by_kind(paths, datas, min_side: int) -> dict:
    """For each suffix: images, ms to decode one (one round), and the core-seconds of all of them."""
    kinds: dict[str, list] = {}
    for path, data in zip(paths, datas):
        kinds.setdefault(Path(path).suffix.lower(), []).append((path, data))
    timed = {kind: per_image_ms(lambda item: load_image(item[0], data=item[1], min_side=min_side), items, 1)[0]
             for kind, items in sorted(kinds.items())}
    return {kind: {"images": len(kinds[kind]), "ms": round(ms, 1), "core_s": round(ms * len(kinds[kind]) / 1000, 1)}
            for kind, ms in timed.items()}


def core_budget(stages: dict) -> dict:
    """Core-milliseconds per image at batch 16 (the network uses both cores) and each stage's share."""
    cores = 2
    parts = {"read": stages["read_ms"], "decode": stages["decode_pillow_ms"], "resize_crop": stages["resize_crop_ms"],
             "normalize": stages["normalize_ms"], "network": cores * stages["network_batch16_ms_per_image"]}
    parts |= {stage: stages[f"{stage}_ms"] for stage in ("gray", "orb") if f"{stage}_ms" in stages}
    total = sum(parts.values())
    return {"core_ms_per_image": round(total, 2), "share": {k: round(v / total, 3) for k, v in parts.items()},
            "bound_images_per_s": round(1000 * cores / total, 1)}


def batched_images_per_s(embedder, paths, features: bool = False) -> dict:
    """The package's batched embedding with each decoder, interleaved so that both see the same
    machine: the best run of each."""
    decoders = {"pillow": load_image} | ({"simplejpeg": decode_with_simplejpeg} if simplejpeg is not None else {})
    timings = time_interleaved({name: lambda decoder=decoder: stream_images(embedder, paths, decoder, features)
                                for name, decoder in decoders.items()}, runs=2 if simplejpeg is not None else 1)
    return {name: round(timing.result / timing.best, 1) for name, timing in timings.items()}


def add_options(parser) -> None:
    parser.add_argument("--gallery", type=Path, help="any folder of images (default: the tutorial's gallery)")
    parser.add_argument("--images", type=int, default=300, help="the first N images (0: all)")
    parser.add_argument("--descriptor", action="store_true",
                        help="the duplicates' descriptor (regional GeM, the whole image at 320 pixels) and its ORB "
                             "features instead of the search model")


def measure(bench: Bench) -> dict:
    args, settings = bench.args, bench.settings()
    paths = [str(p) for p in (list_images(args.gallery) if args.gallery else load_catalog(settings).path)]
    build = build_instance_embedder if args.descriptor else build_embedder
    embedder = build(args.model, settings=settings)
    paths = [path for path in paths[: args.images or None] if decodes(path, embedder.min_side)]
    stages, datas = measure_stages(embedder, paths, build(args.model, settings=settings, backend="torch"),
                                   features=args.descriptor)
    by_kind = decode_by_kind(paths, datas, embedder.min_side)
    return {"model": args.model, "descriptor": args.descriptor, "backend": embedder.backend, "images": len(paths),
            "stages": stages,
            "decode_by_kind": by_kind,
            **core_budget(stages), "network_speedup_vs_torch": round(
                stages["torch_network_batch16_ms_per_image"] / stages["network_batch16_ms_per_image"], 2),
            "batched_images_per_s": batched_images_per_s(embedder, paths, args.descriptor)}


if __name__ == "__main__":
    run_benchmark(measure, __doc__, "decode.json", add_options, model=DEFAULT_MODEL)
