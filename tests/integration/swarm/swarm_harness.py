"""A real 3-node Docker Swarm on one machine, made and removed by the tests themselves.

Facts it relies on are in the research note "swarm-on-one-machine" (measured here):

- one dockerd per node, each in its own network namespace (`nsenter --net`, never
  `ip netns exec`, which remounts /sys and breaks dockerd's cgroups), its own UTS
  namespace (`unshare --uts` + `hostname`, so that nodes have distinct names) and its own
  data root, exec root, pid file, key file and unix socket under one short folder;
- the namespaces are joined by veth pairs to a bridge in a "hub" namespace, addresses
  10.77.0.N; nothing leaves the machine;
- the swarm's address pool is 10.78.0.0/16 (the default one overlaps 10.77/16);
- this kernel has no IPVS: services need `dnsrr` endpoints and host-mode ports.

Teardown stops each dockerd by its own pid, then every process still living in one of
the harness's namespaces (containerd, shims, docker-proxy: found by their namespace, so
never anyone else's), unmounts what the nodes mounted under the folder, deletes the
namespaces and the folder. `leftovers()` says what would remain, so that a test can
assert nothing does.

Run as root (it creates namespaces); `available()` says why not otherwise.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field

import docker

FLAGS = ["--bridge=none", "--iptables=false", "--ip-masq=false"]
SUBNET = "10.77.0"
ADDR_POOL = "10.78.0.0/16"


def _sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), check=check, capture_output=True, text=True)


def available() -> str | None:
    """None when this machine can host the harness, else the reason."""
    if os.geteuid() != 0:
        return "the swarm harness needs root (network namespaces)"
    for tool in ("dockerd", "ip", "nsenter", "unshare"):
        if shutil.which(tool) is None:
            return f"the swarm harness needs `{tool}`"
    return None


def _netns_inode(name: str) -> int | None:
    try:
        return os.stat(f"/run/netns/{name}").st_ino
    except OSError:
        return None


def _pids_in_netns(inodes: set[int]) -> list[int]:
    """Pids of processes whose network namespace is one of `inodes`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            ino = os.stat(f"/proc/{entry}/ns/net").st_ino
        except OSError:
            continue
        if ino in inodes and int(entry) != os.getpid():
            found.append(int(entry))
    return found


def _mounts_under(path: str) -> list[str]:
    """Mount points at or below `path`, deepest first."""
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            if point == path or point.startswith(path.rstrip("/") + "/"):
                points.append(point)
    return sorted(points, key=len, reverse=True)


@dataclass
class Node:
    name: str  # also the hostname and the namespace's suffix
    index: int
    root: str
    netns: str
    proc: subprocess.Popen | None = None
    client: docker.DockerClient | None = None

    @property
    def addr(self) -> str:
        return f"{SUBNET}.{self.index}"

    @property
    def sock(self) -> str:
        return os.path.join(self.root, "sock")

    @property
    def host(self) -> str:
        return "unix://" + self.sock

    @property
    def log(self) -> str:
        return os.path.join(self.root, "log")

    def tail(self, n: int = 15) -> str:
        try:
            with open(self.log, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        os.makedirs(self.root, exist_ok=True)
        config = os.path.join(self.root, "daemon.json")
        with open(config, "w") as f:
            # Each node its own engine key (its identity); the CLI flag is gone in 20.10.
            json.dump({"deprecated-key-path": os.path.join(self.root, "key.json")}, f)
        dockerd = FLAGS + [
            "--data-root",
            os.path.join(self.root, "data"),
            "--exec-root",
            os.path.join(self.root, "x"),
            "--pidfile",
            os.path.join(self.root, "pid"),
            "--config-file",
            config,
            "-H",
            self.host,
        ]
        # nsenter and unshare exec (no fork): the Popen pid ends up being dockerd itself.
        script = 'hostname "$0" && exec dockerd "$@"'
        args = ["nsenter", f"--net=/run/netns/{self.netns}", "unshare", "--uts"]
        args += ["sh", "-c", script, self.name, *dockerd]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_answering(self, timeout: float = 60) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"dockerd of {self.name} exited:\n{self.tail()}")
            if os.path.exists(self.sock):
                client = docker.DockerClient(base_url=self.host, version="auto", timeout=60)
                try:
                    client.ping()
                    self.client = client
                    return
                except Exception:
                    client.close()
            time.sleep(0.2)
        raise RuntimeError(f"dockerd of {self.name} did not answer in {timeout:.0f} s:\n{self.tail()}")

    def stop(self, timeout: float = 25) -> None:
        """SIGTERM our dockerd (by its pid), SIGKILL after `timeout` seconds."""
        if self.client is not None:
            with contextlib.suppress(Exception):
                self.client.close()
            self.client = None
        if not self.running():
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def kill(self) -> None:
        """SIGKILL our dockerd: a node that dies without a word."""
        if self.running():
            self.proc.kill()
            self.proc.wait(10)


@dataclass
class Swarm:
    """Three (or `size`) dockerds in namespaces, joined in a swarm. Use as a context manager."""

    size: int = 3
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    base: str = ""
    nodes: list[Node] = field(default_factory=list)
    timings: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Short names: unix socket paths must stay under 108 bytes.
        self.base = self.base or tempfile.mkdtemp(prefix=f"ddsw-{self.tag}-")
        self.hub = f"ddsw-{self.tag}-hub"
        self.nodes = [
            Node(
                name=f"node{i}", index=i, root=os.path.join(self.base, f"n{i}"), netns=f"ddsw-{self.tag}-n{i}"
            )
            for i in range(1, self.size + 1)
        ]

    # --- set-up ---------------------------------------------------------------------

    def __enter__(self) -> Swarm:
        try:
            self.up()
        except BaseException:
            self.down()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.down()

    @property
    def manager(self) -> Node:
        return self.nodes[0]

    @property
    def workers(self) -> list[Node]:
        return self.nodes[1:]

    def up(self, timeout: float = 120) -> None:
        t0 = time.monotonic()
        self._network()
        for node in self.nodes:
            node.start()
        for node in self.nodes:
            node.wait_answering()
        self.timings["daemons"] = time.monotonic() - t0
        m = self.manager
        m.client.swarm.init(
            advertise_addr=m.addr,
            listen_addr=f"{m.addr}:2377",
            default_addr_pool=[ADDR_POOL],
            subnet_size=24,
        )
        token = m.client.swarm.attrs["JoinTokens"]["Worker"]
        for node in self.workers:
            node.client.swarm.join(
                remote_addrs=[f"{m.addr}:2377"],
                join_token=token,
                listen_addr=f"{node.addr}:2377",
                advertise_addr=node.addr,
            )
        self.wait_ready(self.size, timeout)
        self.timings["up"] = time.monotonic() - t0

    def _network(self) -> None:
        _sh("ip", "netns", "add", self.hub)
        _sh("ip", "-n", self.hub, "link", "add", "br0", "type", "bridge")
        _sh("ip", "-n", self.hub, "link", "set", "br0", "up")
        for node in self.nodes:
            _sh("ip", "netns", "add", node.netns)
            _sh(
                "ip", "link", "add", f"v{self.tag}{node.index}", "netns", self.hub,
                "type", "veth", "peer", "name", "eth0", "netns", node.netns,
            )  # fmt: skip
            _sh("ip", "-n", self.hub, "link", "set", f"v{self.tag}{node.index}", "master", "br0", "up")
            _sh("ip", "-n", node.netns, "addr", "add", f"{node.addr}/24", "dev", "eth0")
            _sh("ip", "-n", node.netns, "link", "set", "eth0", "up")
            _sh("ip", "-n", node.netns, "link", "set", "lo", "up")

    def node_states(self) -> dict[str, tuple[str, str]]:
        """{hostname: (state, availability)} as the manager sees them."""
        out = {}
        for n in self.manager.client.nodes.list():
            a = n.attrs
            out[a["Description"]["Hostname"]] = (a["Status"]["State"], a["Spec"]["Availability"])
        return out

    def wait_ready(self, count: int, timeout: float = 120) -> None:
        """Poll (never sleep a fixed time) until `count` nodes are ready."""
        end = time.monotonic() + timeout
        states: dict = {}
        while time.monotonic() < end:
            with contextlib.suppress(Exception):
                states = self.node_states()
                if sum(1 for s, _ in states.values() if s == "ready") >= count:
                    return
            time.sleep(0.3)
        raise RuntimeError(f"the swarm did not get {count} ready nodes in {timeout:.0f} s: {states}")

    # --- images ---------------------------------------------------------------------

    def load_image(self, source: docker.DockerClient, tag: str, nodes: list[Node] | None = None) -> None:
        """`docker save` `tag` from `source` once and `docker load` it into `nodes` (default all).

        For test set-up only (an image that is already on a machine); ddctl itself spreads
        images through its registry service.
        """
        nodes = self.nodes if nodes is None else nodes
        path = os.path.join(self.base, "image.tar")
        try:
            with open(path, "wb") as f:
                for chunk in source.images.get(tag).save(named=tag):  # this tag, not the first of its tags
                    f.write(chunk)
            errors: list = []

            def load(node):
                try:
                    with open(path, "rb") as f:
                        node.client.images.load(f)
                except Exception as exc:  # reported below, in the test's thread
                    errors.append(f"{node.name}: {exc}")

            threads = [threading.Thread(target=load, args=(n,)) for n in nodes]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            if errors:
                raise RuntimeError(f"loading {tag} failed: {errors}")
        finally:
            with contextlib.suppress(OSError):
                os.remove(path)

    # --- teardown -------------------------------------------------------------------

    def _inodes(self) -> set[int]:
        names = [self.hub] + [n.netns for n in self.nodes]
        return {i for i in (_netns_inode(n) for n in names) if i is not None}

    def down(self) -> None:
        t0 = time.monotonic()
        inodes = self._inodes()
        # Workers first, so that the manager does not wait on them; all in parallel.
        for node in self.nodes:
            if node.running():
                node.proc.send_signal(signal.SIGTERM)
        for node in self.nodes:
            node.stop()
        # containerd, shims, docker-proxy... anything still in our namespaces is ours.
        for sig in (signal.SIGTERM, signal.SIGKILL):
            pids = _pids_in_netns(inodes) if inodes else []
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            end = time.monotonic() + 5
            while pids and time.monotonic() < end:
                pids = _pids_in_netns(inodes)
                time.sleep(0.1)
        for point in _mounts_under(self.base):
            _sh("umount", "-l", point, check=False)
        for name in [n.netns for n in self.nodes] + [self.hub]:
            if _netns_inode(name) is not None:
                _sh("ip", "netns", "del", name, check=False)
        shutil.rmtree(self.base, ignore_errors=True)
        self.timings["down"] = time.monotonic() - t0

    def leftovers(self) -> list[str]:
        """What the harness would leave on the machine (empty after `down()`)."""
        left = []
        for name in [self.hub] + [n.netns for n in self.nodes]:
            if _netns_inode(name) is not None:
                left.append(f"namespace {name}")
        left += [f"mount {p}" for p in _mounts_under(self.base)]
        if os.path.exists(self.base):
            left.append(f"folder {self.base}")
        for node in self.nodes:
            if node.running():
                left.append(f"dockerd of {node.name} (pid {node.proc.pid})")
        return left
