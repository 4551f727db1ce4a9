"""Machinery for `make run` and the tests: the notebook runner, headless Chromium, a Milvus server, local ports."""
