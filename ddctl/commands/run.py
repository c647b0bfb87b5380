"""`ddctl run`: parsing and rendering only (the work is ddctl/run.py and ddctl/fetch.py)."""

import argparse

from rich.progress import BarColumn, Progress, TextColumn

from ddctl.build import DEFAULT_TAG
from ddctl.client import make_client, resolve_endpoint
from ddctl.commands.build import build_with_view, warn_untrained
from ddctl.run import DEFAULT_MAX_SIZE, DEFAULT_OUTPUT, ENGINE_DEFAULTS, DreamOptions, DreamProgress, dream


def _number(kind, minimum, strict):
    """An argparse type: `kind` (int or float) at least `minimum` (more than it if strict)."""
    noun = "whole number" if kind is int else "number"
    bound = f"more than {minimum}" if strict else f"{minimum} or more"

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {noun}")
        if value < minimum or (strict and value == minimum):
            raise argparse.ArgumentTypeError(f"{text!r} must be {bound}")
        return value

    return parse


_positive_int = _number(int, 1, strict=False)
_positive_float = _number(float, 0, strict=True)
_non_negative_int = _number(int, 0, strict=False)


def add_parser(sub):
    p = sub.add_parser(
        "run",
        help="dream on a picture (URL or file); prints the new picture's path",
        description="Dream on a picture from an http(s) URL or a file. The picture is checked on "
        "this machine, dreamed on in a container with no network, and written to the "
        "output folder; the last line printed is its path.",
    )
    p.add_argument("source", metavar="SOURCE", help="an http(s) URL or a picture file")
    p.add_argument(
        "layer",
        metavar="LAYER",
        nargs="?",
        default=ENGINE_DEFAULTS["layer"],
        help=f"layer to amplify (default {ENGINE_DEFAULTS['layer']}; see `ddctl layers`)",
    )
    p.add_argument(
        "iterations",
        metavar="ITERATIONS",
        nargs="?",
        type=_positive_int,
        default=ENGINE_DEFAULTS["iterations"],
        help="steps per octave (default 10)",
    )
    p.add_argument(
        "octaves",
        metavar="OCTAVES",
        nargs="?",
        type=_positive_int,
        default=ENGINE_DEFAULTS["octaves"],
        help="number of scales (default 4)",
    )
    p.add_argument(
        "--octave-scale",
        type=_positive_float,
        default=ENGINE_DEFAULTS["octave_scale"],
        metavar="F",
        help="size ratio between octaves (default 1.4)",
    )
    p.add_argument("--step-size", type=_positive_float, metavar="F", help="gradient step (default 1.5)")
    p.add_argument("--jitter", type=_non_negative_int, metavar="PX", help="random shift (default 32)")
    p.add_argument("--seed", type=int, metavar="N", help="random seed, for repeatable pictures")
    p.add_argument(
        "--save-steps",
        action="store_true",
        help="also save every step, in a folder named after the final picture",
    )
    p.add_argument(
        "--max-size",
        type=_non_negative_int,
        metavar="PX",
        default=DEFAULT_MAX_SIZE,
        help=f"scale the input down so its longer side is at most PX (default "
        f"{DEFAULT_MAX_SIZE}; 0 keeps the full size, which needs far more time and memory)",
    )
    p.add_argument(
        "-o",
        "--output-dir",
        default=DEFAULT_OUTPUT,
        metavar="DIR",
        help=f"where the pictures go (default ./{DEFAULT_OUTPUT}, created if missing)",
    )
    p.add_argument("--image", default=DEFAULT_TAG, metavar="TAG", help=f"image tag (default {DEFAULT_TAG})")
    p.add_argument(
        "--no-build", action="store_true", help="when the image does not exist, stop instead of building it"
    )
    p.add_argument(
        "--copy",
        action="store_true",
        help="move files through the Docker API instead of bind mounts "
        "(automatic for a remote daemon; also DDCTL_TRANSFER=copy)",
    )
    p.set_defaults(func=run)
    return p


def _secs(s):
    if s is None:
        return "?"
    s = int(round(s))
    return f"{s // 60}:{s % 60:02d}" if s >= 60 else f"{s} s"


class RunView:
    """Renders RunEvents on ui.err: a rich bar on a terminal, one plain line per step otherwise."""

    def __init__(self, ui, opts):
        self.ui = ui
        self.opts = opts
        self.live = ui.err.is_terminal
        self.progress = None
        self.task = None
        self.state = None

    def say(self, text, style=None):
        self.ui.err.print(text, style=style, markup=False, highlight=False, soft_wrap=True)

    def close(self):
        if self.progress:
            self.progress.stop()
            self.progress = None

    def __call__(self, ev):
        d = ev.data
        if ev.kind == "fetched":
            self.say(f"input: {d['source']} ({d['width']}x{d['height']} {d['format']})")
        elif ev.kind == "build-needed":
            self.say(f"The image {d['tag']} does not exist yet: building it first ({d['command']}).")
        elif ev.kind == "image":
            if d.get("weights") == "untrained":
                warn_untrained(self.ui, d["tag"])
        elif ev.kind == "transfer":
            if d["mode"] == "mount":
                self.say(f"files: {d['output_dir']} bind-mounted into the container, as {d['why']}")
            else:
                self.say(
                    f"files: copied in and out through the Docker API, as {d['why']}; "
                    f"results into {d['output_dir']}"
                )
        elif ev.kind == "start":
            self.state = DreamProgress(d, self.opts.octave_scale)
            self.say(
                f"dreaming on {d.get('layer')}: {d.get('width')}x{d.get('height')}, "
                f"{d.get('octaves')} octaves x {d.get('iterations')} iterations"
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
                self.task = self.progress.add_task("starting", total=1000, info="")
        elif ev.kind == "step" and self.state is not None:
            st = self.state
            st.update(d)
            where = f"octave {st.octave + 1}/{st.octaves} iteration {st.iteration + 1}/{st.iterations}"
            info = f"elapsed {_secs(st.elapsed)}  ETA {_secs(st.eta)}"
            if self.progress:
                self.progress.update(
                    self.task,
                    completed=int(st.fraction * 1000),
                    description=where,
                    info=f"{d.get('width')}x{d.get('height')}  {info}",
                )
            else:
                self.say(
                    f"step {st.step}/{st.steps_total}: {where} ({d.get('width')}x{d.get('height')})  {info}"
                )
        elif ev.kind == "done":
            self.close()
        elif ev.kind == "log" and not self.live:
            pass  # engine's non-JSON lines are kept for errors only


def run(args, ui):
    ep = resolve_endpoint()
    client = make_client(ep)
    opts = DreamOptions(
        layer=args.layer,
        iterations=args.iterations,
        octaves=args.octaves,
        octave_scale=args.octave_scale,
        step_size=args.step_size,
        jitter=args.jitter,
        seed=args.seed,
        save_steps=args.save_steps,
        max_size=args.max_size or None,
    )
    view = RunView(ui, opts)
    build = None
    if not args.no_build:

        def build(tag):
            summary = build_with_view(ui, client, ep, tag)
            ui.err.print(f"built {tag} in {summary.seconds:.0f} s", markup=False, highlight=False)

    try:
        result = dream(
            client,
            args.source,
            opts,
            output_dir=args.output_dir,
            image=args.image,
            transfer="copy" if args.copy else None,
            build=build,
            on_event=view,
            ep=ep,
        )
    finally:
        view.close()
    extra = len(result.files) - 1
    view.say(f"done in {_secs(result.elapsed)}" + (f"; {extra} step pictures saved" if extra > 0 else ""))
    ui.out.print(result.path, markup=False, highlight=False, soft_wrap=True)
    return 0
