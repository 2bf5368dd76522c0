"""Fixtures shared across test packages."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from adapter.backends.kubernetes import KubeClients, connect
from tests.fakekube import FakeKube


@pytest.fixture
def kube(fk: FakeKube) -> Iterator[KubeClients]:
    """The real ``kubernetes`` clients against the requesting module's fake API (its ``fk`` fixture)."""
    clients = connect(fk.kubeconfig)
    assert clients is not None
    try:
        yield clients
    finally:
        clients.close()
