"""The run filter language: ``template = 'train' and metrics.accuracy > 0.8``.

One grammar serves ``mlnb runs list --filter``, ``Store.runs(filter=...)`` and the runs page
of ``mlnb ui``. An expression is parsed once into a tree and compiled to a SQL condition on
the store's index (``json_extract`` on SQLite, jsonb path operators on a team store's
PostgreSQL), so filtering 10,000 runs costs one query, not 10,000 record reads. Both
dialects give the same answer for every filter; the tests run each case on both.

Grammar (keywords are case-insensitive)::

    expr        := term ("or" term)*
    term        := factor ("and" factor)*
    factor      := "not" factor | "(" expr ")" | comparison
    comparison  := field OP value | field "in" "(" value ("," value)* ")"
    OP          := "=" | "==" | "!=" | "<" | "<=" | ">" | ">=" | "~"
    value       := 'text' | "text" | number | true | false | null
    field       := template | status | id | parent | started | finished | time | duration
                 | params.NAME | scrap.NAME | metrics.NAME | tags.NAME

``NAME`` may go deeper with dots (``scrap.decision.outcome``); ``metrics.NAME`` is short for
``scrap.metrics.NAME``; ``time`` is ``started``. Times are ISO text, so
``started >= '2026-11'`` keeps November 2026 and later. ``~`` keeps text that contains the
value (case-insensitive). Inside text, a backslash takes the next character as it is
(``'it\\'s'``). A parameter or scrap a run does not have is never equal to
anything but ``null``, and ``!=`` keeps it.

A filter that does not parse raises :class:`FilterError`, one line naming the position (1
is the first character) and what was expected there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mlnb.exceptions import MlnbError

#: Fields that are columns of the index, and the kind of value each holds.
COLUMNS = {
    "template": ("template", "text"),
    "status": ("status", "text"),
    "id": ("id", "text"),
    "parent": ("parent", "text"),
    "started": ("started", "text"),
    "finished": ("finished", "text"),
    "time": ("started", "text"),
    "duration": ("duration_s", "number"),
}
#: Prefixes of fields read from a JSON column of the index: prefix -> (column, leading keys).
JSON_FIELDS = {
    "params": ("parameters", ()),
    "parameters": ("parameters", ()),
    "scrap": ("scraps", ()),
    "scraps": ("scraps", ()),
    "metrics": ("scraps", ("metrics",)),
    "tags": ("tags", ()),
}
STATUSES = ("succeeded", "failed")
FIELDS_HELP = "template, status, id, parent, started, finished, time, duration, params.NAME, scrap.NAME, metrics.NAME, tags.NAME"
VALUE_HELP = "a value ('text', a number, true, false or null)"
OPS = ("=", "!=", "<", "<=", ">", ">=", "~")
#: SQL dialects a filter compiles to, with each one's condition that keeps every run.
DIALECTS = {"sqlite": "1", "postgresql": "TRUE"}


class FilterError(MlnbError, ValueError):
    """A filter that does not parse: ``position`` (1-based), ``expected`` and ``found``."""

    def __init__(self, text: str, position: int, expected: str, found: str):
        shown = text if len(text) <= 80 else text[:77] + "..."
        super().__init__(f"filter {shown!r} at position {position}: expected {expected}, found {found}")
        self.text = text
        self.position = position
        self.expected = expected
        self.found = found


# -- tokens ---------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<number>[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?(?![A-Za-z_.]))
  | (?P<op>==|!=|<=|>=|=|<|>|~)
  | (?P<punct>[(),])
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_][A-Za-z0-9_-]*)*)
    """,
    re.X,
)
_KEYWORDS = {"and", "or", "not", "in", "true", "false", "null"}


@dataclass(frozen=True)
class Token:
    kind: str  # string, number, op, punct, word, keyword, end
    value: Any
    pos: int  # 0-based offset
    text: str

    def describe(self) -> str:
        return "the end of the filter" if self.kind == "end" else repr(self.text)


def tokenize(text: str) -> list[Token]:
    """Split a filter into tokens, or raise FilterError at the first character that fits none."""
    tokens, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None and text[pos] in "'\"":
            raise FilterError(text, pos + 1, "text closed by " + text[pos] + " (the text that starts here has no closing quote)",
                              "the end of the filter")
        if m is None:
            raise FilterError(text, pos + 1, "a field, an operator (= != < <= > >= ~), a value or a parenthesis",
                              repr(text[pos]))
        kind, raw = m.lastgroup, m.group()
        if kind == "string":
            tokens.append(Token("string", re.sub(r"\\(.)", r"\1", raw[1:-1]), pos, raw))
        elif kind == "number":
            value = float(raw) if any(c in raw for c in ".eE") else int(raw)
            tokens.append(Token("number", value, pos, raw))
        elif kind == "op":
            tokens.append(Token("op", "=" if raw == "==" else raw, pos, raw))
        elif kind == "word" and raw.lower() in _KEYWORDS:
            tokens.append(Token("keyword", raw.lower(), pos, raw))
        elif kind != "space":
            tokens.append(Token(kind, raw, pos, raw))
        pos = m.end()
    tokens.append(Token("end", None, len(text), ""))
    return tokens


# -- the tree -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """A field: an index column (``json_path`` None) or a path into a JSON column."""

    name: str
    column: str
    kind: str  # text, number, or json (any JSON value)
    json_path: tuple[str, ...] | None = None

    def sql(self, dialect: str = "sqlite") -> tuple[str, list]:
        """SQL giving the field's value, and its arguments: ``json_extract`` on SQLite, the
        jsonb path operator ``#>`` on PostgreSQL (a jsonb value, sorted in jsonb's order)."""
        if self.json_path is None:
            return self.column, []
        if dialect == "postgresql":
            return f"({self.column} #> ?::text[])", [list(self.json_path)]
        return f"json_extract({self.column}, ?)", [_json_path(self.json_path)]


@dataclass(frozen=True)
class Compare:
    field: Field
    op: str
    value: Any  # str, int, float, bool or None


@dataclass(frozen=True)
class AnyOf:
    field: Field
    values: tuple


@dataclass(frozen=True)
class Not:
    operand: Any


@dataclass(frozen=True)
class BoolOp:
    op: str  # and, or
    operands: tuple


def _json_path(keys: tuple[str, ...]) -> str:
    return "$" + "".join(f'."{k}"' for k in keys)


def parse_field(name: str, text: str = "", pos: int = 0) -> Field:
    """The field a name denotes (``metrics.f1``, ``template``), or FilterError naming the fields."""
    lowered = name.lower()
    if lowered in COLUMNS:
        column, kind = COLUMNS[lowered]
        return Field(lowered, column, kind)
    head, _, rest = name.partition(".")
    if head.lower() in JSON_FIELDS and rest:
        column, lead = JSON_FIELDS[head.lower()]
        return Field(name, column, "json", lead + tuple(rest.split(".")))
    if head.lower() in JSON_FIELDS:
        raise FilterError(text or name, pos + 1, f"a name after '{head}.' (e.g. {head}.NAME)", repr(name))
    raise FilterError(text or name, pos + 1, f"a field ({FIELDS_HELP})", repr(name))


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def fail(self, expected: str, token: Token | None = None):
        token = token or self.tok
        raise FilterError(self.text, token.pos + 1, expected, token.describe())

    def take(self) -> Token:
        token = self.tok
        self.i += 1
        return token

    def is_keyword(self, word: str) -> bool:
        return self.tok.kind == "keyword" and self.tok.value == word

    def parse(self):
        if self.tok.kind == "end":
            self.fail("a field (" + FIELDS_HELP + ")")
        node = self.expr()
        if self.tok.kind != "end":
            self.fail("'and', 'or' or the end of the filter")
        return node

    def expr(self):
        operands = [self.term()]
        while self.is_keyword("or"):
            self.take()
            operands.append(self.term())
        return operands[0] if len(operands) == 1 else BoolOp("or", tuple(operands))

    def term(self):
        operands = [self.factor()]
        while self.is_keyword("and"):
            self.take()
            operands.append(self.factor())
        return operands[0] if len(operands) == 1 else BoolOp("and", tuple(operands))

    def factor(self):
        if self.is_keyword("not"):
            self.take()
            return Not(self.factor())
        if self.tok.kind == "punct" and self.tok.value == "(":
            self.take()
            node = self.expr()
            if not (self.tok.kind == "punct" and self.tok.value == ")"):
                self.fail("')' or 'and', 'or'")
            self.take()
            return node
        return self.comparison()

    def comparison(self):
        token = self.tok
        if token.kind != "word":
            self.fail(f"a field ({FIELDS_HELP})")
        self.take()
        field = parse_field(token.value, self.text, token.pos)
        if self.is_keyword("in"):
            self.take()
            if not (self.tok.kind == "punct" and self.tok.value == "("):
                self.fail("'(' and a list of values after 'in'")
            self.take()
            values = [self.value(field, "=")]
            while self.tok.kind == "punct" and self.tok.value == ",":
                self.take()
                values.append(self.value(field, "="))
            if not (self.tok.kind == "punct" and self.tok.value == ")"):
                self.fail("',' or ')'")
            self.take()
            return AnyOf(field, tuple(values))
        if self.tok.kind != "op":
            self.fail("an operator (= != < <= > >= ~ or in)")
        op = self.take().value
        return Compare(field, op, self.value(field, op))

    def value(self, field: Field, op: str):
        token = self.tok
        if token.kind in ("string", "number"):
            value = token.value
        elif token.kind == "keyword" and token.value in ("true", "false", "null"):
            value = {"true": True, "false": False, "null": None}[token.value]
        else:
            self.fail(VALUE_HELP)
        self.take()
        self.check_value(field, op, value, token)
        return value

    def check_value(self, field: Field, op: str, value: Any, token: Token) -> None:
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if op in ("<", "<=", ">", ">=") and not (number or isinstance(value, str)):
            self.fail(f"a number or 'text' after {op}", token)
        if op == "~" and not isinstance(value, str):
            self.fail("'text' after ~ (it keeps values that contain the text)", token)
        if field.kind == "text" and not (isinstance(value, str) or (value is None and field.name == "parent")):
            allowed = "'text' or null" if field.name == "parent" else "'text'"
            self.fail(f"{allowed} for {field.name}", token)
        if field.kind == "number" and not number:
            self.fail(f"a number of seconds for {field.name}", token)
        if field.name == "status" and op in ("=", "!=") and value not in STATUSES:
            self.fail("'succeeded' or 'failed' for status", token)


def parse(text: str):
    """Parse a filter into its tree.

    Raises:
        FilterError: the position and what was expected there.
    """
    if not isinstance(text, str):
        raise FilterError(repr(text), 1, "the filter as text", type(text).__name__)
    return _Parser(text).parse()


# -- SQL ------------------------------------------------------------------------------------


def _compare_sql(field: Field, op: str, value: Any) -> tuple[str, list]:
    """SQLite: SQL that is 1 or 0 (never NULL) for one comparison."""
    expr, args = field.sql()
    if value is None:
        if field.json_path is None:
            sql = f"{expr} IS NULL"
        else:
            sql = f"COALESCE(json_type({field.column}, ?), 'null') = 'null'"
            args = [_json_path(field.json_path)]
        return (f"NOT ({sql})" if op == "!=" else sql), args
    negate = op == "!="
    sql_op = "=" if negate else op
    if field.json_path is None:
        if op == "~":
            sql = f"instr(lower({expr}), lower(?)) > 0"
        else:
            sql = f"{expr} {sql_op} ?"
        sql, args = f"COALESCE({sql}, 0)", args + [value]
    else:
        path = _json_path(field.json_path)
        typ = f"json_type({field.column}, ?)"
        if isinstance(value, bool):
            sql, args = f"COALESCE({typ} = ?, 0)", [path, "true" if value else "false"]
            if op not in ("=", "!="):
                raise AssertionError(op)  # refused by the parser
        elif isinstance(value, str):
            cond = f"instr(lower({expr}), lower(?)) > 0" if op == "~" else f"{expr} {sql_op} ?"
            sql, args = f"COALESCE({typ} = 'text' AND {cond}, 0)", [path, *args, value]
        else:
            sql, args = f"COALESCE({typ} IN ('integer', 'real') AND {expr} {sql_op} ?, 0)", [path, *args, value]
    return (f"NOT {sql}" if negate else sql), args


def _compare_sql_postgresql(field: Field, op: str, value: Any) -> tuple[str, list]:
    """PostgreSQL: a boolean condition that is never NULL for one comparison.

    JSON values are read with ``#>`` (the jsonb value, for its type) and ``#>>`` (its text);
    numbers are cast only under a CASE that has checked the type, so a text scrap never
    reaches the cast. Text is compared in the C collation, byte by byte as SQLite does, so
    ``started >= '2026-11'`` means the same on both. The SQL holds no literal ``?`` or ``%``
    (both are placeholders to the driver): containment is ``strpos``, not LIKE.
    """
    negate = op == "!="
    sql_op = "=" if negate else op
    ordered = " COLLATE \"C\"" if op in ("<", "<=", ">", ">=") else ""
    if field.json_path is None:
        column = field.column
        if value is None:
            sql = f"{column} IS NULL"
            return (f"NOT ({sql})" if negate else sql), []
        if op == "~":
            sql = f"COALESCE(strpos(lower({column}), lower(?)) > 0, FALSE)"
        elif field.kind == "number":
            sql = f"COALESCE({column} {sql_op} ?::double precision, FALSE)"
        else:
            sql = f"COALESCE({column}{ordered} {sql_op} ?, FALSE)"
        return (f"NOT {sql}" if negate else sql), [value]
    path = list(field.json_path)
    typ = f"jsonb_typeof({field.column} #> ?::text[])"
    text = f"({field.column} #>> ?::text[])"
    if value is None:
        sql = f"COALESCE({typ}, 'null') = 'null'"
        return (f"NOT ({sql})" if negate else sql), [path]
    if isinstance(value, bool):
        if op not in ("=", "!="):
            raise AssertionError(op)  # refused by the parser
        sql, args = f"COALESCE({typ} = 'boolean' AND {text} = ?, FALSE)", [path, path, "true" if value else "false"]
    elif isinstance(value, str):
        cond = f"strpos(lower({text}), lower(?)) > 0" if op == "~" else f"{text}{ordered} {sql_op} ?"
        sql, args = f"COALESCE({typ} = 'string' AND {cond}, FALSE)", [path, path, value]
    else:
        sql = f"(CASE WHEN {typ} = 'number' THEN {text}::double precision {sql_op} ?::double precision ELSE FALSE END)"
        args = [path, path, value]
    return (f"NOT {sql}" if negate else sql), args


def to_sql(node, dialect: str = "sqlite") -> tuple[str, list]:
    """A parsed filter as a SQL condition on the ``runs`` index table, with its arguments.

    ``dialect`` is ``sqlite`` (the local store) or ``postgresql`` (a team store).
    """
    if dialect not in DIALECTS:
        raise ValueError(f"unknown SQL dialect {dialect!r}; known: {', '.join(DIALECTS)}")
    if isinstance(node, Compare):
        compare = _compare_sql_postgresql if dialect == "postgresql" else _compare_sql
        return compare(node.field, node.op, node.value)
    if isinstance(node, AnyOf):
        return to_sql(BoolOp("or", tuple(Compare(node.field, "=", v) for v in node.values)), dialect)
    if isinstance(node, Not):
        sql, args = to_sql(node.operand, dialect)
        return f"NOT ({sql})", args
    if isinstance(node, BoolOp):
        parts, args = [], []
        for operand in node.operands:
            sql, a = to_sql(operand, dialect)
            parts.append(f"({sql})")
            args.extend(a)
        return f" {node.op.upper()} ".join(parts), args
    raise TypeError(f"not a filter node: {node!r}")


def compile_filter(text: str | None, dialect: str = "sqlite") -> tuple[str, list]:
    """``(sql, args)`` for a filter text in ``dialect``; a condition that keeps every run
    (``1``, or ``TRUE`` on PostgreSQL) for None or blank text."""
    if text is None or not text.strip():
        if dialect not in DIALECTS:
            raise ValueError(f"unknown SQL dialect {dialect!r}; known: {', '.join(DIALECTS)}")
        return DIALECTS[dialect], []
    return to_sql(parse(text), dialect)


def text_sql(name: str, dialect: str = "sqlite") -> tuple[str, list]:
    """SQL giving a JSON field's value where it is text, NULL where it is anything else or
    missing (``scrap.model.name``), and its arguments."""
    field = parse_field(name, name, 0)
    if field.json_path is None:
        return field.column, []
    if dialect == "postgresql":
        path = list(field.json_path)
        return (f"(CASE WHEN jsonb_typeof({field.column} #> ?::text[]) = 'string' "
                f"THEN {field.column} #>> ?::text[] END)"), [path, path]
    path = _json_path(field.json_path)
    return f"(CASE WHEN json_type({field.column}, ?) = 'text' THEN json_extract({field.column}, ?) END)", [path, path]


def sort_sql(name: str, dialect: str = "sqlite") -> tuple[str, list]:
    """SQL giving the value to sort by for a field name (``started``, ``metrics.f1``).

    Raises:
        FilterError: not a field.
    """
    return parse_field(name.strip(), name, 0).sql(dialect)
