#!/usr/bin/env bash
# Big pictures inside a built dream image: time per pixel and peak memory, 1 MP to 24 MP.
#   bash bench/big.sh [IMAGE] [-- ITERATIONS OCTAVES TILE MP...]   (see bench/big_in_image.py)
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE=ddctl/deepdream:latest
if [ $# -gt 0 ] && [ "$1" != "--" ]; then IMAGE=$1; shift; fi
if [ $# -gt 0 ] && [ "$1" = "--" ]; then shift; fi
exec docker run --rm --network none --label io.ddctl.bench=1 -v "$PWD:/src:ro" \
  --entrypoint python3 "$IMAGE" /src/bench/big_in_image.py "$@"
