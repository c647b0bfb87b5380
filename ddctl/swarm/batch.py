"""A batch of pictures dreamed across a Docker Swarm, through the manager's Engine API only.

What a batch creates on the swarm (all labelled io.ddctl.swarm.batch=<id>, all removed at
the end, Ctrl-C included; `ddctl doctor --fix` removes those of a killed run):

- `ddctl-net-<id>`: an --internal overlay network (no route anywhere else); the only
  network the dream tasks get;
- `ddctl-xchg-<id>`: the exchange (exchange_server.py), one task on this manager, its
  folder the volume `ddctl-xchg-<id>`; ddctl fills it with put_archive and empties it with
  get_archive; tasks reach it over the internal network (dnsrr: no IPVS needed);
- `ddctl-dream-<id>-r<k>`: replicated-job services, one task per picture (slot k of round
  r is picture rounds[r][k]), at most `concurrency` at a time, restart on failure. A task
  lost with its node (swarm's jobs leave it "running" on a down node) is run again in a
  new round; the exchange keeps the first result of each picture, so nothing is written
  twice.

Tasks get the local dream's lock-down: every capability dropped, read-only root with a
tmpfs for work, a non-root user, CPU, memory and pids limits, and no-new-privileges, which
Engine 20.10's service API cannot set: each task sets it on itself (no_new_privs.py).
"""

from __future__ import annotations

import io
import json
import os
import signal
import tarfile
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from docker.errors import APIError, NotFound
from docker.types import (
    ContainerSpec,
    EndpointSpec,
    Mount,
    Resources,
    RestartPolicy,
    ServiceMode,
    TaskTemplate,
)

from ddctl.containers import extra_labels
from ddctl.errors import DdctlError, Interrupted, UsageError
from ddctl.fetch import get_picture, is_url
from ddctl.image import DEFAULT_TAG
from ddctl.run.archive import extract_new_files
from ddctl.run.naming import prepare_output_dir
from ddctl.run.options import DreamOptions, engine_command
from ddctl.swarm import registry

BATCH_LABEL = "io.ddctl.swarm.batch"
EXCHANGE_PORT = 8000
TASK_USER = "1000:1000"  # the image's `dreamer`: never uid 0
MAX_ATTEMPTS = 3  # rounds a picture may be given before it is reported failed
LIVE = {"new", "pending", "assigned", "accepted", "preparing", "ready", "starting", "running"}
POLL = 1.0
HERE = os.path.dirname(os.path.abspath(__file__))
PICTURE_EXT = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".ppm"}


@dataclass
class SwarmEvent:
    kind: str  # say | fetched | progress | item | round
    data: dict = field(default_factory=dict)


@dataclass
class Item:
    pid: str
    source: str
    picture: Any = None  # ddctl.fetch.Picture
    status: str = "pending"  # pending | done | failed
    error: str | None = None
    node: str | None = None
    seconds: float | None = None
    seed: int | None = None
    output: str | None = None
    rounds: list = field(default_factory=list)


@dataclass
class BatchResult:
    items: list
    manifest: str
    seconds: float
    nodes: dict  # hostname -> pictures done there

    @property
    def failed(self) -> list:
        return [i for i in self.items if i.status != "done"]


@dataclass
class SwarmOptions:
    concurrency: int | None = None  # tasks at a time; default from the nodes' CPUs
    cpus: float = 1.0  # CPU limit per task
    memory: int = 4 * 1024**3  # memory limit per task, bytes
    pids: int = 512
    per_node: int | None = None  # at most this many tasks on one node at a time


# --- pure helpers (unit-tested) ------------------------------------------------------------


def expand_sources(sources: list[str]) -> list[str]:
    """URLs and files as given, folders as their picture files (sorted); UsageError if none."""
    out = []
    for s in sources:
        if is_url(s) or not os.path.isdir(s):
            out.append(s)
            continue
        names = sorted(
            n
            for n in os.listdir(s)
            if not n.startswith(".") and os.path.splitext(n)[1].lower() in PICTURE_EXT
        )
        out += [os.path.join(s, n) for n in names]
    if not out:
        raise UsageError("No pictures to dream on: give picture files, folders holding pictures, or URLs.")
    return out


def redact(source: str) -> str:
    """A source fit for a manifest: no user:password, no query string or fragment values."""
    if not is_url(source):
        return source
    from urllib.parse import urlsplit, urlunsplit

    p = urlsplit(source)
    netloc = p.hostname or ""
    if p.port:
        netloc += f":{p.port}"
    query = "&".join(f"{kv.split('=')[0]}=…" for kv in p.query.split("&") if kv) if p.query else ""
    return urlunsplit((p.scheme, netloc, p.path, query, ""))


def default_concurrency(nodes: list[dict], cpus: float) -> int:
    """Tasks at a time: each ready, active node's CPUs divided by the CPUs of one task."""
    total = 0
    for n in nodes:
        if n["Status"]["State"] != "ready" or n["Spec"].get("Availability") != "active":
            continue
        ncpu = n["Description"]["Resources"].get("NanoCPUs", 1e9) / 1e9
        total += max(1, int(ncpu / max(cpus, 0.01) + 1e-9))
    return max(1, total)


def options_record(opts: DreamOptions) -> dict:
    return {k: v for k, v in vars(opts).items() if v is not None and v is not False}


def script(name: str) -> str:
    with open(os.path.join(HERE, name)) as f:
        return f.read()


def task_command(name: str) -> list[str]:
    """The command of a swarm task running ddctl's script `name` in the dream image: the
    no-new-privileges prelude first (no_new_privs.py), isolated mode (-I: no user site, no
    working folder on the import path)."""
    return ["python3", "-I", "-c", script("no_new_privs.py") + "\n" + script(name)]


def jobs_archive(items: list[Item], opts: DreamOptions, uid: int = 1000) -> bytes:
    """jobs/<pid>/meta.json and jobs/<pid>/<picture> for the exchange's folder."""
    buf = io.BytesIO()
    now = int(time.time())

    def add(name, data=None):
        info = tarfile.TarInfo(name)
        info.uid = info.gid = uid
        info.mtime = now
        if data is None:
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        else:
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))

    with tarfile.open(fileobj=buf, mode="w") as tar:
        add("jobs")
        for it in items:
            pic = it.picture
            add(f"jobs/{it.pid}")
            args = ["--output-dir", "{output}"] + engine_command("{input}", pic.stem, opts)
            meta = {"pid": it.pid, "filename": pic.filename, "args": args}
            add(f"jobs/{it.pid}/meta.json", json.dumps(meta).encode())
            with open(pic.path, "rb") as f:
                add(f"jobs/{it.pid}/{pic.filename}", f.read())
    return buf.getvalue()


def round_archive(rnd: int, pids: list[str], uid: int = 1000) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = json.dumps(pids).encode()
        info = tarfile.TarInfo(f"rounds/{rnd}.json")
        info.uid = info.gid = uid
        info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def read_done(tar_bytes: bytes) -> dict:
    """{pid: record} from an archive of the exchange's done/ folder."""
    out = {}
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        for m in tar:
            base = os.path.basename(m.name)
            if m.isfile() and base.endswith(".json"):
                f = tar.extractfile(m)
                if f is None:
                    continue
                try:
                    out[base[:-5]] = json.loads(f.read())
                except ValueError:
                    continue
    return out


def eta(done: int, total: int, elapsed: float) -> float | None:
    if done <= 0 or elapsed <= 0:
        return None
    return elapsed / done * (total - done)


# --- the batch ----------------------------------------------------------------------------


class SwarmBatch:
    def __init__(
        self,
        client,
        opts: DreamOptions | None = None,
        output_dir: str = "dreams",
        image: str = DEFAULT_TAG,
        sopts: SwarmOptions | None = None,
        on_event: Callable[[SwarmEvent], None] | None = None,
        labels: dict | None = None,
    ) -> None:
        self.client = client
        self.opts = opts or DreamOptions()
        self.output_dir = output_dir
        self.image = image
        self.sopts = sopts or SwarmOptions()
        self.emit = on_event or (lambda e: None)
        self.id = uuid.uuid4().hex[:8]
        self.labels = {**extra_labels(), **(labels or {}), BATCH_LABEL: self.id}
        self.network = f"ddctl-net-{self.id}"
        self.exchange = f"ddctl-xchg-{self.id}"
        self.services: list[str] = []
        self.rounds: dict[int, list[str]] = {}
        self.items: dict[str, Item] = {}
        self.xchg_container: Any = None
        self.seen_tasks: set[str] = set()
        self.idle_since: dict[str, float] = {}
        self.avoid: list[str] = []
        self.concurrency = 1

    def say(self, text: str) -> None:
        self.emit(SwarmEvent("say", {"text": text}))

    # -- checks --

    def manager_node(self) -> tuple[str, list[dict]]:
        info = self.client.info()
        sw = info.get("Swarm") or {}
        if sw.get("LocalNodeState") != "active":
            raise DdctlError(
                "This Docker endpoint is not part of a swarm: point DOCKER_HOST (or the context) "
                "at a swarm manager, or make one with `docker swarm init`."
            )
        if not sw.get("ControlAvailable"):
            raise DdctlError(
                "This Docker endpoint is a swarm worker, which cannot run services: point "
                "DOCKER_HOST (or the context) at a manager (`docker node ls` on a manager lists them)."
            )
        return sw["NodeID"], self.client.api.nodes()

    # -- the run --

    def run(self, sources: list[str]) -> BatchResult:
        started = time.monotonic()
        sources = expand_sources(sources)
        outdir = prepare_output_dir(self.output_dir)
        node_id, nodes = self.manager_node()
        try:
            img = self.client.images.get(self.image)
        except NotFound:
            raise DdctlError(
                f"The image {self.image} is not on the swarm manager: build it there first "
                f"(`ddctl build` with DOCKER_HOST pointing at the manager)."
            )
        with tempfile.TemporaryDirectory(prefix="ddctl-swarm-") as tmp:
            self._fetch(sources, tmp)
            todo = [i for i in self.items.values() if i.status == "pending"]
            manifest = os.path.join(outdir, "manifest.jsonl")
            for it in self.items.values():
                if it.status == "failed":
                    self._write_manifest(manifest, it)
            if not todo:
                return self._result(manifest, started)
            interrupted = False
            try:
                registry.ensure_registry(self.client, node_id, self.say, self.labels_registry())
                registry.wait_registry(self.client)
                others = {
                    n["ID"]: n["Description"]["Hostname"]
                    for n in nodes
                    if n["ID"] != node_id and n["Status"]["State"] == "ready"
                }
                missing = registry.wait_relays(self.client, others)
                if missing:
                    self.say(
                        f"not using {', '.join(missing)}: no {registry.REGISTRY_IMAGE} there "
                        f"(load it there once; see `ddctl swarm setup`)"
                    )
                self.avoid = [nid for nid, host in others.items() if host in missing]
                self.say("pushing the dream image to the swarm's registry")
                ref = registry.push(self.client, img, self.say)
                self._start_exchange(img.id, node_id)
                self._put(jobs_archive(todo, self.opts))
                conc = self.sopts.concurrency or default_concurrency(nodes, self.sopts.cpus)
                self.concurrency = conc
                self._new_round([i.pid for i in todo], ref)
                self._follow(outdir, manifest, ref, started)
            except KeyboardInterrupt:
                interrupted = True
            finally:
                self.cleanup()
            if interrupted:
                raise Interrupted(
                    f"interrupted: the batch's services and network were removed; "
                    f"what was already written stays in {outdir}."
                )
        return self._result(manifest, started)

    def labels_registry(self) -> dict:
        return {k: v for k, v in self.labels.items() if k != BATCH_LABEL}

    def _fetch(self, sources: list[str], tmp: str) -> None:
        for n, source in enumerate(sources, 1):
            pid = f"p{n:04d}"
            it = Item(pid=pid, source=source)
            self.items[pid] = it
            d = os.path.join(tmp, pid)
            os.makedirs(d)
            try:
                it.picture = get_picture(source, d)
            except DdctlError as exc:
                it.status, it.error = "failed", exc.message
                self.emit(SwarmEvent("item", {"item": it}))
                continue
            self.emit(SwarmEvent("fetched", {"n": n, "total": len(sources), "source": source}))

    def _start_exchange(self, image_id: str, node_id: str) -> None:
        self.client.networks.create(self.network, driver="overlay", internal=True, labels=self.labels)
        spec = TaskTemplate(
            container_spec=ContainerSpec(
                image_id,
                command=task_command("exchange_server.py"),
                user=TASK_USER,
                env=[f"DDCTL_EXCHANGE_PORT={EXCHANGE_PORT}", "DDCTL_EXCHANGE_ROOT=/images"],
                mounts=[Mount("/images", self.exchange, type="volume", labels=self.labels)],
                read_only=True,
                cap_drop=["ALL"],
                labels=self.labels,
            ),
            restart_policy=RestartPolicy(condition="any", delay=1_000_000_000),
            resources=Resources(mem_limit=1024**3),
            placement={"Constraints": [f"node.id=={node_id}"]},
        )
        self.client.api.create_service(
            spec,
            name=self.exchange,
            labels=self.labels,
            networks=[self.network],
            endpoint_spec=EndpointSpec(mode="dnsrr"),
        )
        self.services.append(self.exchange)
        end = time.monotonic() + 60
        while time.monotonic() < end:
            found = self.client.containers.list(
                filters={"label": f"com.docker.swarm.service.name={self.exchange}", "status": "running"}
            )
            if found:
                self.xchg_container = found[0]
                return
            time.sleep(0.3)
        raise DdctlError(f"The exchange service {self.exchange} did not start on the manager.")

    def _put(self, data: bytes) -> None:
        if not self.xchg_container.put_archive("/images", data):
            raise DdctlError("Could not copy the pictures into the exchange.")

    def _new_round(self, pids: list[str], ref: str) -> None:
        rnd = len(self.rounds)
        self.rounds[rnd] = pids
        for pid in pids:
            self.items[pid].rounds.append(rnd)
        self._put(round_archive(rnd, pids))
        name = f"ddctl-dream-{self.id}-r{rnd}"
        o = self.sopts
        res = Resources(cpu_limit=int(o.cpus * 1e9), mem_limit=o.memory)
        res["Limits"]["Pids"] = o.pids
        spec = TaskTemplate(
            container_spec=ContainerSpec(
                ref,
                command=task_command("task_runner.py"),
                user=TASK_USER,
                env=[
                    f"DDCTL_EXCHANGE=http://{self.exchange}:{EXCHANGE_PORT}",
                    f"DDCTL_ROUND={rnd}",
                    "DDCTL_SLOT={{.Task.Slot}}",
                    "DDCTL_TASK={{.Task.ID}}",
                    "DDCTL_NODE={{.Node.Hostname}}",
                ],
                mounts=[Mount("/tmp", None, type="tmpfs", tmpfs_size=2 * 1024**3)],
                read_only=True,
                cap_drop=["ALL"],
                labels=self.labels,
            ),
            restart_policy=RestartPolicy(
                condition="on-failure", delay=1_000_000_000, max_attempts=MAX_ATTEMPTS
            ),
            resources=res,
            placement=self._placement(),
        )
        conc = min(self.concurrency, len(pids))
        self.client.api.create_service(
            spec,
            name=name,
            labels=self.labels,
            mode=ServiceMode("replicated-job", replicas=len(pids), concurrency=conc),
            networks=[self.network],
        )
        self.services.append(name)
        self.emit(SwarmEvent("round", {"round": rnd, "pictures": len(pids), "concurrency": conc}))

    def _placement(self) -> dict:
        place: dict = {"Constraints": [f"node.id!={nid}" for nid in self.avoid]}
        if self.sopts.per_node:
            place["MaxReplicas"] = self.sopts.per_node
        return place

    def _follow(self, outdir: str, manifest: str, ref: str, started: float) -> None:
        total = len(self.items)
        t0 = time.monotonic()
        while True:
            done_records = self._done_records()
            for pid, rec in done_records.items():
                it = self.items.get(pid)
                if it is None or it.status != "pending":
                    continue
                self._collect(it, rec, outdir)
                self._write_manifest(manifest, it)
                self.emit(SwarmEvent("item", {"item": it}))
            pending = [i for i in self.items.values() if i.status == "pending"]
            nodes = {n["ID"]: n for n in self.client.api.nodes()}
            busy, requeue = self._watch_tasks(pending, nodes)
            finished = sum(1 for i in self.items.values() if i.status != "pending")
            self.emit(
                SwarmEvent(
                    "progress",
                    {
                        "done": finished,
                        "total": total,
                        "busy": busy,
                        "eta": eta(finished, total, time.monotonic() - t0),
                    },
                )
            )
            if not pending:
                return
            if requeue:
                self._new_round(requeue, ref)
            time.sleep(POLL)

    def _done_records(self) -> dict:
        try:
            stream, _ = self.xchg_container.get_archive("/images/done")
        except NotFound:
            return {}
        return read_done(b"".join(stream))

    def _collect(self, it: Item, rec: dict, outdir: str) -> None:
        it.node, it.seconds, it.seed = rec.get("node"), rec.get("seconds"), rec.get("seed")
        if rec.get("status") != "done":
            it.status, it.error = "failed", rec.get("error") or "the engine failed"
            return
        stream, _ = self.xchg_container.get_archive(f"/images/out/{it.pid}")
        with tempfile.TemporaryFile() as f:
            for chunk in stream:
                f.write(chunk)
            f.seek(0)
            written = extract_new_files(f, outdir)
        final = written.get(f"/images/{rec.get('final')}")
        if final is None:
            it.status, it.error = "failed", "the task reported a picture that did not arrive"
            return
        it.status, it.output = "done", os.path.relpath(final, outdir)

    def _watch_tasks(self, pending: list[Item], nodes: dict) -> tuple[dict, list[str]]:
        """({hostname: running tasks}, pictures to run again in a new round)."""
        busy: dict[str, int] = {}
        by_pid: dict[str, list[dict]] = {}
        for rnd, pids in self.rounds.items():
            try:
                tasks = self.client.api.tasks(filters={"service": f"ddctl-dream-{self.id}-r{rnd}"})
            except APIError:
                continue
            for t in tasks:
                slot = int(t.get("Slot") or 0)
                if slot >= len(pids):
                    continue
                if self.items[pids[slot]].rounds[-1] == rnd:  # only the picture's latest round counts
                    by_pid.setdefault(pids[slot], []).append(t)
                node = nodes.get(t.get("NodeID") or "")
                if t["Status"]["State"] == "running" and node and node["Status"]["State"] == "ready":
                    host = node["Description"]["Hostname"]
                    busy[host] = busy.get(host, 0) + 1
        requeue = []
        now = time.monotonic()
        for it in pending:
            tasks = by_pid.get(it.pid, [])
            if not tasks:
                continue  # not started yet: the job runs at most `concurrency` at a time
            alive = [
                t
                for t in tasks
                if t["Status"]["State"] in LIVE
                and (
                    not t.get("NodeID")
                    or nodes.get(t["NodeID"], {}).get("Status", {}).get("State") == "ready"
                )
            ]
            if alive:
                self.idle_since.pop(it.pid, None)
                continue
            since = self.idle_since.setdefault(it.pid, now)
            lost = any(
                t["Status"]["State"] in LIVE
                and nodes.get(t.get("NodeID") or "", {}).get("Status", {}).get("State") != "ready"
                for t in tasks
            )
            if not lost and now - since < 5:
                continue  # swarm's own restart, or the result on its way
            self.idle_since.pop(it.pid, None)
            failures = [t for t in tasks if t["Status"]["State"] in ("failed", "rejected")]
            if len(it.rounds) >= MAX_ATTEMPTS or len(failures) >= MAX_ATTEMPTS:
                last = (failures or tasks)[-1]["Status"]
                it.status = "failed"
                it.error = f"the task failed {len(failures) or len(it.rounds)} times: {last.get('Err') or last.get('Message')}"
                continue
            requeue.append(it.pid)
        return busy, requeue

    def _write_manifest(self, manifest: str, it: Item) -> None:
        rec = {
            "source": redact(it.source),
            "output": it.output,
            "options": options_record(self.opts),
            "seed": it.seed,
            "seconds": it.seconds,
            "status": it.status,
            "node": it.node,
        }
        if it.status == "failed":
            rec["error"] = it.error
        with open(manifest, "a") as f:
            f.write(json.dumps(rec) + "\n")

    def _result(self, manifest: str, started: float) -> BatchResult:
        nodes: dict[str, int] = {}
        for it in self.items.values():
            if it.status == "done" and it.node:
                nodes[it.node] = nodes.get(it.node, 0) + 1
        return BatchResult(list(self.items.values()), manifest, time.monotonic() - started, nodes)

    # -- clean-up --

    def cleanup(self) -> None:
        """Remove what this batch made (services, then the volume and network); Ctrl-C ignored."""
        in_main = threading.current_thread() is threading.main_thread()
        old = signal.signal(signal.SIGINT, signal.SIG_IGN) if in_main else None
        try:
            remove_batch(self.client, self.id)
        finally:
            if in_main:
                signal.signal(signal.SIGINT, old)


def batch_leftovers(client) -> dict[str, list[str]]:
    """{batch id: [what is left]} of batches whose run was killed (services, networks, volumes)."""
    left: dict[str, list[str]] = {}
    f = {"label": BATCH_LABEL}
    for s in client.api.services(filters=f):
        left.setdefault(s["Spec"]["Labels"][BATCH_LABEL], []).append(f"service {s['Spec']['Name']}")
    for n in client.api.networks(filters=f):
        left.setdefault(n["Labels"][BATCH_LABEL], []).append(f"network {n['Name']}")
    for v in client.api.volumes(filters=f).get("Volumes") or []:
        left.setdefault(v["Labels"][BATCH_LABEL], []).append(f"volume {v['Name']}")
    return left


def remove_batch(client, batch_id: str | None = None, timeout: float = 90) -> list[str]:
    """Remove the services, then volumes and networks of one batch (or of every batch), and
    wait until the manager lists none of them (a swarm network lingers while its tasks go)."""
    f = {"label": f"{BATCH_LABEL}={batch_id}" if batch_id else BATCH_LABEL}
    removed: list[str] = []

    def note(what):
        if what not in removed:
            removed.append(what)

    end = time.monotonic() + timeout
    empty = 0
    while True:
        present = False
        for sv in client.api.services(filters=f):
            present = True
            try:
                client.api.remove_service(sv["ID"])
                note(f"service {sv['Spec']['Name']}")
            except NotFound:
                pass
        # Swarm may leave a task's container behind when its service goes while it starts:
        # on this node (the manager) they carry the batch's label and are removed here.
        for c in client.api.containers(all=True, filters=f):
            present = True
            try:
                client.api.remove_container(c["Id"], force=True)
            except (NotFound, APIError):
                pass
        for v in client.api.volumes(filters=f).get("Volumes") or []:
            present = True
            try:
                client.api.remove_volume(v["Name"])
                note(f"volume {v['Name']}")
            except (NotFound, APIError):
                pass  # still used by a container that is going away
        for n in client.api.networks(filters=f):
            present = True
            try:
                client.api.remove_network(n["Id"])
                note(f"network {n['Name']}")
            except NotFound:
                pass
            except APIError:
                # In use by tasks still stopping (a node busy pulling the image stops its
                # task only when the pull ends): tried again below, or by a later clean-up.
                pass
        # The manager may list a network again for a moment while its last task leaves:
        # done after two empty listings in a row.
        empty = 0 if present else empty + 1
        if empty >= 2 or time.monotonic() > end:
            return removed
        time.sleep(1 if not present else 0.5)
