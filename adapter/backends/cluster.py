"""Whether a Kubernetes API is configured, decided without importing the ``kubernetes`` client.

The client costs about 30 MB of RSS at import (all its generated models); without a cluster the
adapter never loads it.
"""

from __future__ import annotations

import os
from pathlib import Path


def in_cluster() -> bool:
    """True in a pod: the kubelet sets ``KUBERNETES_SERVICE_HOST``."""
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST"))


def cluster_configured(lister_kubeconfig: Path | None) -> bool:
    """True when a Kubernetes API is available: a kubeconfig was given or we run in a pod."""
    return lister_kubeconfig is not None or in_cluster()
