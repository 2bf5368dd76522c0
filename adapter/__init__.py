"""accel-metrics-adapter: custom.metrics.k8s.io and external.metrics.k8s.io from Prometheus."""

__version__ = "0.1.0"
