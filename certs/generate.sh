#!/usr/bin/env bash
# Create a CA and a serving certificate for the adapter's Service and print the caBundle and
# the kubectl commands that install them.
#   certs/generate.sh [--service accel-metrics-adapter] [--namespace accel-metrics] [--out-dir certs/out] [--days 365]
# Uses `accel-adapter certs` when installed, else the module from this checkout.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if command -v accel-adapter >/dev/null 2>&1 && accel-adapter certs --help >/dev/null 2>&1; then
  exec accel-adapter certs "$@"
fi
PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" exec "${PYTHON:-python3}" -m adapter.certs_cli "$@"
