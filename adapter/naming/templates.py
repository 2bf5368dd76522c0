"""The ``<< >>`` Go-template subset used by prometheus-adapter rules, compiled once at load time.

Supported actions (everything the upstream docs and common configs use):
``<<.Field>>``, ``<<.Map.key>>``, ``<<index .Map "key">>``, ``<<join .Slice "sep">>``, and the trim
markers ``<<-`` / ``->>``. ``.GroupBySlice`` prints like Go's ``%v`` of a slice (``[a b]``).
Anything else (range, if, pipelines) is rejected at load with the construct named, so a config
never fails at request time.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

TemplateValue = str | Sequence[str] | Mapping[str, str]
Args = Mapping[str, TemplateValue]

_ACTION = re.compile(r"<<(-\s)?\s*(.*?)\s*(\s-)?>>", re.S)
_FIELD = re.compile(r"^\.([A-Za-z_][A-Za-z0-9_]*)(?:\.([A-Za-z_][A-Za-z0-9_]*))?$")
_INDEX = re.compile(r'^index\s+\.([A-Za-z_][A-Za-z0-9_]*)\s+"((?:[^"\\]|\\.)*)"$')
_JOIN = re.compile(r'^join\s+\.([A-Za-z_][A-Za-z0-9_]*)\s+"((?:[^"\\]|\\.)*)"$')


class TemplateError(ValueError):
    """A template that cannot be compiled; the message names the construct."""


def _fmt(value: TemplateValue) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{k}:{v}" for k, v in sorted(value.items())) + "]"
    return "[" + " ".join(value) + "]"


@dataclass(frozen=True)
class Template:
    source: str
    parts: tuple[str | Callable[[Args], str], ...]
    fields: frozenset[str]

    def render(self, args: Args) -> str:
        return "".join(p if isinstance(p, str) else p(args) for p in self.parts)


def _field_getter(name: str, key: str | None) -> Callable[[Args], str]:
    def get(args: Args) -> str:
        if name not in args:
            raise TemplateError(f"can't evaluate field {name}")
        value = args[name]
        if key is None:
            return _fmt(value)
        if not isinstance(value, Mapping):
            raise TemplateError(f"can't evaluate field {key} in .{name}")
        return value.get(key, "")
    return get


def _join_getter(name: str, sep: str) -> Callable[[Args], str]:
    def get(args: Args) -> str:
        value = args.get(name, ())
        if isinstance(value, str | Mapping):
            raise TemplateError(f"join: .{name} is not a list")
        return sep.join(value)
    return get


def compile_template(source: str, allowed_fields: frozenset[str]) -> Template:
    parts: list[str | Callable[[Args], str]] = []
    used: set[str] = set()
    pos = 0
    for m in _ACTION.finditer(source):
        literal = source[pos:m.start()]
        if m.group(1):
            literal = literal.rstrip()
        parts.append(literal)
        pos = m.end()
        if m.group(3):
            while pos < len(source) and source[pos].isspace():
                pos += 1
        action = m.group(2)
        fm, im, jm = _FIELD.match(action), _INDEX.match(action), _JOIN.match(action)
        if fm:
            name, key = fm.group(1), fm.group(2)
            parts.append(_field_getter(name, key))
        elif im:
            name, key = im.group(1), bytes(im.group(2), "utf-8").decode("unicode_escape")
            parts.append(_field_getter(name, key))
        elif jm:
            name = jm.group(1)
            parts.append(_join_getter(name, bytes(jm.group(2), "utf-8").decode("unicode_escape")))
        else:
            raise TemplateError(f"unsupported template action <<{action}>> (supported: <<.Field>>, "
                                "<<.Map.key>>, <<index .Map \"key\">>, <<join .Slice \"sep\">>)")
        if name not in allowed_fields:
            raise TemplateError(f"unknown template field .{name} (known: "
                                + ", ".join("." + f for f in sorted(allowed_fields)) + ")")
        used.add(name)
    tail = source[pos:]
    if "<<" in tail:
        raise TemplateError("unclosed template action '<<'")
    parts.append(tail)
    return Template(source, tuple(p for p in parts if p != ""), frozenset(used))
