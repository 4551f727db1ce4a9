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


KINDS = {"label": "str", "path": "str", "width": "int", "mtime": "float"}  # as MilvusEngine declares them


@pytest.mark.parametrize("text, message", [  # each one Milvus Lite or a Milvus server (2.3) refuses
    ("width > 99999999999999999999999", "integer 99999999999999999999999 at 8 is outside Milvus's 64-bit range"),
    ("width > -9223372036854775808", "outside Milvus's 64-bit range"),  # a server negates 2**63
    ("width > " + "9" * 5000, "outside Milvus's 64-bit range"),  # more digits than int() converts
    ("width == 010", "leading zero .*octal.*write 10"),
    ("mtime > 1e400", "too large for a 64-bit float"),
    ("mtime > 1.", "unexpected character '.' at 9 .*digits on both sides"),
    (r'label == "\u00e9"', r"unknown escape \\u at 10; Milvus reads only"),
    (r'label == "\0"', r"unknown escape \\0"),
    (r'path like "%\%"', r"unknown escape \\%"),
    ('label == "a" AND width > 1', "write 'and' in lowercase at 13"),
    ('label NOT IN ["a"]', "write 'not' in lowercase"),
    ('not label == "a"', "'not' takes an expression in parentheses"),
    ('label == "a" && !width > 1', "'not' takes an expression in parentheses"),
    ("width == tRuE", "expected a string or number, found 'tRuE'"),
    ("width == true", "compares field 'width' \\(integers\\) with True, a value of another type"),
    ("width > 1.5", "compares field 'width' \\(integers\\) with 1.5"),
    ("width in [1, 2.5]", "with 2.5"),
    ('label in ["a", 1]', "compares field 'label' \\(text\\) with 1"),
    ('width like "1%"', "compares field 'width' \\(integers\\) with '1%'"),
    ("mtime == 9007199254740993", "beyond 2\\*\\*53 .*write it as a float"),
    ('label == "a\nb"', "unexpected character '\"' at 9 \\(a string that is not closed on its line\\)"),
])
def test_what_milvus_cannot_take_is_refused_here_with_the_reason(text, message):
    with pytest.raises(FilterError, match=message):
        Filter(text, KINDS)


@pytest.mark.parametrize("text", ["width > 1.5", "width in [1, 2.5]", 'label in ["a", 1]', "mtime == true"])
def test_in_process_engines_check_types_from_the_stored_columns(text):
    with pytest.raises(FilterError, match="a value of another type"):
        Filter(text, FIELDS).mask(ROWS)  # field names only: the columns' dtypes tell the kinds


@pytest.mark.parametrize("text, value", [
    (r'label == "x\ny"', "x\ny"), (r"label == 'it\'s'", "it's"), (r'label == "q\""', 'q"'),
    (r'label == "a\\b"', "a\\b"), (r'label == "a\tb"', "a\tb"), ('label == "é"', "é"),
])
def test_escapes_mean_what_milvus_reads(text, value):
    rows = {"label": np.array([value, "other"], dtype=object)}
    assert Filter(text, {"label": "str"}).mask(rows).tolist() == [True, False]


@pytest.mark.parametrize("text", [
    "width > -9223372036854775807", "width <= 9223372036854775807", "mtime > 9007199254740992",
    "mtime > 1e308", "mtime > 1", "width == 0", 'not not (label == "cat")', '!(label == "cat")',
    'label == "cat" and width > 0', 'label in []', 'label < "b"', 'path like "a/%"',
])
def test_what_both_milvus_take_is_accepted(text):
    Filter(text, KINDS)


def test_length_and_nesting_are_bounded_by_name():
    deep = "(" * 5000 + 'label == "a"' + ")" * 5000
    with pytest.raises(FilterError, match=r"is 10,012 characters long; a filter holds at most 10,000"):
        Filter(deep, FIELDS)
    with pytest.raises(FilterError, match=r"more than 40 levels of parentheses and 'not'"):
        Filter("(" * 1000 + 'label == "a"' + ")" * 1000, FIELDS)
    with pytest.raises(FilterError, match=r"more than 40 levels of parentheses and 'not' .* at 164"):
        Filter("not " * 1000 + '(label == "a")', FIELDS)
    assert kept("(" * 40 + 'label == "dog"' + ")" * 40) == [1]
    assert kept("not " * 39 + '(label == "dog")') == [0, 2, 3, 4]


def test_a_chain_counts_as_milvus_nests_it():
    """A Milvus server nests `a or b or c` as `(a or b) or c` and fails to search 50 levels."""
    chain = " or ".join(["width == 1"] * 40) + " or width == 10"  # 41 terms: 40 levels
    assert kept(chain) == [4] and kept(" and ".join(["width > 5"] * 41)) == [0, 1, 2, 3, 4]
    with pytest.raises(FilterError, match=r"nests 41 levels deep as Milvus builds it .* at most 40: .* in \[...\]"):
        Filter(" or ".join(["width == 1"] * 42), FIELDS)
    with pytest.raises(FilterError, match="nests 41 levels deep"):
        Filter("not (" * 20 + " and ".join(["width > 5"] * 22) + ")" * 20, FIELDS)


def test_messages_show_a_long_filter_cut_short():
    with pytest.raises(FilterError) as refused:
        Filter("(" * 5000 + 'label == "a"' + ")" * 5000, FIELDS)
    assert len(str(refused.value)) < 200 and "(((...)))" in str(refused.value)
