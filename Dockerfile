# syntax=docker/dockerfile:1
# accel-metrics-adapter image: build the wheel in one stage, install only the wheel in the next.

FROM python:3.11-slim-bookworm AS builder
WORKDIR /src
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY pyproject.toml README.md ./
COPY adapter ./adapter
# The wheel of the project plus wheels of all its dependencies, so the final stage needs no build tools.
RUN pip wheel --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
LABEL org.opencontainers.image.title="accel-metrics-adapter" \
      org.opencontainers.image.description="custom.metrics.k8s.io / external.metrics.k8s.io adapter for Prometheus" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels /wheels/accel_metrics_adapter-*.whl \
    && pip uninstall -y pip setuptools wheel
WORKDIR /tmp
USER 65532:65532
EXPOSE 6443
HEALTHCHECK NONE
ENTRYPOINT ["accel-adapter", "serve"]
