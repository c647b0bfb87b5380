#!/usr/bin/env bash
# Make sure the dream image's base, debian:bullseye-slim, is present on the daemon.
# Present: leave it alone. Absent: try a pull; when no registry answers (test machines),
# build the same thing offline: debootstrap --variant=minbase bullseye + `docker import`.
# Safe to re-run.
set -euo pipefail
IMAGE="${1:-debian:bullseye-slim}"
SUITE="${DDCTL_BASE_SUITE:-bullseye}"
log() { echo "[bootstrap-base-image] $*" >&2; }

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  log "$IMAGE is present; leaving it alone"; exit 0
fi
if timeout 60 docker pull -q "$IMAGE" >/dev/null 2>&1; then
  log "pulled $IMAGE"; exit 0
fi
log "$IMAGE is absent and cannot be pulled: building it with debootstrap"
if ! command -v debootstrap >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    log "debootstrap is missing and cannot be installed (needs root on Debian)"; exit 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi
dir="$(mktemp -d /tmp/ddctl-rootfs.XXXXXX)"
trap 'rm -rf "$dir"' EXIT
debootstrap --variant=minbase "$SUITE" "$dir" >/tmp/ddctl-debootstrap.log 2>&1 || {
  log "debootstrap failed; last lines:"; tail -n 20 /tmp/ddctl-debootstrap.log >&2; exit 1; }
# Keep the image small like the official slim one: no apt lists or caches.
rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin
tar -C "$dir" -c . | docker import \
  --change 'CMD ["bash"]' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  - "$IMAGE" >/dev/null
log "imported $IMAGE"
