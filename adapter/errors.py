"""The adapter's error tree. Every error a caller can see is one of these.

    AdapterError                     base; ``code`` and ``reason`` give the metav1.Status
    ├── ConfigError                  bad flags or rules file (start-up only; never on the API)
    ├── BadRequest          400      malformed path or selector
    ├── Unauthorized        401      credentials presented but not valid
    ├── Forbidden           403      authorization denied
    ├── NotFound            404      unknown metric, resource or object
    ├── MethodNotAllowed    405      anything but GET
    ├── NotImplemented      501      a valid request this mode cannot answer yet
    ├── Unavailable         503      a backend (Prometheus, Kubernetes) is unreachable or too slow
    └── InternalError       500      anything else; the message never carries backend internals

Backends wrap library exceptions into these with ``raise ... from e``; the api layer maps
them to ``metav1.Status`` JSON in exactly one place (``adapter.api.status``).
"""

from __future__ import annotations

from collections.abc import Mapping


class AdapterError(Exception):
    code: int = 500
    reason: str = "InternalError"

    def __init__(self, message: str, *, details: Mapping[str, object] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = dict(details) if details is not None else None  # {} is emitted, as Go's non-nil details


class ConfigError(AdapterError):
    """A start-up configuration error. The message names file, rule and field."""


class BadRequest(AdapterError):
    code = 400
    reason = "BadRequest"


class Unauthorized(AdapterError):
    code = 401
    reason = "Unauthorized"


class Forbidden(AdapterError):
    code = 403
    reason = "Forbidden"


class NotFound(AdapterError):
    code = 404
    reason = "NotFound"


class MethodNotAllowed(AdapterError):
    code = 405
    reason = "MethodNotAllowed"


class NotImplementedYet(AdapterError):
    code = 501
    reason = "NotImplemented"


class Unavailable(AdapterError):
    code = 503
    reason = "ServiceUnavailable"


class InternalError(AdapterError):
    code = 500
    reason = "InternalError"


class MetricNotFound(NotFound):
    """``the server could not find the metric X for R [name] [with selector S]`` (CMA wording)."""

    def __init__(self, metric: str, resource: str, name: str = "", selector: str = "") -> None:
        msg = f"the server could not find the metric {metric} for {resource}"
        if name:
            msg += f" {name}"
        if selector:
            msg += f" with selector {selector}"
        super().__init__(msg)
