"""Rendered metricsQuery -> the query plan sent (value + data age), parsed once per distinct query."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from adapter.errors import InternalError
from adapter.naming.confine import confine
from adapter.naming.promql import PromQLError
from adapter.naming.query import MetricNamer, Rendered
from adapter.naming.shape import QueryPlan, plan_queries

log = logging.getLogger(__name__)

# parsed query plans kept, by rendered query
PLAN_MEMO = 4096


class Plans:
    def __init__(self) -> None:
        self._plans: dict[tuple[str, bool, tuple[tuple[str, str], ...]], QueryPlan] = {}

    def get(self, namer: MetricNamer, rendered: Rendered, *, external: bool = False,
            confined: Mapping[str, str] | None = None) -> QueryPlan:
        """The plan for ``rendered`` (custom: ages by its group-by labels; external: by the outermost
        aggregation's ``by`` labels). A query that does not parse is a bug: logged with the rule,
        answered 500, never sent to Prometheus. ``confined`` (tenancy): every selector of every query
        of the plan carries these ``label="value"`` matchers, whatever the template wrote
        (``adapter.naming.confine``); a query that cannot be proved confined is answered 500, never sent."""
        key = (rendered.query, external, tuple(sorted(confined.items())) if confined else ())
        plan = self._plans.get(key)
        if plan is None:
            try:
                plan = plan_queries(rendered.query, rendered.label_matchers, None if external else rendered.group_by)
                if confined:
                    plan = QueryPlan(confine(plan.value, confined), confine(plan.send, confined),
                                     confine(plan.age, confined) if plan.age is not None else None,
                                     plan.combined, plan.age_group)
            except PromQLError as e:
                log.error("a rendered query does not parse; not sent to Prometheus",
                          extra={"rule": namer.where, "promql": rendered.query, "error": str(e)})
                raise InternalError("Internal error occurred: the metric's query is invalid",
                                    details={"causes": [{"message": f"{namer.where}: invalid PromQL"}]}) from e
            if plan.age is None:
                log.warning("no selector of the rule's query carries the request's label matchers: the age "
                            "of its values cannot be known, so none is served",
                            extra={"rule": namer.where, "promql": rendered.query})
            if len(self._plans) >= PLAN_MEMO:
                self._plans.pop(next(iter(self._plans)))
            self._plans[key] = plan
        return plan
