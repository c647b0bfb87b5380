"""The swarm's own registry: how the dream image reaches every node.

Docker lets a daemon pull over plain HTTP only from 127.0.0.0/8, and a kernel without
IPVS has no routing mesh, so every node needs something on its own 127.0.0.1:5000:

- `ddctl-registry`: Debian's docker-registry (bullseye's 2.7.1 package, in an image
  ddctl builds, `ddctl/swarm-registry`), one task on the manager ddctl talks to, its
  storage in the volume `ddctl-registry-data`, published in host mode on port 5000;
- `ddctl-registry-relay`: on every other node (global service), socat from that node's
  127.0.0.1:5000 to the registry over the overlay network `ddctl-registry` (dnsrr).

ddctl pushes the dream image to 127.0.0.1:5000 through the manager's Engine API and runs
the batch from `127.0.0.1:5000/ddctl/deepdream@sha256:…`, the same bytes on every node.
The registry image itself must be on each node once (it cannot come from the registry it
starts): ddctl builds it on the manager; `ddctl swarm setup` says which nodes lack it.
"""

from __future__ import annotations

import io
import tarfile
import time
from typing import Callable

from docker.errors import ImageNotFound, NotFound
from docker.types import EndpointSpec, Mount, Resources, RestartPolicy, ServiceMode, TaskTemplate

from ddctl import __version__
from ddctl.errors import DdctlError

REGISTRY_IMAGE = f"ddctl/swarm-registry:{__version__}"
REGISTRY_SERVICE = "ddctl-registry"
RELAY_SERVICE = "ddctl-registry-relay"
REGISTRY_NETWORK = "ddctl-registry"
REGISTRY_VOLUME = "ddctl-registry-data"
REGISTRY_PORT = 5000
REGISTRY_LABEL = "io.ddctl.swarm.registry"
LOCAL = f"127.0.0.1:{REGISTRY_PORT}"

DOCKERFILE = f"""\
FROM debian:bullseye-slim
RUN apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends docker-registry socat \\
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \\
 && printf 'version: 0.1\\nlog:\\n  level: warn\\nstorage:\\n  filesystem:\\n    rootdirectory: /var/lib/docker-registry\\nhttp:\\n  addr: :{REGISTRY_PORT}\\n' > /etc/docker/registry/ddctl.yml
LABEL io.ddctl.image=swarm-registry io.ddctl.version={__version__}
USER docker-registry
ENTRYPOINT ["docker-registry", "serve", "/etc/docker/registry/ddctl.yml"]
"""

Say = Callable[[str], None]


def _context() -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = DOCKERFILE.encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def ensure_registry_image(client, say: Say, labels: dict | None = None) -> str:
    """The registry image's ID on the daemon `client` talks to, built there if absent."""
    try:
        return client.images.get(REGISTRY_IMAGE).id
    except ImageNotFound:
        pass
    say(f"building {REGISTRY_IMAGE} (Debian's docker-registry) on the manager")
    error = None
    for chunk in client.api.build(
        fileobj=_context(),
        custom_context=True,
        tag=REGISTRY_IMAGE,
        network_mode="host",
        rm=True,
        forcerm=True,
        decode=True,
        labels=labels or {},
    ):
        error = chunk.get("error") or error
    if error:
        raise DdctlError(
            f"The registry image {REGISTRY_IMAGE} did not build on the manager: {' '.join(error.split())}"
        )
    return client.images.get(REGISTRY_IMAGE).id


def _service(client, name):
    try:
        return client.services.get(name)
    except NotFound:
        return None


def registry_present(client) -> bool:
    return _service(client, REGISTRY_SERVICE) is not None


def ensure_registry(client, node_id: str, say: Say, labels: dict | None = None) -> None:
    """The registry service on node `node_id` and its relays on every other node, running."""
    labels = {**(labels or {}), REGISTRY_LABEL: "1"}
    ensure_registry_image(client, say, labels)
    if not client.networks.list(names=[REGISTRY_NETWORK]):
        client.networks.create(REGISTRY_NETWORK, driver="overlay", attachable=False, labels=labels)
    common = dict(
        labels=labels,
        networks=[REGISTRY_NETWORK],
        endpoint_spec=EndpointSpec(
            mode="dnsrr",
            ports=[
                {
                    "Protocol": "tcp",
                    "PublishedPort": REGISTRY_PORT,
                    "TargetPort": REGISTRY_PORT,
                    "PublishMode": "host",
                }
            ],
        ),
    )
    if _service(client, REGISTRY_SERVICE) is None:
        say(f"starting the registry service {REGISTRY_SERVICE} on this manager")
        spec = TaskTemplate(
            container_spec=_container_spec(
                REGISTRY_IMAGE, None, [Mount("/var/lib/docker-registry", REGISTRY_VOLUME, type="volume")]
            ),
            restart_policy=RestartPolicy(condition="any", delay=1_000_000_000),
            resources=Resources(mem_limit=512 * 1024 * 1024),
            placement={"Constraints": [f"node.id=={node_id}"]},
        )
        client.api.create_service(spec, name=REGISTRY_SERVICE, **common)
    if _service(client, RELAY_SERVICE) is None:
        spec = TaskTemplate(
            container_spec=_container_spec(
                REGISTRY_IMAGE,
                [
                    "socat",
                    f"TCP-LISTEN:{REGISTRY_PORT},fork,reuseaddr",
                    f"TCP:{REGISTRY_SERVICE}:{REGISTRY_PORT}",
                ],
                [],
            ),
            restart_policy=RestartPolicy(condition="any", delay=1_000_000_000),
            resources=Resources(mem_limit=128 * 1024 * 1024),
            placement={"Constraints": [f"node.id!={node_id}"]},
        )
        client.api.create_service(spec, name=RELAY_SERVICE, mode=ServiceMode("global"), **common)


def _container_spec(image, command, mounts):
    from docker.types import ContainerSpec

    return ContainerSpec(image, command=command, mounts=mounts, read_only=True, cap_drop=["ALL"])


def wait_registry(client, timeout: float = 90) -> None:
    """Until the registry answers on the manager's 127.0.0.1:5000 (seen from its daemon)."""
    end = time.monotonic() + timeout
    last = ""
    while time.monotonic() < end:
        tasks = client.api.tasks(filters={"service": REGISTRY_SERVICE, "desired-state": "running"})
        states = [t["Status"]["State"] for t in tasks]
        if "running" in states:
            return
        last = "; ".join(t["Status"].get("Err") or t["Status"]["State"] for t in tasks) or "no task yet"
        time.sleep(0.5)
    raise DdctlError(f"The registry service {REGISTRY_SERVICE} did not start: {last}")


def push(client, image, say: Say, timeout: float = 600) -> str:
    """Push `image` (an Image of the manager) to the swarm registry; its pinned reference."""
    repo = f"{LOCAL}/ddctl/deepdream"
    tag = image.id.split(":")[-1][:12]
    image.tag(repo, tag)
    digest, error = None, None
    end = time.monotonic() + timeout
    while True:
        for chunk in client.api.push(repo, tag=tag, stream=True, decode=True):
            error = chunk.get("error") or error
            aux = chunk.get("aux") or {}
            digest = aux.get("Digest") or digest
        if not error or time.monotonic() > end:
            break
        # The host-mode port answers a moment after the task is "running".
        if "connection refused" not in error and "EOF" not in error:
            break
        error = None
        time.sleep(1)
    if error or not digest:
        raise DdctlError(
            f"Pushing the dream image to the swarm registry failed: {' '.join((error or 'no digest').split())}"
        )
    return f"{repo}@{digest}"


def wait_relays(client, others: dict, timeout: float = 60) -> list[str]:
    """Wait until every other ready node (`others`: {node id: hostname}) runs its relay;
    return the hostnames of those that cannot (they lack the registry image)."""
    end = time.monotonic() + timeout
    missing: set[str] = set()
    while time.monotonic() < end:
        running, missing = set(), set()
        for t in client.api.tasks(filters={"service": RELAY_SERVICE}):
            nid = t.get("NodeID")
            if nid not in others:
                continue
            if t["Status"]["State"] == "running" and t.get("DesiredState") == "running":
                running.add(nid)
            elif "No such image" in (t["Status"].get("Err") or ""):
                missing.add(nid)
        missing -= running
        if len(running | missing) >= len(others):
            break
        time.sleep(0.5)
    return sorted(others[n] for n in missing)
