"""What several commands share: argument types and options, the Docker connection, the
build's live view (`ddctl build`, and `ddctl run` when the image is missing), warnings.

Command modules import this one, never each other.
"""

import argparse
import contextlib
import os
import time
from collections.abc import Iterator
from typing import Any, Optional

from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from ddctl import objective
from ddctl.build import BuildSummary, build_image, human_size
from ddctl.client import Endpoint, make_client, resolve_endpoint
from ddctl.containers import remove_leftovers
from ddctl.errors import DdctlError, UsageError, one_line
from ddctl.fetch import get_picture
from ddctl.image import DEFAULT_TAG, UNTRAINED, WeightsChoice
from ddctl.limits import arg_type
from ddctl.run.naming import DEFAULT_OUTPUT
from ddctl.run.options import ENGINE_DEFAULTS, MIN_TILE, DreamOptions

UNTRAINED_WARNING = (
    "warning: {tag} holds untrained weights: dreams will show noise-like patterns, "
    "not the 2015 pictures (build with `ddctl build` or `--weights PATH` for real ones)."
)


# --- arguments ---------------------------------------------------------------------------


def add_image_option(parser: argparse.ArgumentParser) -> None:
    """--image TAG (default the dream image's tag)."""
    parser.add_argument(
        "--image", default=DEFAULT_TAG, metavar="TAG", help=f"image tag (default {DEFAULT_TAG})"
    )


# --- Docker ------------------------------------------------------------------------------


def connect(timeout: int = 60) -> tuple:
    """(endpoint, docker client) for the endpoint in effect. Call it only once everything
    that needs no Docker has been checked; SDK errors reach the CLI's error boundary."""
    ep: Endpoint = resolve_endpoint()
    return ep, make_client(ep, timeout=timeout)


def clean_leftovers(ui, client) -> None:
    """Remove what a killed ddctl left (containers, temp folders) and say so."""
    names, folders = remove_leftovers(client)
    if names:
        say(
            ui,
            f"removed {len(names)} leftover dream container(s) of a ddctl that was killed: {', '.join(names)}",
        )
    if folders:
        say(ui, f"removed {len(folders)} leftover temp folder(s): {', '.join(folders)}")


# --- rendering -----------------------------------------------------------------------------


def say(ui, text: str, style=None) -> None:
    """One plain line on stderr (no markup, no highlighting)."""
    ui.err.print(text, style=style, markup=False, highlight=False, soft_wrap=True)


def seconds(s) -> str:
    """12 -> '12 s', 75 -> '1:15', None -> '?'."""
    if s is None:
        return "?"
    s = int(round(s))
    return f"{s // 60}:{s % 60:02d}" if s >= 60 else f"{s} s"


def warn_untrained(ui, tag: str) -> None:
    say(ui, UNTRAINED_WARNING.format(tag=tag), style="yellow")


def warn_if_untrained(ui, tag: str, weights: str) -> None:
    if weights == UNTRAINED:
        warn_untrained(ui, tag)


class BuildView:
    """Renders BuildEvents on ui.err: rich bars on a terminal, plain lines otherwise."""

    def __init__(self, ui):
        self.ui = ui
        self.live = ui.err.is_terminal
        self.progress: Optional[Progress] = None
        self.task = None
        self.dl_task = None
        self._last_dl = 0.0

    def __enter__(self):
        if self.live:
            self.progress = Progress(
                SpinnerColumn(),
                TextColumn("[bold]step {task.fields[step]}"),
                BarColumn(bar_width=24),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=self.ui.err,
                transient=True,
            )
            self.progress.start()
        return self

    def __exit__(self, *exc):
        if self.progress:
            self.progress.stop()

    def __call__(self, ev):
        progress = self.progress  # set (by __enter__) exactly when the screen is live
        if ev.kind == "step":
            line = f"step {ev.step}/{ev.steps_total}: {one_line(ev.text, 100)}"
            if progress is not None:
                if self.task is None:
                    self.task = progress.add_task(ev.text, total=ev.steps_total, step="")
                progress.update(
                    self.task,
                    completed=ev.step - 1,
                    total=ev.steps_total,
                    step=f"{ev.step}/{ev.steps_total}",
                    description=one_line(ev.text, 60),
                )
                progress.console.print(f"[dim]{line}[/]", markup=True, highlight=False, soft_wrap=True)
            else:
                self.ui.err.print(line, markup=False, highlight=False, soft_wrap=True)
        elif ev.kind == "log" and progress is not None and self.task is not None:
            progress.update(self.task, description=one_line(ev.text, 60))
        elif ev.kind == "download":
            if progress is not None:
                if self.dl_task is None:
                    self.dl_task = progress.add_task(
                        f"downloading {ev.text}",
                        total=ev.total,
                        step="",
                    )
                progress.update(
                    self.dl_task,
                    completed=ev.current,
                    total=ev.total,
                    description=f"downloading {ev.text}: {_bytes(ev.current, ev.total)}",
                )
            elif time.monotonic() - self._last_dl > 5 or (ev.total and ev.current == ev.total):
                self._last_dl = time.monotonic()
                self.ui.err.print(
                    f"  downloading {ev.text}: {_bytes(ev.current, ev.total)}", markup=False, highlight=False
                )
        elif ev.kind == "pull":
            self.ui.err.print(ev.text, markup=False, highlight=False, soft_wrap=True)
        elif ev.kind == "done" and progress is not None and self.task is not None:
            progress.update(self.task, completed=ev.steps_total)


def _bytes(current, total):
    return f"{human_size(current or 0)} of {human_size(total)}" if total else human_size(current or 0)


def build_with_view(
    ui, client, tag: str, weights: Optional[WeightsChoice] = None, nocache: bool = False
) -> BuildSummary:
    """Build `tag` with live progress on stderr; weights from image.weights_buildargs()
    (checked by the caller before Docker was asked)."""
    say(ui, f"building {tag} (a first build takes a few minutes; later ones reuse the cache)")
    with BuildView(ui) as view:
        return build_image(client, tag=tag, weights=weights, nocache=nocache, on_event=view)


def builder(ui, client, no_build: bool):
    """What a dreaming command gives ddctl/run/launch.py to build its image when it is
    missing (with the build's live view and how long it took), or None for --no-build."""
    if no_build:
        return None

    def build(tag):
        summary = build_with_view(ui, client, tag)
        say(ui, f"built {tag} in {summary.seconds:.0f} s")

    return build


def dream_session(ui, no_build: bool) -> tuple:
    """What a dreaming command does once everything checkable without Docker is checked:
    connect, remove what a killed earlier ddctl left, and know how to build the image if it
    is missing. -> (endpoint, client, build or None)."""
    ep, client = connect()
    clean_leftovers(ui, client)
    return ep, client, builder(ui, client, no_build)


@contextlib.contextmanager
def discarded_unless_accepted(model) -> Iterator[Any]:
    """The with block uses `model` (a ddctl.models.Model or None); after it, a download the
    image did not accept is discarded (one it accepted was committed to the cache and stays)."""
    try:
        yield model
    finally:
        if model is not None:
            model.discard()


# --- the dream options of `ddctl run`, `ddctl zoom` and `ddctl sheet` ----------------------

LAYER_HELP = (
    f"layer to amplify (default {ENGINE_DEFAULTS['layer']}, or the model's; see `ddctl layers`), "
    "or an objective: LAYER:97,112 (channels), A*1.0+B*0.5 (several layers with weights)"
)


def tile_size(text):
    """--tile: 0 (never) or at least MIN_TILE pixels."""
    value = arg_type("tile", "--tile")(text)
    if 0 < value < MIN_TILE:
        raise argparse.ArgumentTypeError(f"{text!r} must be 0 (no tiles) or at least {MIN_TILE}")
    return value


def add_dream_options(
    p: argparse.ArgumentParser,
    max_size_default: int,
    layer: bool = True,
    defaults_none: bool = False,
    results: str = "the pictures",
) -> None:
    """The dream's positionals ([LAYER] ITERATIONS OCTAVES) and flags, one definition for
    every verb that dreams (run, zoom, sheet): numbers checked against ddctl/limits.py,
    --tile, --model, --guide, -o, --image, --no-build, --copy. With defaults_none, unset
    options stay None (zoom --resume tells a given option from a default)."""

    def d(key):
        return None if defaults_none else ENGINE_DEFAULTS[key]

    if layer:
        # checked by the command (objective.check_spec: one line, with --model's rule for numbers)
        p.add_argument("layer", metavar="LAYER", nargs="?", default=None, help=LAYER_HELP)
    p.add_argument(
        "iterations",
        metavar="ITERATIONS",
        nargs="?",
        type=arg_type("iterations", "ITERATIONS"),
        default=d("iterations"),
        help=f"steps per octave (default {ENGINE_DEFAULTS['iterations']})",
    )
    p.add_argument(
        "octaves",
        metavar="OCTAVES",
        nargs="?",
        type=arg_type("octaves", "OCTAVES"),
        default=d("octaves"),
        help=f"number of scales (default {ENGINE_DEFAULTS['octaves']})",
    )
    p.add_argument(
        "--octave-scale",
        type=arg_type("octave_scale", "--octave-scale"),
        default=d("octave_scale"),
        metavar="F",
        help=f"size ratio between octaves (default {ENGINE_DEFAULTS['octave_scale']})",
    )
    p.add_argument(
        "--step-size",
        type=arg_type("step_size", "--step-size"),
        metavar="F",
        help=f"gradient step (default {ENGINE_DEFAULTS['step_size']})",
    )
    p.add_argument(
        "--jitter",
        type=arg_type("jitter", "--jitter"),
        metavar="PX",
        help=f"random shift (default {ENGINE_DEFAULTS['jitter']})",
    )
    p.add_argument(
        "--seed", type=arg_type("seed", "--seed"), metavar="N", help="random seed, for repeatable pictures"
    )
    p.add_argument(
        "--max-size",
        type=arg_type("max_size", "--max-size", zero_means_none=True),
        metavar="PX",
        default=None if defaults_none else max_size_default,
        help=f"scale the input down so its longer side is at most PX (default "
        f"{max_size_default}; 0 keeps the full size, which needs far more time and memory)",
    )
    p.add_argument(
        "-o",
        "--output-dir",
        default=DEFAULT_OUTPUT,
        metavar="DIR",
        help=f"where {results} go (default ./{DEFAULT_OUTPUT}, created if missing)",
    )
    p.add_argument(
        "--tile",
        type=tile_size,
        metavar="PX",
        help="compute each step in crops of at most PX x PX pixels, so memory depends on PX, not the "
        "picture (default: pictures up to 1280x1024 whole, bigger ones in 768 px tiles; 0: never)",
    )
    add_model_option(p)
    p.add_argument(
        "--guide",
        metavar="PICTURE|URL",
        help="guided dream: amplify in SOURCE what looks like this picture (Google's notebook's "
        "objective_guide, on a single whole layer); fetched and checked like SOURCE",
    )
    add_image_option(p)
    p.add_argument(
        "--no-build", action="store_true", help="when the image does not exist, stop instead of building it"
    )
    p.add_argument(
        "--copy",
        action="store_true",
        help="move files through the Docker API instead of bind mounts "
        "(automatic for a remote daemon; also DDCTL_TRANSFER=copy)",
    )


def check_guided(guide: Optional[str], specs: list, model: Optional[str] = None) -> None:
    """Each LAYER as the host can check it without the net (objective.check_spec: one line
    before anything else), and --guide only with single whole layers (the notebook's
    objective_guide works on one blob)."""
    for spec in specs:
        terms = objective.check_spec(spec, model)
        if guide and not objective.plain_blob(terms):
            raise UsageError(f"--guide works on one whole layer, not on {spec}: give a single layer name.")


def guide_picture(ui, spec: Optional[str], workdir: str):
    """--guide -> a verified fetch.Picture (a URL downloaded into workdir), or None."""
    if not spec:
        return None
    guide_dir = os.path.join(workdir, "guide")
    os.makedirs(guide_dir)
    try:
        guide = get_picture(spec, guide_dir)
    except DdctlError as exc:  # the same checks as SOURCE's; say which of the two it was
        exc.message = f"--guide: {exc.message}"
        exc.args = (exc.message,)
        raise

    say(ui, f"guide: {guide.source} ({guide.width}x{guide.height} {guide.format})")
    return guide


def dream_options_of(args, cls=DreamOptions, **more):
    """What argparse read for the dream options (add_dream_options, and run's own) as `cls`
    (DreamOptions or a subclass), as given: None stays None (zoom --resume tells a given
    option from a default) and a --max-size of 0 stays 0 (the caller says what it means)."""
    return cls(
        layer=getattr(args, "layer", None),
        iterations=args.iterations,
        octaves=args.octaves,
        octave_scale=args.octave_scale,
        step_size=args.step_size,
        jitter=args.jitter,
        seed=args.seed,
        save_steps=getattr(args, "save_steps", False),
        max_size=args.max_size,
        tile=getattr(args, "tile", None),
        **more,
    )


class UnitsView:
    """Progress of a job made of units (zoom frames, sheet cells) on ui.err: a rich bar with
    `frame i/N` and an ETA on a terminal, one plain line per finished unit otherwise."""

    def __init__(self, ui, unit: str, verb: str):
        self.ui, self.unit, self.verb = ui, unit, verb
        self.live = ui.err.is_terminal
        self.progress: Optional[Progress] = None
        self.task: Any = None
        self.total = self.first = self.done = 0
        self.steps_total = 1
        self.step = 0
        self.elapsed = 0.0

    def close(self):
        if self.progress:
            self.progress.stop()
            self.progress = None

    def eta(self):
        left = self.total - self.first
        f = (self.done + self.step / float(self.steps_total)) / left if left else 1.0
        return None if f <= 0 else max(0.0, self.elapsed * (1 - f) / f)

    def _show(self):
        now = min(self.first + self.done + 1, self.total)
        where = f"{self.unit} {now}/{self.total}"
        info = f"elapsed {seconds(self.elapsed)}  ETA {seconds(self.eta())}"
        if self.progress:
            left = max(1, self.total - self.first)
            frac = (self.done + self.step / float(self.steps_total)) / left
            self.progress.update(self.task, completed=int(frac * 1000), description=where, info=info)
        return where, info

    def __call__(self, ev):
        d = ev.data
        if ev.kind == "fetched":
            say(self.ui, f"input: {d['source']} ({d['width']}x{d['height']} {d['format']})")
        elif ev.kind == "build-needed":
            say(self.ui, f"The image {d['tag']} does not exist yet: building it first ({d['command']}).")
        elif ev.kind == "image":
            warn_if_untrained(self.ui, d["tag"], d.get("weights"))
        elif ev.kind == "transfer":
            if d["mode"] == "mount":
                say(self.ui, f"files: {d['output_dir']} bind-mounted into the container, as {d['why']}")
            else:
                say(
                    self.ui,
                    f"files: copied in and out through the Docker API, as {d['why']}; "
                    f"results into {d['output_dir']}",
                )
        elif ev.kind == "start":
            self.total = int(d.get("frames") or d.get("cells") or 1)
            self.first = int(d.get("first_frame") or 0)
            self.steps_total = max(1, int(d.get("steps_total") or 1))
            more = f", from {self.unit} {self.first + 1}" if self.first else ""
            say(
                self.ui,
                f"{self.verb} {d.get('width')}x{d.get('height')}: {self.total} {self.unit}s{more}, "
                f"{d.get('octaves')} octaves x {d.get('iterations')} iterations each, seed {d.get('seed')}",
            )
            if self.live:
                self.progress = Progress(
                    TextColumn("[bold]{task.description}"),
                    BarColumn(bar_width=30),
                    TextColumn("{task.percentage:>3.0f}%"),
                    TextColumn("{task.fields[info]}"),
                    console=self.ui.err,
                    transient=True,
                )
                self.progress.start()
                self.task = self.progress.add_task(
                    f"{self.unit} {self.first + 1}/{self.total}", total=1000, info=""
                )
        elif ev.kind == "step":
            self.step = int(d.get("step") or 0)
            self.elapsed = float(d.get("elapsed") or self.elapsed)
            self._show()
        elif ev.kind in ("frame", "cell"):
            self.done += 1
            self.step = 0
            self.elapsed = float(d.get("elapsed") or self.elapsed)
            n = int(d.get(ev.kind) or 0)
            info = f"elapsed {seconds(self.elapsed)}  ETA {seconds(self.eta())}"
            if self.progress:
                self._show()
            else:
                label = f"  {d['label']}" if d.get("label") else ""
                say(self.ui, f"{self.unit} {n}/{self.total}{label}  {info}")
        elif ev.kind == "encoding":
            self.close()
            say(self.ui, f"encoding the MP4 and the GIF ({d.get('frames')} frames at {d.get('fps')} fps)")
        elif ev.kind == "done":
            self.close()


# --- models ------------------------------------------------------------------------------


def add_model_option(parser: argparse.ArgumentParser) -> None:
    """--model NAME|DIR (default the image's own bvlc_googlenet)."""
    parser.add_argument(
        "--model",
        metavar="NAME|DIR",
        help="network to dream with: bvlc_googlenet (default, in the image), a known model "
        "(see `ddctl models`; downloaded once into the cache) or a folder holding "
        "deploy.prototxt and one .caffemodel",
    )


def resolve_model(ui, spec):
    """--model -> ddctl.models.Model or None, downloading a known model with a progress bar."""
    from ddctl.models import resolve

    state: dict = {"progress": None, "task": None, "last": 0.0}

    def on_progress(what, done, total):
        if ui.err.is_terminal:
            if state["progress"] is None:
                bar = Progress(
                    TextColumn("[bold]{task.description}"),
                    BarColumn(bar_width=30),
                    TextColumn("{task.fields[info]}"),
                    console=ui.err,
                    transient=True,
                )
                bar.start()
                state["progress"] = bar
            if state["task"] is None or state.get("what") != what:
                state["task"] = state["progress"].add_task(f"downloading {what}", total=total, info="")
                state["what"] = what
            state["progress"].update(state["task"], completed=done, total=total, info=_bytes(done, total))
        elif time.monotonic() - state["last"] > 5 or (total and done == total):
            state["last"] = time.monotonic()
            say(ui, f"  downloading {what}: {_bytes(done, total)}")

    try:
        return resolve(spec, on_progress)
    finally:
        if state["progress"] is not None:
            state["progress"].stop()
