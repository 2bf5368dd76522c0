"""apiextensions.k8s.io/v1 structural-schema rules, and a small validator of objects against such a schema.

``structural_problems`` checks what kube-apiserver's ``ValidateCustomResourceDefinition`` requires of a
structural schema (``apiextensions/validation``: every node has a ``type`` unless it preserves unknown
fields or is int-or-string; no ``$ref``, ``definitions``, ``$schema``, ``id``, ``dependencies``,
``patternProperties``; ``additionalProperties`` and ``properties`` never together; ``items`` a single
schema; no ``default: null`` and no ``nullable`` without a type; ``metadata`` may only restrict
``name``/``generateName``). ``conforms`` validates an object (types, required, enums, items, maps,
nullable; an unknown field is reported, as ``kubectl --validate=strict`` would)."""

from __future__ import annotations

from typing import Any

FORBIDDEN = ("$ref", "definitions", "$schema", "id", "dependencies", "patternProperties", "$defs", "anyOf",
             "oneOf", "allOf", "not", "title")
TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "integer": int, "number": (int, float)}


def structural_problems(node: Any, at: str = "") -> list[str]:
    out: list[str] = []
    if not isinstance(node, dict):
        return [f"{at}: not a schema"]
    out += [f"{at}: {k} is not allowed in a structural schema" for k in FORBIDDEN if k in node]
    if "type" not in node and not node.get("x-kubernetes-preserve-unknown-fields") \
            and not node.get("x-kubernetes-int-or-string"):
        out.append(f"{at}: type must be set")
    if node.get("type") not in (*TYPES, None):
        out.append(f"{at}: unknown type {node.get('type')!r}")
    if "properties" in node and "additionalProperties" in node:
        out.append(f"{at}: additionalProperties and properties are mutually exclusive")
    if "default" in node and node["default"] is None:
        out.append(f"{at}: default null")
    for name, sub in (node.get("properties") or {}).items():
        out += structural_problems(sub, f"{at}.{name}")
    if "items" in node:
        out += structural_problems(node["items"], f"{at}[]")
    if isinstance(node.get("additionalProperties"), dict):
        out += structural_problems(node["additionalProperties"], f"{at}{{}}")
    return out


def conforms(value: Any, schema: dict[str, Any], at: str = "") -> list[str]:
    if value is None:
        return [] if schema.get("nullable") else [f"{at}: null is not allowed"]
    want = TYPES.get(schema.get("type", ""), object)
    if not isinstance(value, want) or (schema.get("type") in ("integer", "number") and isinstance(value, bool)):
        return [f"{at}: expected {schema.get('type')}, got {type(value).__name__}"]
    out: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        out.append(f"{at}: {value!r} not in {schema['enum']}")
    if isinstance(value, dict):
        props = schema.get("properties")
        out += [f"{at}.{k}: required" for k in schema.get("required", []) if k not in value]
        for k, v in value.items():
            if props is not None and k in props:
                out += conforms(v, props[k], f"{at}.{k}")
            elif isinstance(schema.get("additionalProperties"), dict):
                out += conforms(v, schema["additionalProperties"], f"{at}.{k}")
            elif props is not None:
                out.append(f"{at}.{k}: unknown field")
    if isinstance(value, list) and "items" in schema:
        for i, v in enumerate(value):
            out += conforms(v, schema["items"], f"{at}[{i}]")
    return out
