#!/usr/bin/env bash
# The code checks that run before the suite (README "Developing"); each failure names file:line.
#
#   ruff check      lint: pyflakes, pycodestyle, isort, bugbear, pyupgrade (rules in pyproject.toml)
#   ruff format     the formatter, in --check mode: nothing is rewritten here
#   mypy            ddctl/ for the host floor (3.9), engine/ for the image's Python 3.9
#   ShellCheck      provision/*.sh, tests/*.sh, bench/*.sh, .ci/run
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PYTHON:-python3}"
PY_FILES=(ddctl engine tests bench provision setup.py)
SH_FILES=(provision/*.sh tests/*.sh bench/*.sh .ci/run)
failed=()

step() {
  local name=$1; shift
  echo "[tests/lint.sh] $name" >&2
  if ! "$@"; then failed+=("$name"); fi
}

step "ruff check" "$PY" -m ruff check --output-format concise "${PY_FILES[@]}"
step "ruff format --check" "$PY" -m ruff format --check "${PY_FILES[@]}"
step "mypy ddctl" "$PY" -m mypy
step "mypy engine (Python 3.9)" "$PY" -m mypy --python-version 3.9 engine
if command -v shellcheck >/dev/null 2>&1; then
  step "shellcheck" shellcheck "${SH_FILES[@]}"
elif [ "${CI:-}" = true ]; then
  echo "[tests/lint.sh] shellcheck is missing (tests/run.sh installs it as root on Debian)" >&2
  failed+=("shellcheck")
else
  echo "[tests/lint.sh] shellcheck not installed: skipped (apt-get install shellcheck)" >&2
fi

if [ "${#failed[@]}" -gt 0 ]; then
  echo "[tests/lint.sh] failed: ${failed[*]}" >&2
  exit 1
fi
echo "[tests/lint.sh] all checks passed" >&2
