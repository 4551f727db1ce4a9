"""Reverse image search, end to end: the helpers behind the imgsearch notebooks, app and command line.

Top level, one concern each: `config` (settings), `errors`, `data` (dataset, catalogs, ground
truth), `download`, `images` (the decoder), `embed` (streaming, cached embedding), `cache`,
`vectors`, `parallel`, `metrics`, `search` (ingest, search, evaluate), `recipes`, `detect`,
`pipelines` (Towhee), `plot`, `results`. Subpackages: `models`, `index`, `feder` (notebook 5),
`text` (notebook 6), `experiments` (notebooks 3-4, benchmarks), `serve` (app, command line),
`tools` (notebook runner, browser, Milvus server).
"""
