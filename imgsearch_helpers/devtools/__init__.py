"""Machinery for `make run` and the tests only (nothing in the package imports it): the notebook runner."""
