"""Metadata filters: Milvus's boolean expression syntax, parsed here and applied to stored rows."""
import numpy as np
import pytest

from imgsearch_helpers.errors import FilterError, UsageError
from imgsearch_helpers.index.filters import Filter

ROWS = {"label": np.array(["cat", "dog", "cat", "bird", "001"], dtype=object),
        "path": np.array(["a/cat1.jpg", "a/dog.png", "b/cat2.jpg", "b/bird.jpg", "001/x.jpg"], dtype=object),
        "width": np.array([640, 1024, 320, 800, 10]), "mtime": np.array([1.5, 2.5, 3.5, 4.5, 5.5])}
FIELDS = set(ROWS)


def kept(text: str) -> list[int]:
    return np.flatnonzero(Filter(text, FIELDS).mask(ROWS)).tolist()


@pytest.mark.parametrize("text, rows", [
    ('label in ["cat", "dog"]', [0, 1, 2]),
    ("label == 'bird'", [3]),
    ('label not in ["cat"]', [1, 3, 4]),
    ("width >= 640", [0, 1, 3]),
    ("width > 300 and width < 700", [0, 2]),
    ('label == "cat" or width > 1000', [0, 1, 2]),
    ('not (label == "cat")', [1, 3, 4]),
    ('!(width < 800) && label != "dog"', [3]),
    ('path like "b/%"', [2, 3]),
    ('path like "%.png"', [1]),
    ('label == "001"', [4]),  # a label made of digits stays text
    ("mtime <= 2.5 || width == 10", [0, 1, 4]),
    ('label in ["cat",]', [0, 2]),
])
def test_each_form_keeps_only_matching_rows(text, rows):
    assert kept(text) == rows


def test_fields_read_are_reported():
    assert Filter('label in ["a"] and (width > 1 or mtime < 2)').fields == {"label", "width", "mtime"}


@pytest.mark.parametrize("text, message", [
    ("", "empty"),
    ("label ==", "unexpected end"),
    ('label = "cat"', "unexpected character '=' .*compare with =="),
    ('label "cat"', "expected a comparison"),
    ('label in "cat"', r"expected '\['"),
    ('(label == "cat"', "expected '\\)'"),
    ('label == "cat" dog', "unexpected 'dog'"),
    ("colour == 'red'", "unknown field.*colour.*the collection has"),
    ('path like 3', "'like' takes a string"),
    ("width > 'wide'", "another type"),
    ("label == 5", "another type"),
    ('label == "cat" # x', "unexpected character '#'"),
])
def test_malformed_filters_are_clear_errors(text, message):
    with pytest.raises(FilterError, match=message):
        Filter(text, FIELDS).mask(ROWS)


def test_a_filter_error_is_a_usage_error_with_exit_code_2():
    assert issubclass(FilterError, UsageError) and FilterError.exit_code == 2
