"""Kubernetes label-selector strings -> ``Selector``, and selectors -> PromQL label matchers.

Parsing follows ``k8s.io/apimachinery/pkg/labels`` (``labels.Parse``): ``a=b``, ``a==b``, ``a!=b``,
``a in (x,y)``, ``a notin (x)``, ``a``, ``!a``, ``a>1``, ``a<1``, comma-separated. Keys must be
qualified names, values label values (63 chars, alphanumerics plus ``-_.``).

Every value reaching PromQL goes through :func:`quote` (a PromQL string literal with escapes), and
values joined into a ``=~`` regex are regex-escaped first, so set-based requirements match exactly
as Kubernetes defines them (never as patterns) and no value can change a query's meaning.
"""

from __future__ import annotations

import re

from adapter.errors import BadRequest
from adapter.model import Requirement, Selector, go_int64

_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_KEY_RE = re.compile(rf"(([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)/)?{_NAME}")
_VALUE_RE = re.compile(rf"({_NAME})?")
_PROM_LABEL_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

_WS = " \t\r\n"  # Go's lexer: only these separate tokens (a vertical tab is part of an identifier)
_TOKEN = re.compile(r"[ \t\r\n]*(!=|==|=|!|,|\(|\)|>|<|[^ \t\r\n!=,()<>]+)")


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    pos = 0
    text = text.strip(_WS)
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:  # pragma: no cover - the pattern matches any non-space char
            raise BadRequest(f"unable to parse requirement: invalid character at {pos}")
        out.append(m.group(1))
        pos = m.end()
        while pos < len(text) and text[pos] in _WS:
            pos += 1
    return out


def _check_key(key: str) -> None:
    if key in ("in", "notin"):  # keywords to Go's lexer, never identifiers
        raise BadRequest(f"found '{key}', expected: !, identifier, or 'end of string'")
    if not _KEY_RE.fullmatch(key) or len(key.rpartition("/")[0]) > 253:
        raise BadRequest(
            f"unable to parse requirement: values[0][{key}]: Invalid value: {key!r}: name part must consist of "
            "alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        )


def _check_value(key: str, value: str) -> None:
    if len(value) > 63 or not _VALUE_RE.fullmatch(value):
        raise BadRequest(
            f"unable to parse requirement: values[0][{key}]: Invalid value: {value!r}: a valid label must be an "
            "empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
            "an alphanumeric character"
        )


def parse_selector(text: str | None) -> Selector:
    """Parse a selector string; raise ``BadRequest`` (400) with the parser's reason when malformed."""
    if text is None or not text.strip(_WS):
        return Selector()
    toks = _tokens(text)
    reqs: list[Requirement] = []
    i = 0

    def take() -> str:
        nonlocal i
        if i >= len(toks):
            raise BadRequest(f"unable to parse requirement: found '', expected: identifier in {text!r}")
        t = toks[i]
        i += 1
        return t

    while i < len(toks):
        t = take()
        if t == "!":
            key = take()
            _check_key(key)
            reqs.append(Requirement(key, "!"))
        else:
            key = t
            if key in ("=", "==", "!=", ",", "(", ")", ">", "<"):
                raise BadRequest(f"found '{key}', expected: !, identifier, or 'end of string'")
            _check_key(key)
            if i >= len(toks) or toks[i] == ",":
                reqs.append(Requirement(key, "exists"))
            else:
                op = take()
                if op in ("=", "==", "!="):
                    value = "" if i >= len(toks) or toks[i] == "," else take()
                    _check_value(key, value)
                    reqs.append(Requirement(key, "=" if op != "!=" else "!=", (value,)))
                elif op in ("in", "notin"):
                    if take() != "(":
                        raise BadRequest(f"found '{toks[i - 1]}', expected: '(' in {text!r}")
                    values: list[str] = []
                    while True:
                        v = take()
                        if v == ")":
                            break
                        if v == ",":
                            continue
                        _check_value(key, v)
                        values.append(v)
                    if not values:
                        values.append("")
                    reqs.append(Requirement(key, op, tuple(sorted(set(values)))))
                elif op in (">", "<"):
                    v = take()
                    if go_int64(v) is None:
                        raise BadRequest(f"unable to parse requirement: for 'Gt', 'Lt' operators, the value "
                                         f"must be an integer: {v!r}")
                    reqs.append(Requirement(key, "gt" if op == ">" else "lt", (v,)))
                else:
                    raise BadRequest(f"found '{op}', expected: in, notin, =, ==, !=, gt, lt in {text!r}")
        if i < len(toks):
            if toks[i] != ",":
                raise BadRequest(f"found '{toks[i]}', expected: ',' or 'end of string' in {text!r}")
            i += 1
            if i >= len(toks):
                raise BadRequest(f"found '', expected: identifier after ',' in {text!r}")
    reqs.sort(key=lambda r: r.key)  # labels.Parse sorts requirements by key
    return Selector(tuple(reqs), text)


def quote(value: str) -> str:
    """A PromQL double-quoted string literal (backslash, quote and control characters escaped)."""
    out = ['"']
    for ch in value:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


_RE2_META = set("\\.+*?()|[]{}^$")


def regex_escape(value: str) -> str:
    """Escape RE2 metacharacters so the value matches literally."""
    return "".join("\\" + c if c in _RE2_META else c for c in value)


def label_name(name: str, where: str) -> str:
    """Validate a Prometheus label name used verbatim in a query."""
    if not _PROM_LABEL_RE.fullmatch(name):
        raise BadRequest(f"{where}: {name!r} is not a valid Prometheus label name")
    return name


def match_values(label: str, values: list[str] | tuple[str, ...], negate: bool = False) -> str:
    """``label="v"`` for one value, ``label=~"^(?:a|b)$"``-style exact alternation for several."""
    if len(values) == 1:
        return f"{label}{'!=' if negate else '='}{quote(values[0])}"
    alternation = "|".join(regex_escape(v) for v in values)
    return f"{label}{'!~' if negate else '=~'}{quote(alternation)}"


def to_matchers(selector: Selector, where: str = "selector") -> list[str]:
    """Translate a selector into PromQL matchers (prometheus-adapter's mapping, values escaped).

    ``=`` -> ``=``; ``!=`` -> ``!=``; ``in`` -> ``=~`` (exact alternation); ``notin`` -> ``!~``;
    ``exists`` -> ``!=""``; ``!`` -> ``=""``; ``gt``/``lt`` are rejected (Prometheus has no such
    label matcher).
    """
    out: list[str] = []
    for r in selector.requirements:
        name = label_name(r.key, where)
        if r.operator in ("=", "in"):
            out.append(match_values(name, r.values))
        elif r.operator in ("!=", "notin"):
            out.append(match_values(name, r.values, negate=True))
        elif r.operator == "exists":
            out.append(f'{name}!=""')
        elif r.operator == "!":
            out.append(f'{name}=""')
        else:
            raise BadRequest(f"{where}: operator {r.operator!r} on {r.key!r} is not supported by Prometheus")
    return out


def selector_values(selector: Selector) -> dict[str, str]:
    """prometheus-adapter's ``LabelValuesByName`` entries of a selector: each key's values joined with ``|``."""
    return {r.key: "|".join(r.values) for r in selector.requirements}


def to_label_selector_json(selector: Selector) -> dict[str, object] | None:
    """``metav1.ParseToLabelSelector`` shape: matchLabels for ``=``, matchExpressions for the rest."""
    if selector.empty:
        return None
    match_labels: dict[str, str] = {}
    exprs: list[dict[str, object]] = []
    op_names = {"in": "In", "notin": "NotIn", "!=": "NotIn", "exists": "Exists", "!": "DoesNotExist"}
    for r in selector.requirements:
        if r.operator == "=":
            match_labels[r.key] = r.values[0]
        elif r.operator in op_names:
            e: dict[str, object] = {"key": r.key, "operator": op_names[r.operator]}
            if r.operator not in ("exists", "!"):
                e["values"] = list(r.values)
            exprs.append(e)
        else:
            e = {"key": r.key, "operator": "Gt" if r.operator == "gt" else "Lt", "values": list(r.values)}
            exprs.append(e)
    out: dict[str, object] = {}
    if match_labels:
        out["matchLabels"] = match_labels
    if exprs:
        out["matchExpressions"] = exprs
    return out
