"""`ddctl swarm`: dream a batch of pictures across a Docker Swarm (rendering only; the work
is ddctl/swarm/). DOCKER_HOST or the docker context must point at a swarm manager."""

from __future__ import annotations

import argparse
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from ddctl import objective
from ddctl.commands.common import connect, seconds
from ddctl.errors import DdctlError
from ddctl.image import DEFAULT_TAG, check_tag
from ddctl.limits import arg_type
from ddctl.run.naming import DEFAULT_OUTPUT, prepare_output_dir
from ddctl.run.options import DEFAULT_MAX_SIZE, ENGINE_DEFAULTS, DreamOptions
from ddctl.swarm import registry
from ddctl.swarm.batch import SwarmBatch, SwarmOptions, batch_leftovers, expand_sources, remove_batch


def _number(kind, minimum):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number")
        if value < minimum or value != value:
            raise argparse.ArgumentTypeError(f"{text!r} must be at least {minimum}")
        return value

    return parse


def _memory(text):
    units = {"k": 1024, "m": 1024**2, "g": 1024**3}
    t = text.strip().lower().rstrip("b")
    try:
        n = float(t[:-1]) * units[t[-1]] if t and t[-1] in units else float(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (e.g. 4g, 512m)")
    if n < 64 * 1024**2:
        raise argparse.ArgumentTypeError(f"{text!r} is too little memory for a dream (64m at least)")
    return int(n)


def add_parser(sub):
    p = sub.add_parser(
        "swarm",
        help="dream a batch of pictures across a Docker Swarm",
        description="Batches across a Docker Swarm. DOCKER_HOST (or the docker context) must "
        "point at a swarm manager; everything goes through its Engine API.",
    )
    verbs = p.add_subparsers(dest="swarm_command", metavar="VERB")
    r = verbs.add_parser(
        "run",
        help="dream on pictures (files, folders, URLs) across the swarm's nodes",
        description="Dream on every picture given (files, folders of pictures, http(s) URLs) "
        "across the swarm: one task per picture, results written here as they finish, with "
        "manifest.jsonl saying which node dreamed each.",
    )
    r.add_argument("sources", metavar="SOURCE", nargs="+", help="picture files, folders or http(s) URLs")
    r.add_argument("--layer", default=ENGINE_DEFAULTS["layer"], help="layer to amplify")
    # the engine's limits (ddctl/limits.py, as ddctl run checks them): a task never gets a number it refuses
    r.add_argument(
        "--iterations",
        type=arg_type("iterations", "--iterations"),
        default=ENGINE_DEFAULTS["iterations"],
        metavar="N",
    )
    r.add_argument(
        "--octaves", type=arg_type("octaves", "--octaves"), default=ENGINE_DEFAULTS["octaves"], metavar="N"
    )
    r.add_argument(
        "--octave-scale",
        type=arg_type("octave_scale", "--octave-scale"),
        default=ENGINE_DEFAULTS["octave_scale"],
        metavar="F",
    )
    r.add_argument("--step-size", type=arg_type("step_size", "--step-size"), metavar="F")
    r.add_argument("--jitter", type=arg_type("jitter", "--jitter"), metavar="PX")
    r.add_argument("--seed", type=arg_type("seed", "--seed"), metavar="N")
    r.add_argument(
        "--max-size",
        type=arg_type("max_size", "--max-size", zero_means_none=True),
        default=DEFAULT_MAX_SIZE,
        metavar="PX",
    )
    r.add_argument("-o", "--output-dir", default=DEFAULT_OUTPUT, metavar="DIR")
    r.add_argument("--image", default=DEFAULT_TAG, metavar="TAG", help="the dream image on the manager")
    r.add_argument(
        "--cpus", type=_number(float, 0.05), default=1.0, metavar="F", help="CPU limit per task (default 1)"
    )
    r.add_argument(
        "--memory",
        type=_memory,
        default=4 * 1024**3,
        metavar="SIZE",
        help="memory limit per task (default 4g)",
    )
    r.add_argument(
        "--concurrency",
        type=_number(int, 1),
        metavar="N",
        help="tasks at a time (default: the ready nodes' CPUs divided by --cpus)",
    )
    r.add_argument(
        "--per-node", type=_number(int, 1), metavar="N", help="at most N tasks on one node at a time"
    )
    r.set_defaults(func=run_batch)
    s = verbs.add_parser(
        "setup", help="start the swarm's registry (done on first use too) and check the nodes"
    )
    s.set_defaults(func=setup)
    c = verbs.add_parser("clean", help="remove what killed batches left; --registry also the registry")
    c.add_argument("--registry", action="store_true", help="also remove the registry services and network")
    c.set_defaults(func=clean)
    p.set_defaults(func=lambda args, ui: (p.print_help(), 2)[1])
    return p


class BatchView:
    """One bar: pictures done/total, nodes busy, ETA; one line per finished picture."""

    def __init__(self, ui):
        self.ui = ui
        self.live = ui.err.is_terminal
        self.progress = None
        self.task: Any = None
        self.last = None

    def say(self, text):
        self.ui.err.print(text, markup=False, highlight=False, soft_wrap=True)

    def close(self):
        if self.progress:
            self.progress.stop()
            self.progress = None

    def __call__(self, ev):
        d = ev.data
        if ev.kind == "say":
            self.say(d["text"])
        elif ev.kind == "round":
            what = "dreaming" if d["round"] == 0 else "running again (lost with their node)"
            self.say(f"{what}: {d['pictures']} pictures, {d['concurrency']} at a time")
        elif ev.kind == "item":
            it = d["item"]
            if it.status == "done":
                self.say(f"done: {it.source} -> {it.output} (on {it.node}, {it.seconds} s)")
            else:
                self.say(f"failed: {it.source}: {it.error}")
        elif ev.kind == "progress":
            busy = ", ".join(f"{h} {n}" for h, n in sorted(d["busy"].items())) or "none"
            info = f"nodes busy: {busy}  ETA {seconds(d['eta'])}"
            if self.live:
                if self.progress is None:
                    self.progress = Progress(
                        TextColumn("[bold]pictures"),
                        BarColumn(bar_width=30),
                        MofNCompleteColumn(),
                        TextColumn("{task.fields[info]}"),
                        console=self.ui.err,
                        transient=True,
                    )
                    self.progress.start()
                    self.task = self.progress.add_task("", total=d["total"], info="")
                self.progress.update(self.task, completed=d["done"], info=info)
            elif (d["done"], d["busy"]) != self.last:
                self.last = (d["done"], d["busy"])
                self.say(f"pictures {d['done']}/{d['total']}  {info}")


def run_batch(args, ui):
    check_tag(args.image, "--image")
    objective.check_spec(args.layer, label="--layer")
    sources = expand_sources(args.sources)  # bad input is told before Docker is asked
    prepare_output_dir(args.output_dir)
    _ep, client = connect(timeout=600)
    opts = DreamOptions(
        layer=args.layer,
        iterations=args.iterations,
        octaves=args.octaves,
        octave_scale=args.octave_scale,
        step_size=args.step_size,
        jitter=args.jitter,
        seed=args.seed,
        max_size=args.max_size or None,
    )
    sopts = SwarmOptions(
        concurrency=args.concurrency, cpus=args.cpus, memory=args.memory, per_node=args.per_node
    )
    view = BatchView(ui)
    batch = SwarmBatch(client, opts, args.output_dir, args.image, sopts, on_event=view)
    try:
        result = batch.run(sources)
    finally:
        view.close()
    ok = len(result.items) - len(result.failed)
    where = ", ".join(f"{h} {n}" for h, n in sorted(result.nodes.items())) or "no node"
    view.say(
        f"{ok}/{len(result.items)} pictures in {seconds(result.seconds)} ({where}); manifest {result.manifest}"
    )
    for it in result.items:
        if it.status == "done":
            ui.out.print(it.output, markup=False, highlight=False, soft_wrap=True)
    return 0 if not result.failed else 1


def setup(args, ui):
    _ep, client = connect(timeout=600)
    batch = SwarmBatch(client)
    node_id, nodes = batch.manager_node()

    def say(text: str) -> None:
        ui.err.print(text, markup=False, highlight=False)

    registry.ensure_registry(client, node_id, say)
    registry.wait_registry(client)
    others = {
        n["ID"]: n["Description"]["Hostname"]
        for n in nodes
        if n["ID"] != node_id and n["Status"]["State"] == "ready"
    }
    missing = registry.wait_relays(client, others)
    ui.out.print(
        f"registry: {registry.REGISTRY_SERVICE} on this manager, relays on {len(nodes) - 1} other nodes"
    )
    if missing:
        raise DdctlError(
            f"These nodes lack the image {registry.REGISTRY_IMAGE}, which cannot come from the registry "
            f"it starts: {', '.join(missing)}. Load it there once (`docker save {registry.REGISTRY_IMAGE}` "
            f"here, `docker load` there)."
        )
    return 0


def clean(args, ui):
    _ep, client = connect(timeout=120)
    SwarmBatch(client).manager_node()  # not a swarm, or a worker: said as `swarm run` says it
    removed = remove_batch(client)
    if args.registry:
        for name in (registry.RELAY_SERVICE, registry.REGISTRY_SERVICE):
            try:
                client.api.remove_service(name)
                removed.append(f"service {name}")
            except Exception:
                pass
    left = batch_leftovers(client)
    for r in removed:
        ui.out.print(f"removed {r}", markup=False)
    if left:
        things = ", ".join(sorted(x for items in left.values() for x in items))
        raise DdctlError(
            f"Still there: {things} (in use by tasks that are stopping: a node may be finishing an "
            f"image pull); run `ddctl swarm clean` again in a minute."
        )
    if not removed:
        ui.out.print("nothing to remove")
    return 0
