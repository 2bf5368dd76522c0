"""I/O: Prometheus and Kubernetes clients. Library errors become ``adapter.errors`` here."""
