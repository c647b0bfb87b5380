"""`ddctl run`: parsing and rendering only (the work is ddctl/run/ and ddctl/fetch.py)."""

import tempfile

from rich.progress import BarColumn, Progress, TextColumn

from ddctl.commands.common import (
    add_image_option,
    build_with_view,
    connect,
    non_negative_int,
    positive_float,
    positive_int,
    say,
    seconds,
    warn_if_untrained,
)
from ddctl.run.dream import dream, prepare
from ddctl.run.naming import DEFAULT_OUTPUT
from ddctl.run.options import DEFAULT_MAX_SIZE, ENGINE_DEFAULTS, DreamOptions
from ddctl.run.progress import DreamProgress


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
        type=positive_int,
        default=ENGINE_DEFAULTS["iterations"],
        help=f"steps per octave (default {ENGINE_DEFAULTS['iterations']})",
    )
    p.add_argument(
        "octaves",
        metavar="OCTAVES",
        nargs="?",
        type=positive_int,
        default=ENGINE_DEFAULTS["octaves"],
        help=f"number of scales (default {ENGINE_DEFAULTS['octaves']})",
    )
    p.add_argument(
        "--octave-scale",
        type=positive_float,
        default=ENGINE_DEFAULTS["octave_scale"],
        metavar="F",
        help=f"size ratio between octaves (default {ENGINE_DEFAULTS['octave_scale']})",
    )
    p.add_argument(
        "--step-size",
        type=positive_float,
        metavar="F",
        help=f"gradient step (default {ENGINE_DEFAULTS['step_size']})",
    )
    p.add_argument(
        "--jitter",
        type=non_negative_int,
        metavar="PX",
        help=f"random shift (default {ENGINE_DEFAULTS['jitter']})",
    )
    p.add_argument("--seed", type=int, metavar="N", help="random seed, for repeatable pictures")
    p.add_argument(
        "--save-steps",
        action="store_true",
        help="also save every step, in a folder named after the final picture",
    )
    p.add_argument(
        "--max-size",
        type=non_negative_int,
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
    p.set_defaults(func=run)
    return p


def options_of(args) -> DreamOptions:
    return DreamOptions(
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
        say(self.ui, text, style)

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
            warn_if_untrained(self.ui, d["tag"], d.get("weights"))
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
            info = f"elapsed {seconds(st.elapsed)}  ETA {seconds(st.eta)}"
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
        # "log" (the engine's non-JSON lines) is kept for error messages only


def run(args, ui):
    opts = options_of(args)
    view = RunView(ui, opts)
    build = None
    with tempfile.TemporaryDirectory(prefix="ddctl-") as workdir:
        # Everything that needs no Docker first: the transfer setting, the output folder,
        # the picture (downloaded and verified here).
        job = prepare(
            args.source,
            workdir,
            opts,
            output_dir=args.output_dir,
            transfer="copy" if args.copy else None,
            on_event=view,
        )
        ep, client = connect()
        if not args.no_build:

            def build(tag):
                summary = build_with_view(ui, client, tag)
                say(ui, f"built {tag} in {summary.seconds:.0f} s")

        try:
            result = dream(client, job, ep, image=args.image, build=build, on_event=view)
        finally:
            view.close()
    extra = len(result.files) - 1
    view.say(f"done in {seconds(result.elapsed)}" + (f"; {extra} step pictures saved" if extra > 0 else ""))
    ui.out.print(result.path, markup=False, highlight=False, soft_wrap=True)
    return 0
