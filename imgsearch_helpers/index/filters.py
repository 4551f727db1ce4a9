"""Metadata filters in Milvus's boolean expression syntax, checked here and applied by every engine.

    label in ["cat", "dog"] and width >= 640
    not (path like "holiday/%") or size < 2000000

Milvus evaluates the expression itself; the in-process engines (FAISS, hnswlib, exact) evaluate
it here on the stored metadata. Either way it is parsed here first, so a malformed filter is the
same clear error on every engine, naming the expression and where it went wrong. The grammar is
the part of Milvus's that applies to scalar fields: comparisons (`==`, `!=`, `<`, `<=`, `>`,
`>=`), `in` / `not in` a list, `like` with `%` wildcards, `and` / `or` / `not` (also `&&`, `||`,
`!`), parentheses, string and number literals.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..errors import FilterError

TOKEN = re.compile(r"""\s*(?:
    (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<number>-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)
  | (?P<op>==|!=|<=|>=|<|>|&&|\|\||!|\(|\)|\[|\]|,)
  | (?P<word>[A-Za-z_][A-Za-z_0-9]*)
)""", re.VERBOSE)
KEYWORDS = {"and", "or", "not", "in", "like", "true", "false"}
COMPARISONS = {"==", "!=", "<", "<=", ">", ">="}


@dataclass(frozen=True)
class Token:
    kind: str  # string, number, op, word, end
    value: object
    at: int  # character position, for error messages


def tokenize(text: str) -> list[Token]:
    tokens, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = TOKEN.match(text, pos)
        if not match or match.end() == pos:
            char = text[pos:].lstrip()[:1]
            hint = " (compare with ==)" if char == "=" else ""
            raise FilterError(f"filter {text!r}: unexpected character {char!r} at {pos}{hint}")
        kind = match.lastgroup
        raw = match.group(kind)
        value = {"string": lambda r: re.sub(r"\\(.)", r"\1", r[1:-1]),
                 "number": lambda r: float(r) if any(c in r for c in ".eE") else int(r)}.get(kind, str)(raw)
        tokens.append(Token(kind, value, match.start(kind)))
        pos = match.end()
    tokens.append(Token("end", None, len(text)))
    return tokens


class Filter:
    """A parsed expression: `fields` it reads, `mask(columns)` for the rows it keeps."""

    def __init__(self, text: str, known_fields=None):
        self.text = text.strip()
        if not self.text:
            raise FilterError("the filter is empty")
        self._tokens, self._pos = tokenize(self.text), 0
        self.fields: set[str] = set()
        self.tree = self._or()
        if self._peek().kind != "end":
            self._fail(f"unexpected {self._peek().value!r}")
        unknown = self.fields - set(known_fields) if known_fields is not None else set()
        if unknown:
            raise FilterError(f"filter {self.text!r} names unknown field(s) {', '.join(sorted(unknown))}; "
                              f"the collection has {', '.join(sorted(known_fields))}")

    def __str__(self) -> str:
        return self.text

    def mask(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """True for each row the filter keeps (columns: field name -> one value per row)."""
        return np.asarray(_evaluate(self.tree, columns), dtype=bool)

    # --- recursive descent: or > and > not > comparison -----------------------------------------
    def _peek(self) -> Token:
        return self._tokens[self._pos]

    def _take(self) -> Token:
        token = self._tokens[self._pos]
        self._pos += 1
        return token

    def _is(self, *values) -> bool:
        token = self._peek()
        return token.kind in ("op", "word") and str(token.value).lower() in values

    def _fail(self, what: str):
        raise FilterError(f"filter {self.text!r}: {what} at {self._peek().at}")

    def _or(self):
        return self._chain("or", ("or", "||"), self._and)

    def _and(self):
        return self._chain("and", ("and", "&&"), self._not)

    def _chain(self, kind: str, words: tuple[str, ...], operand):
        """`operand (word operand)*`, grouped from the left."""
        node = operand()
        while self._is(*words):
            self._take()
            node = (kind, node, operand())
        return node

    def _not(self):
        if self._is("not", "!"):
            self._take()
            return ("not", self._not())
        return self._term()

    def _term(self):
        if self._is("("):
            self._take()
            node = self._or()
            if not self._is(")"):
                self._fail("expected ')'")
            self._take()
            return node
        token = self._take()
        if token.kind != "word" or token.value.lower() in KEYWORDS:
            self._pos -= 1
            self._fail(f"expected a field name, found {token.value!r}" if token.kind != "end" else "unexpected end")
        self.fields.add(token.value)
        if self._is("not"):
            self._take()
            if not self._is("in"):
                self._fail("expected 'in' after 'not'")
            self._take()
            return ("not", ("in", token.value, self._list()))
        if self._is("in"):
            self._take()
            return ("in", token.value, self._list())
        if self._is("like"):
            self._take()
            pattern = self._take()
            if pattern.kind != "string":
                self._pos -= 1
                self._fail("'like' takes a string pattern")
            return ("like", token.value, pattern.value)
        op = self._take()
        if op.kind != "op" or op.value not in COMPARISONS:
            self._pos -= 1
            choices = ", ".join(sorted(COMPARISONS))
            self._fail(f"expected a comparison ({choices}), 'in' or 'like' after {token.value!r}")
        return (op.value, token.value, self._literal())

    def _literal(self):
        token = self._take()
        if token.kind in ("string", "number"):
            return token.value
        if token.kind == "word" and token.value.lower() in ("true", "false"):
            return token.value.lower() == "true"
        self._pos -= 1
        self._fail(f"expected a string or number, found {token.value!r}" if token.kind != "end" else "unexpected end")

    def _list(self):
        if not self._is("["):
            self._fail("expected '[' to start a list")
        self._take()
        values = []
        while not self._is("]"):
            values.append(self._literal())
            if self._is(","):
                self._take()
            elif not self._is("]"):
                self._fail("expected ',' or ']' in a list")
        self._take()
        return values


def _evaluate(node, columns):
    kind = node[0]
    if kind in ("and", "or"):
        left, right = _evaluate(node[1], columns), _evaluate(node[2], columns)
        return np.logical_and(left, right) if kind == "and" else np.logical_or(left, right)
    if kind == "not":
        return np.logical_not(_evaluate(node[1], columns))
    values = np.asarray(columns[node[1]])
    if kind == "in":
        return np.isin(values, np.asarray(node[2], dtype=values.dtype if values.dtype.kind in "iufb" else object))
    if kind == "like":
        pattern = re.compile("".join(".*" if part == "%" else re.escape(part) for part in re.split("(%)", node[2])),
                             re.DOTALL)
        return np.array([bool(pattern.fullmatch(str(v))) for v in values], dtype=bool)
    literal = node[2]
    if isinstance(literal, str) != (values.dtype.kind in "OUS"):
        raise FilterError(f"filter compares field {node[1]!r} with {literal!r}, a value of another type")
    compare = {"==": np.equal, "!=": np.not_equal, "<": np.less, "<=": np.less_equal, ">": np.greater,
               ">=": np.greater_equal}[kind]
    return compare(values, literal) if values.dtype.kind not in "OUS" else compare(values.astype(str), literal)
