#!/usr/bin/env bash
# The engine against its PyTorch peer and the notebook transcription, whole runs alternated
# in one run (bench/peer_vs_engine.py).   bash bench/peer.sh [IMAGE] [-- args for the script]
# First use makes bench/.venv with torch and torchvision (the bench's own, never ddctl's).
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE=ddctl/deepdream:latest
if [ $# -gt 0 ] && [ "$1" != "--" ]; then IMAGE=$1; shift; fi
if [ $# -gt 0 ] && [ "$1" = "--" ]; then shift; fi
if [ ! -x bench/.venv/bin/python ]; then
  python3 -m venv bench/.venv
  bench/.venv/bin/pip install --quiet torch==2.14.1 torchvision==0.29.1
fi
exec bench/.venv/bin/python bench/peer_vs_engine.py --image "$IMAGE" "$@"
