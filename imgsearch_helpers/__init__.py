"""Reverse image search, end to end: the helpers behind the imgsearch notebooks, app and command line.

Layers, bottom to top (docs/architecture.md; tests/fast/test_layers.py keeps every import pointing down):
`config`, `errors`, `_io`, `vectors`, `parallel`, `browser`, `local_server` (base); `data`; `embed`;
`models` (networks, their weights, exports and runtimes); `index` (engines); `feder` (index views);
`retrieval` (ingest, search, re-ranking, text paths); `evaluation` (metrics, runs, experiments,
plots); `gallery` (a folder's collection, the service); `serve` and `scaleout` (the apps); `devtools`.
"""
