"""Shared by the authn/authz tests: the real ``kubernetes`` clients against each module's fake API (``fk``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from adapter.backends.kubernetes import KubeClients, connect
from tests.fakekube import FakeKube


@pytest.fixture
def kube(fk: FakeKube) -> Iterator[KubeClients]:
    clients = connect(fk.kubeconfig)
    assert clients is not None
    yield clients
    clients.close()
