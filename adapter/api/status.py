"""The one place where our errors become ``metav1.Status`` JSON (protocol.md §3)."""

from __future__ import annotations

import json

from starlette.responses import Response

from adapter.errors import AdapterError


def status_dict(err: AdapterError) -> dict[str, object]:
    """Key order as apimachinery emits it: kind, apiVersion, metadata, status, message, reason, details, code."""
    body: dict[str, object] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": err.message,
    }
    if err.reason:
        body["reason"] = err.reason
    if err.details is not None:
        body["details"] = err.details
    body["code"] = err.code
    return body


def status_body(err: AdapterError) -> bytes:
    return json.dumps(status_dict(err), separators=(",", ":")).encode()


def status_response(err: AdapterError) -> Response:
    headers = {"X-Content-Type-Options": "nosniff"} if err.code in (401, 403) else None
    return Response(status_body(err), status_code=err.code, media_type="application/json", headers=headers)
