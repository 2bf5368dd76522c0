"""Shared by the authn/authz tests: the PKI (front-proxy CA, client CA, foreign CA and their leaves)."""

from __future__ import annotations

import pytest

from tests.fakekube.tlsserver import Pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))
