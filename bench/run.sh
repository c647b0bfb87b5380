#!/usr/bin/env bash
# Run bench/engine_vs_notebook.py inside a built dream image (untrained weights are fine:
# same topology, same cost).   bash bench/run.sh [IMAGE] [-- args for the script]
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE="${1:-ddctl/deepdream:latest}"; shift || true
[ "${1:-}" = "--" ] && shift
exec docker run --rm --network none --label io.ddctl.bench=1 -v "$PWD:/src:ro" \
  --entrypoint python3 "$IMAGE" /src/bench/engine_vs_notebook.py "$@"
