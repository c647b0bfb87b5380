"""The boot2docker profile repair, done through the Docker SDK on the daemon's host.

A short-lived container (label io.ddctl.doctor=1, no network) from an image already on
the daemon bind-mounts the profile's folder and appends provision/boot2docker-wait4eth1.sh
between marker lines, once: the file is only ever appended to (docker-machine keeps its
CACERT/SERVERCERT/DOCKER_TLS/EXTRA_ARGS lines there), then fsync'ed. Nothing is pulled.
"""

import os
import posixpath

import docker

from ddctl.containers import lockdown, run_to_completion
from ddctl.context import find_context
from ddctl.errors import DdctlError, UsageError
from ddctl.image import DEFAULT_TAG

BEGIN = "# >>> ddctl wait4eth1 (ddctl doctor profile) >>>"
END = "# <<< ddctl wait4eth1 <<<"
SNIPPET_NAME = "boot2docker-wait4eth1.sh"
PREFERRED = (DEFAULT_TAG, "debian:bullseye-slim", "busybox:latest", "alpine:latest")
LABELS = {"io.ddctl.doctor": "1"}
RESTART = (
    "restart the VM (`boot2docker restart` / `docker-machine restart NAME`) and run "
    "`eval \"$(ddctl doctor env)\"`"
)

# Runs in the container with sh builtins only (plus `sync` when the image has it).
# Any line mentioning wait4eth1 (ours, or the 2015 guide's hand-written function) counts.
SCRIPT = r'''
f="/target/$PROFILE_NAME"; n=0; found=0
if [ -f "$f" ]; then
  while IFS= read -r line || [ -n "$line" ]; do
    n=$((n + 1))
    case "$line" in *wait4eth1*) found=1 ;; esac
  done < "$f"
  state=absent
else
  state=missing
fi
if [ "$found" = 1 ]; then echo "present $n"; exit 0; fi
if [ "$MODE" = check ]; then echo "$state $n"; exit 0; fi
{ printf '\n'; printf '%s\n' "$SNIPPET"; } >> "$f" || exit 3
sync "$f" 2>/dev/null || sync 2>/dev/null
echo "appended $n"
'''


def snippet_path():
    """provision/boot2docker-wait4eth1.sh of the build context ddctl ships (context.find_context)."""
    path = os.path.join(find_context(), "provision", SNIPPET_NAME)
    if not os.path.isfile(path):
        raise DdctlError(f"{path} is missing from ddctl's build context: reinstall ddctl.")
    return path


def snippet():
    with open(snippet_path()) as f:
        return f"{BEGIN}\n{f.read().rstrip()}\n{END}"


def candidate_images(client, preferred=None):
    """Images already on the daemon that can run the repair, best first (never pulls)."""
    tags = []
    images = sorted(client.images.list(), key=lambda i: i.attrs.get("Size", 0))
    present = {t for i in images for t in i.tags}
    if preferred:
        if preferred not in present:
            raise UsageError(f"The image {preferred} is not on the daemon (ddctl never pulls for this).")
        return [preferred]
    tags += [t for t in PREFERRED if t in present]
    tags += [i.tags[0] for i in images if i.tags and i.tags[0] not in tags]
    if not tags:
        raise DdctlError(
            "No image on the daemon to run the repair in (ddctl never pulls one): "
            "`ddctl build` first, or load any small image with /bin/sh."
        )
    return tags


def check_path(path):
    """UsageError unless path is absolute (it is a path on the daemon's host). No Docker."""
    if not posixpath.isabs(path):
        raise UsageError(f"{path} is not an absolute path on the daemon's host.")


def _run(client, path, mode, image=None):
    check_path(path)
    folder, name = posixpath.split(path)
    env = {"MODE": mode, "PROFILE_NAME": name, "SNIPPET": snippet() if mode == "apply" else ""}
    errors = []
    for tag in candidate_images(client, image)[:3]:
        try:
            code, out, err = run_to_completion(
                client,
                tag,
                timeout=60,
                entrypoint=["/bin/sh", "-c", SCRIPT],
                command=[],
                # uid 0: it reads and appends to root's file on the daemon's host, but with
                # no capability, no-new-privileges, a read-only root, pids and memory limits
                user="0:0",
                environment=env,
                labels=LABELS,
                **lockdown(client),
                mounts=[docker.types.Mount(target="/target", source=folder, type="bind")],
            )
            out = (out + err).strip()
            if (
                code == 0
                and out.split()[:1]
                and out.split()[0] in ("present", "absent", "missing", "appended")
            ):
                state, lines = out.split()[:2]
                return state, int(lines), tag
            errors.append(f"{tag}: exit {code}: {out[-200:]}")
        except docker.errors.APIError as exc:
            text = exc.explanation or str(exc)
            if "bind source path does not exist" in text:
                raise UsageError(f"The folder {folder} does not exist on the daemon's host.")
            errors.append(f"{tag}: {text}")
        except Exception as exc:
            errors.append(f"{tag}: {exc}")
    raise DdctlError(
        f"Could not {'edit' if mode == 'apply' else 'read'} {path} through a container: " + "; ".join(errors)
    )


def inspect(client, path, image=None):
    """'present' (a wait4eth1 is there), 'absent' or 'missing' (no such file)."""
    return _run(client, path, "check", image)[0]


def apply(client, path, image=None):
    """Append the snippet unless present: returns (state, existing line count, image used)."""
    return _run(client, path, "apply", image)
