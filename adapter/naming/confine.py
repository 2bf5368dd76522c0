"""Confine a PromQL query to label values: every selector gets ``label="value"`` matchers added.

``confine(query, {"namespace": "team-a"})`` is what prom-label-proxy does to a query: each vector and
matrix selector, wherever it is (function arguments, both sides of a binary operation, subqueries,
every branch of a ``{a="1" or b="2"}`` selector), carries the matcher. A matcher the query already
has on that label stays, so ``namespace=~".*"`` or ``namespace="team-b"`` intersects with the added one
(selecting nothing of another namespace): the result can only ever narrow the selection.

How: the query's own text is scanned with PromQL's lexical rules (strings, comments, brace blocks,
identifiers) to find where each selector's matchers end, and the matcher is inserted there, so every
other byte of the query is kept as written (``promql-parser`` prints string literals unescaped, so
printing a rewritten tree would not be faithful). The result is then *proved* on Prometheus's
grammar: it must parse, have as many selectors as the original, in the same order, each with the
original's name, matchers, offset and ``@`` plus exactly the added ones (in every ``or`` branch), and
the scan must have made exactly one insertion per selector. Anything else raises ``PromQLError``:
a query that cannot be proved confined is never sent.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence

import promql_parser as pp

from adapter.naming.promql import Expr, PromQLError, parse
from adapter.naming.selectors import quote

_LABEL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_NUMBER = re.compile(r"[0-9.][0-9A-Za-z_.]*")
# keywords (case-insensitive in Prometheus's lexer) that are never a metric name where they stand
_KEYWORDS = frozenset({"and", "or", "unless", "atan2", "by", "without", "on", "ignoring", "group_left",
                       "group_right", "bool", "offset", "inf", "nan", "start", "end", "fill", "fill_left",
                       "fill_right"})
_GROUPING = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right", "fill",
                       "fill_left", "fill_right"})


def _string_end(text: str, i: int) -> int:
    """Index just past the string literal starting at ``text[i]`` (``"``, ``'`` or a backtick)."""
    q = text[i]
    j = i + 1
    while j < len(text):
        c = text[j]
        if c == "\\" and q != "`":
            j += 2
            continue
        if c == q:
            return j + 1
        j += 1
    raise PromQLError("unterminated string")


def _skip(text: str, i: int) -> int:
    """Past whitespace and ``#`` comments."""
    while i < len(text):
        if text[i].isspace():
            i += 1
        elif text[i] == "#":
            nl = text.find("\n", i)
            i = len(text) if nl < 0 else nl + 1
        else:
            break
    return i


def _points(text: str) -> Iterator[tuple[int, str]]:
    """Where matchers go, as (index, kind): ``inside`` a brace block before its ``}`` or an ``or``
    (kind ``first`` when the block or branch is empty so far, ``after_comma`` when it ends with a
    comma), or ``bare`` right after a metric name written without braces."""
    i = 0
    depth_grouping = 0  # inside a by(...)/on(...) label list: identifiers there are label names
    paren_stack: list[bool] = []  # per open paren: is it a grouping label list?
    bracket = 0
    while True:
        i = _skip(text, i)
        if i >= len(text):
            return
        c = text[i]
        if c in "\"'`":
            i = _string_end(text, i)
        elif c == "{":
            yield from _brace_points(text, i)
            i = _brace_end(text, i)
        elif c == "(":
            paren_stack.append(False)
            i += 1
        elif c == ")":
            if paren_stack and paren_stack.pop():
                depth_grouping -= 1
            i += 1
        elif c == "[":
            bracket += 1
            i += 1
        elif c == "]":
            bracket -= 1
            i += 1
        elif (m := _NUMBER.match(text, i)) is not None:
            i = m.end()
        elif (m := _IDENT.match(text, i)) is not None:
            word = m.group(0)
            i = m.end()
            j = _skip(text, i)
            nxt = text[j] if j < len(text) else ""
            if word.lower() in _GROUPING and nxt == "(":
                paren_stack.append(True)
                depth_grouping += 1
                i = j + 1
            elif depth_grouping or bracket or word.lower() in _KEYWORDS or nxt in ("(", "{"):
                continue  # a label name, a keyword, a function or aggregation, or a name{...}
            elif _skip_word(text, j) in ("by", "without"):
                continue  # ``sum by (...)``: an aggregation
            else:
                yield i, "bare"
        else:
            i += 1


def _skip_word(text: str, j: int) -> str:
    m = _IDENT.match(text, j)
    return m.group(0).lower() if m else ""


def _brace_end(text: str, i: int) -> int:
    j = i + 1
    while j < len(text):
        j = _skip(text, j)
        if j >= len(text):
            break
        if text[j] in "\"'`":
            j = _string_end(text, j)
        elif text[j] == "}":
            return j + 1
        else:
            j += 1
    raise PromQLError("unterminated label matchers")


def _brace_points(text: str, i: int) -> Iterator[tuple[int, str]]:
    last = "{"  # the last significant token of the current branch
    j = i + 1
    while True:
        j = _skip(text, j)
        if j >= len(text):
            raise PromQLError("unterminated label matchers")
        c = text[j]
        if c in "\"'`":
            j = _string_end(text, j)
            last = "s"
        elif c == "}":
            yield j, _kind(last)
            return
        elif (m := _IDENT.match(text, j)) is not None:
            if m.group(0).lower() == "or" and last not in ("{", ",", "op"):
                yield j, _kind(last)
                last = "{"
            else:
                last = "w"
            j = m.end()
        elif c == ",":
            last = ","
            j += 1
        else:
            last = "op"
            j += 1


def _kind(last: str) -> str:
    return {"{": "first", ",": "after_comma"}.get(last, "inside")


def _selectors(expr: Expr) -> list[pp.VectorSelector]:
    out: list[pp.VectorSelector] = []

    def pre(node: Expr) -> None:
        if isinstance(node, pp.VectorSelector):  # the walk visits a matrix selector's vector selector too
            out.append(node)

    pp.walk(expr, pre_visit=pre)
    return out


def _matchers(groups: Sequence[Sequence[pp.Matcher]]) -> list[set[tuple[str, str, str]]]:
    return [{(m.name, str(m.op), m.value) for m in g} for g in groups]


def _groups(sel: pp.VectorSelector) -> list[set[tuple[str, str, str]]]:
    ms = sel.matchers
    return _matchers(ms.or_matchers) if ms.or_matchers else _matchers([ms.matchers])


def confine(query: str, matchers: Mapping[str, str]) -> str:
    """``query`` with ``label="value"`` for each of ``matchers`` on every selector; ``PromQLError``
    when the query does not parse or the result cannot be proved confined."""
    for name in matchers:
        if not _LABEL.fullmatch(name):
            raise PromQLError(f"invalid label name {name!r}")
    tree = parse(query)
    if not matchers:
        return query
    inner = ",".join(f"{k}={quote(v)}" for k, v in matchers.items())
    pieces: list[str] = []
    last = 0
    count = 0
    for at, kind in _points(query):
        pieces.append(query[last:at])
        pieces.append({"bare": "{" + inner + "}", "first": inner, "after_comma": inner}.get(kind, "," + inner))
        if kind != "bare" and _before_or(query, at):
            pieces.append(" ")
        last = at
        count += 1
    pieces.append(query[last:])
    result = "".join(pieces)
    _prove(tree, result, matchers, count)
    return result


def _before_or(query: str, at: int) -> bool:
    """True when the insertion lands right before an ``or`` keyword (keep a space before it)."""
    return query[at:at + 2].lower() == "or"


def _literals(expr: Expr) -> list[object]:
    out: list[object] = []

    def pre(node: Expr) -> None:
        if isinstance(node, (pp.StringLiteral, pp.NumberLiteral)):
            out.append(repr(node.val))  # repr: NaN equals NaN

    pp.walk(expr, pre_visit=pre)
    return out


def _prove(tree: Expr, result: str, matchers: Mapping[str, str], insertions: int) -> None:
    added = {(k, "MatchOp.Equal", v) for k, v in matchers.items()}
    original = _selectors(tree)
    confined_tree = parse(result)
    confined = _selectors(confined_tree)
    if _literals(confined_tree) != _literals(tree):
        raise PromQLError("cannot confine this query: a literal would change")
    branches = sum(max(1, len(s.matchers.or_matchers)) for s in original)
    if len(confined) != len(original) or insertions != branches:
        raise PromQLError("cannot confine this query: its selectors could not all be located")
    for before, after in zip(original, confined, strict=True):
        same_place = (before.name == after.name and str(before.offset) == str(after.offset)
                      and str(before.at) == str(after.at))
        want = [g | added for g in _groups(before)]
        if not same_place or _groups(after) != want:
            raise PromQLError("cannot confine this query: a selector did not come out as expected")
