"""PromQL as Prometheus's grammar sees it, through the ``promql-parser`` package (no string heuristics).

``parse`` is the one entry point: every query this adapter builds or reads from a rules file goes
through it, and a query that does not parse raises ``PromQLError`` with the parser's reason.
"""

from __future__ import annotations

import promql_parser

Expr = promql_parser.Expr


class PromQLError(ValueError):
    """A query that Prometheus's grammar rejects; the message is the parser's reason."""


def parse(query: str) -> Expr:
    try:
        return promql_parser.parse(query)
    except (ValueError, TypeError) as e:
        raise PromQLError(str(e) or "invalid PromQL") from e
    except BaseException as e:  # the Rust extension can panic on odd input: still just "does not parse"
        if isinstance(e, (KeyboardInterrupt, SystemExit, MemoryError)):
            raise
        raise PromQLError(f"invalid PromQL ({type(e).__name__})") from e


def is_valid(query: str) -> bool:
    try:
        parse(query)
    except PromQLError:
        return False
    return True
