#!/usr/bin/env bash
# The one test command (README, .ci/run): sets up everything, then runs the whole suite.
#
#   - installs ddctl with its test extras (editable, from this checkout), then runs
#     tests/lint.sh (ruff, the formatter check, mypy, shellcheck): a finding stops the run;
#   - as root on Debian: installs Debian's docker.io and starts dockerd with the flags of
#     README "Tests" when no daemon answers, and bootstraps debian:bullseye-slim offline when it
#     is absent; otherwise uses whatever daemon answers (or the integration tests skip,
#     saying why, except under CI=true where that is a failure);
#   - runs pytest over tests/ (unit and integration), passing extra arguments through.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "[tests/run.sh] $*" >&2; }

PY="${PYTHON:-python3}"
say "installing ddctl with its test extras"
pip_log=$(mktemp)
if ! "$PY" -m pip install -q --disable-pip-version-check -e '.[test]' >"$pip_log" 2>&1; then
  cat "$pip_log" >&2; rm -f "$pip_log"
  say "pip install -e '.[test]' failed (above)"; exit 1
fi
grep -v -e '^WARNING: Running pip as' -e 'is ignored' "$pip_log" >&2 || true   # grep: no line left is fine
rm -f "$pip_log"

if [ "$(id -u)" = 0 ] && [ -f /etc/debian_version ] && ! command -v shellcheck >/dev/null 2>&1; then
  say "installing Debian's shellcheck"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck >/dev/null 2>&1 \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck >/dev/null; }
fi
say "lint, format and type checks (tests/lint.sh)"
bash tests/lint.sh

if [ "$(id -u)" = 0 ] && [ -f /etc/debian_version ]; then
  bash provision/start-dockerd.sh
  bash provision/bootstrap-base-image.sh debian:bullseye-slim
else
  say "not root on Debian: using whatever Docker daemon answers"
fi

set +e
"$PY" -m pytest tests -rs -v --durations=15 "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then say "pytest collected no test"; exit 1; fi
exit "$rc"
