"""``--metric-rules``: parsed strictly (flag or ``ADAPTER_METRIC_RULES``), and refused without a cluster."""

from __future__ import annotations

import asyncio

import pytest

from adapter.errors import ConfigError
from adapter.server import load_team_rules
from adapter.settings import Settings, parse
from tests.integration.conftest import RULES


def test_the_flag_and_its_environment_variable() -> None:
    assert parse(["--config", str(RULES)]).metric_rules is False
    assert parse(["--config", str(RULES), "--metric-rules", "true"]).metric_rules is True
    assert parse(["--config", str(RULES)], env={"ADAPTER_METRIC_RULES": "True"}).metric_rules is True
    with pytest.raises(ConfigError, match="--metric-rules: must be true or false, got 'yes'"):
        parse(["--config", str(RULES)], env={"ADAPTER_METRIC_RULES": "yes"})


def test_metric_rules_need_a_cluster() -> None:
    assert asyncio.run(load_team_rules(Settings(config=RULES), None)) is None
    with pytest.raises(ConfigError, match="--metric-rules: MetricRules are read from a cluster"):
        asyncio.run(load_team_rules(Settings(config=RULES, metric_rules=True), None))
