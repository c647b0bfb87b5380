#!/usr/bin/env bash
# Give a Debian test machine a real Docker engine, and leave a working one alone.
#
#   1. if some daemon already answers at DOCKER_HOST (or the default socket): do nothing;
#   2. install Debian's docker.io when dockerd is missing (needs root and apt);
#   3. start dockerd with the flags of README "Tests" for machines with no
#      bridge/iptables support, and wait until it answers.
#
# Safe to re-run. Prints the pid of a daemon it started to $DDCTL_DOCKERD_PIDFILE
# (default /run/ddctl-dockerd.pid) so that only that process is ever stopped.
set -euo pipefail

log() { echo "[start-dockerd] $*" >&2; }

answers() {
  # `docker version` needs the CLI; fall back to curl on the socket when it is absent.
  if command -v docker >/dev/null 2>&1; then
    docker version --format '{{.Server.Version}}' >/dev/null 2>&1
  else
    curl -fsS --unix-socket /var/run/docker.sock http://localhost/_ping >/dev/null 2>&1
  fi
}

if answers; then
  log "a Docker daemon already answers; leaving it alone"
  exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    log "no dockerd here and cannot install one (needs root on Debian)"; exit 1
  fi
  log "installing Debian's docker.io"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq docker.io >/dev/null
fi

if [ -n "${DOCKER_HOST:-}" ] && [ "${DOCKER_HOST}" != "unix:///var/run/docker.sock" ]; then
  log "DOCKER_HOST=$DOCKER_HOST does not answer; not starting a daemon for someone else's endpoint"
  exit 1
fi

pidfile="${DDCTL_DOCKERD_PIDFILE:-/run/ddctl-dockerd.pid}"
logfile="${DDCTL_DOCKERD_LOG:-/var/log/ddctl-dockerd.log}"
log "starting dockerd (log: $logfile)"
# --bridge=none etc.: this kind of machine has no bridge/iptables support (README "Tests");
# builds use the host network and dream runs use no network at all.
nohup dockerd --bridge=none --iptables=false --ip-masq=false >"$logfile" 2>&1 &
echo $! >"$pidfile"

for _ in $(seq 1 60); do
  if answers; then log "dockerd answers (pid $(cat "$pidfile"))"; exit 0; fi
  if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    log "dockerd exited; last lines of $logfile:"; tail -n 20 "$logfile" >&2; exit 1
  fi
  sleep 1
done
log "dockerd did not answer within 60 s; last lines of $logfile:"; tail -n 20 "$logfile" >&2
exit 1
