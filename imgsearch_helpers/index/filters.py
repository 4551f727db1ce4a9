r"""Metadata filters in Milvus's boolean expression syntax, checked here and applied by every engine.

    label in ["cat", "dog"] and width >= 640
    not (path like "holiday/%") or size < 2000000

Milvus evaluates the expression itself; the in-process engines (FAISS, hnswlib, exact) evaluate
it here on the stored metadata. Either way it is parsed here first, so a malformed filter is the
same clear error on every engine, naming the expression and where it went wrong. The grammar is
the part of Milvus's that applies to scalar fields: comparisons (`==`, `!=`, `<`, `<=`, `>`,
`>=`), `in` / `not in` a list, `like` with `%` wildcards, `and` / `or` / `not` (also `&&`, `||`,
`!`), parentheses, string and number literals.

It is the part both Milvus Lite and a Milvus server (2.3) accept, read the same way: lowercase
keywords; `not` before a parenthesis (a server reads `not a == 1` as `(not a) == 1`); integers
within int64 without leading zeros (a server reads `010` as octal); finite floats with a digit
after the point; the escapes `\"`, `\'`, `\\`, `\n`, `\r`, `\t`; a literal of the field's type
(an integer field takes no float). Length and nesting are bounded: each level of nesting costs
stack, here and in Milvus Lite, and a Milvus server (2.3) fails to search an expression nested
about 50 levels deep, counting each `and` / `or` after a chain's first term (it nests `a or b or
c` as `(a or b) or c`).
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import reduce

import numpy as np

from ..errors import FilterError

MAX_LENGTH = 10_000  # characters
MAX_DEPTH = 40  # levels: of parentheses and `not` while parsing; of Milvus's expression tree after
INT64_MAX = 2**63 - 1  # a server reads -N as -(N): -2**63 is out of range there too
FLOAT_EXACT_INT = 2**53  # the largest integer Milvus Lite compares with a float field
TOKEN = re.compile(r"""[ \t\r\n]*(?:
    (?P<string>"(?:[^"\\\r\n]|\\.)*"|'(?:[^'\\\r\n]|\\.)*')
  | (?P<number>-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)
  | (?P<op>==|!=|<=|>=|<|>|&&|\|\||!|\(|\)|\[|\]|,)
  | (?P<word>[A-Za-z_][A-Za-z_0-9]*)
)""", re.VERBOSE)
KEYWORDS = {"and", "or", "not", "in", "like"}
BOOLEANS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
ESCAPES = {'"': '"', "'": "'", "\\": "\\", "n": "\n", "r": "\r", "t": "\t"}
COMPARISONS = {"==", "!=", "<", "<=", ">", ">="}
HINTS = {"=": " (compare with ==)", ".": " (write 0.5 or 1.0: digits on both sides of the point)",
         '"': " (a string that is not closed on its line)", "'": " (a string that is not closed on its line)"}
LITERAL_TYPES = {"str": (str,), "int": (int,), "float": (int, float)}  # what a field of each kind is compared with
KIND_WORDS = {"str": "text", "int": "integers", "float": "numbers"}


def quoted(text: str) -> str:
    """The filter as messages show it: as written (no repr doubling its backslashes), cut short."""
    return f"'{shortened(text, 80)}'"


def shortened(text: str, limit: int) -> str:
    """`text` cut in the middle past `limit` characters."""
    return text if len(text) <= limit else f"{text[:limit // 2]}...{text[-(limit // 2):]}"


@dataclass(frozen=True)
class Token:
    kind: str  # string, number, bool, op, word, end
    value: object
    at: int  # character position, for error messages


def tokenize(text: str) -> list[Token]:
    tokens, pos = [], 0
    while pos < len(text):
        if text[pos:].strip(" \t\r\n") == "":
            break
        match = TOKEN.match(text, pos)
        if not match or match.end() == pos:
            at = len(text) - len(text[pos:].lstrip(" \t\r\n"))
            char = text[at]
            raise FilterError(f"filter {quoted(text)}: unexpected character {char!r} at {at}{HINTS.get(char, '')}")
        kind = match.lastgroup
        raw, at = match.group(kind), match.start(kind)
        tokens.append(_token(text, kind, raw, at))
        pos = match.end()
    tokens.append(Token("end", None, len(text)))
    return tokens


def _token(text: str, kind: str, raw: str, at: int) -> Token:
    if kind == "string":
        return Token(kind, _unescape(text, raw, at), at)
    if kind == "number":
        return Token(kind, _number(text, raw, at), at)
    if kind == "word" and raw in BOOLEANS:
        return Token("bool", BOOLEANS[raw], at)
    if kind == "word" and raw.lower() in KEYWORDS and raw != raw.lower():
        raise FilterError(f"filter {quoted(text)}: write {raw.lower()!r} in lowercase at {at} "
                          "(Milvus servers read only lowercase keywords)")
    return Token(kind, raw, at)


def _unescape(text: str, raw: str, at: int) -> str:
    """A string literal's value: only the escapes every Milvus reads (Lite refuses \\u, \\x, \\0 ...)."""
    def replace(match):
        if match.group(1) not in ESCAPES:
            raise FilterError(f"filter {quoted(text)}: unknown escape {match.group(0)} at {at + 1 + match.start()}; "
                              "Milvus reads only \\\" \\' \\\\ \\n \\r \\t: write other characters as they are")
        return ESCAPES[match.group(1)]
    return re.sub(r"\\(.)", replace, raw[1:-1])


def _number(text: str, raw: str, at: int) -> int | float:
    if any(c in raw for c in ".eE"):
        value = float(raw)
        if not math.isfinite(value):
            raise FilterError(f"filter {quoted(text)}: {shortened(raw, 40)} at {at} is too large for a 64-bit float")
        return value
    if re.match(r"-?0[0-9]", raw):
        decimal = re.sub(r"^(-?)0+", r"\1", raw)
        raise FilterError(f"filter {quoted(text)}: {shortened(raw, 40)} at {at} has a leading zero (a Milvus "
                          f"server reads it as octal); write {shortened(decimal, 40)}")
    if len(raw.lstrip("-")) > len(str(INT64_MAX)) or abs(int(raw)) > INT64_MAX:  # int() of 5,000 digits fails
        raise FilterError(f"filter {quoted(text)}: integer {shortened(raw, 40)} at {at} is outside Milvus's "
                          f"64-bit range (-{INT64_MAX} to {INT64_MAX})")
    return int(raw)


def check_literal(text: str, field: str, kind: str, literal) -> None:
    """Refuse a literal a field of `kind` is not compared with (Milvus refuses it; numpy would guess)."""
    if isinstance(literal, bool) or not isinstance(literal, LITERAL_TYPES[kind]):
        raise FilterError(f"filter {quoted(text)} compares field {field!r} ({KIND_WORDS[kind]}) with {literal!r}, "
                          "a value of another type")
    if kind == "float" and isinstance(literal, int) and abs(literal) > FLOAT_EXACT_INT:
        raise FilterError(f"filter {quoted(text)} compares field {field!r} ({KIND_WORDS[kind]}) with the integer "
                          f"{literal}, beyond 2**53 (Milvus Lite refuses it): write it as a float, {float(literal)!r}")


def column_kind(values: np.ndarray) -> str:
    return {"i": "int", "u": "int", "f": "float"}.get(values.dtype.kind, "str")


class Filter:
    """A parsed expression: `fields` it reads, `mask(columns)` for the rows it keeps.

    `known_fields`: the collection's field names, or a mapping name -> kind ("str", "int",
    "float") to check each literal's type now rather than when rows are masked."""

    def __init__(self, text: str, known_fields=None):
        self.text = text.strip()
        if not self.text:
            raise FilterError("the filter is empty")
        if len(self.text) > MAX_LENGTH:
            raise FilterError(f"filter {quoted(self.text)} is {len(self.text):,} characters long; "
                              f"a filter holds at most {MAX_LENGTH:,}")
        self._tokens, self._pos, self._depth = tokenize(self.text), 0, 0
        self.fields: set[str] = set()
        self.tree = self._or()
        if self._peek().kind != "end":
            self._fail(f"unexpected {self._peek().value!r}")
        if milvus_depth(self.tree) > MAX_DEPTH:
            raise FilterError(f"filter {quoted(self.text)} nests {milvus_depth(self.tree)} levels deep as Milvus "
                              f"builds it (each 'not', and each 'and' / 'or' after the first term, is a level); a "
                              f"Milvus server searches at most {MAX_DEPTH}: for many values of one field write "
                              "field in [...]")
        unknown = self.fields - set(known_fields) if known_fields is not None else set()
        if unknown:
            raise FilterError(f"filter {quoted(self.text)} names unknown field(s) {', '.join(sorted(unknown))}; "
                              f"the collection has {', '.join(sorted(known_fields))}")
        if isinstance(known_fields, Mapping):
            self._check_types(known_fields)

    def __str__(self) -> str:
        return self.text

    def mask(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """True for each row the filter keeps (columns: field name -> one value per row)."""
        columns = {name: np.asarray(values) for name, values in columns.items()}
        self._check_types({name: column_kind(values) for name, values in columns.items()})
        return np.asarray(_evaluate(self.tree, columns), dtype=bool)

    def _check_types(self, kinds: Mapping[str, str]) -> None:
        for field, literal in _literals(self.tree):
            check_literal(self.text, field, kinds[field], literal)

    # --- recursive descent: or > and > not > comparison -----------------------------------------
    def _peek(self) -> Token:
        return self._tokens[self._pos]

    def _take(self) -> Token:
        token = self._tokens[self._pos]
        self._pos += 1
        return token

    def _is(self, *values) -> bool:
        token = self._peek()
        return token.kind in ("op", "word") and token.value in values

    def _fail(self, what: str):
        raise FilterError(f"filter {quoted(self.text)}: {what} at {self._peek().at}")

    def _or(self):
        return self._chain("or", ("or", "||"), self._and)

    def _and(self):
        return self._chain("and", ("and", "&&"), self._not)

    def _chain(self, kind: str, words: tuple[str, ...], operand):
        """`operand (word operand)*` as one node (evaluated without a level of recursion per term)."""
        operands = [operand()]
        while self._is(*words):
            self._take()
            operands.append(operand())
        return (kind, operands) if len(operands) > 1 else operands[0]

    def _nested(self, parse):
        """`parse()` one level deeper: each level costs stack, here and in Milvus Lite."""
        self._depth += 1
        if self._depth > MAX_DEPTH:
            self._fail(f"more than {MAX_DEPTH} levels of parentheses and 'not' (the most a filter may nest)")
        node = parse()
        self._depth -= 1
        return node

    def _not(self):
        if not self._is("not", "!"):
            return self._term()
        self._take()
        if not self._is("(", "not", "!"):
            self._fail("'not' takes an expression in parentheses, as in not (size > 1) (a Milvus server reads "
                       "not size > 1 as (not size) > 1)")
        return ("not", self._nested(self._not))

    def _term(self):
        if self._is("("):
            self._take()
            node = self._nested(self._or)
            if not self._is(")"):
                self._fail("expected ')'")
            self._take()
            return node
        token = self._take()
        if token.kind != "word" or token.value in KEYWORDS:
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
        if token.kind in ("string", "number", "bool"):
            return token.value
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


def milvus_depth(node) -> int:
    """Levels above the comparisons in the tree a Milvus server builds: `a or b or c` is `(a or b) or c`."""
    kind = node[0]
    if kind in ("and", "or"):
        operands = node[1]
        return max(len(operands) - max(i, 1) + milvus_depth(operand) for i, operand in enumerate(operands))
    if kind == "not":
        return 1 + milvus_depth(node[1])
    return 0


def _literals(node):
    """(field, literal) for every literal in the tree: a list gives one pair per element."""
    kind = node[0]
    if kind in ("and", "or"):
        return [pair for operand in node[1] for pair in _literals(operand)]
    if kind == "not":
        return _literals(node[1])
    return [(node[1], value) for value in (node[2] if kind == "in" else [node[2]])]


def _evaluate(node, columns):
    kind = node[0]
    if kind in ("and", "or"):
        combine = np.logical_and if kind == "and" else np.logical_or
        return reduce(combine, (_evaluate(operand, columns) for operand in node[1]))
    if kind == "not":
        return np.logical_not(_evaluate(node[1], columns))
    values = columns[node[1]]
    if kind == "in":
        return np.isin(values, np.asarray(node[2], dtype=values.dtype if values.dtype.kind in "iuf" else object))
    if kind == "like":
        pattern = re.compile("".join(".*" if part == "%" else re.escape(part) for part in re.split("(%)", node[2])),
                             re.DOTALL)
        return np.array([bool(pattern.fullmatch(str(v))) for v in values], dtype=bool)
    compare = {"==": np.equal, "!=": np.not_equal, "<": np.less, "<=": np.less_equal, ">": np.greater,
               ">=": np.greater_equal}[kind]
    return compare(values, node[2]) if column_kind(values) != "str" else compare(values.astype(str), node[2])
