"""`ddctl zoom`: parsing and rendering only (the work is ddctl/zoom.py and ddctl/modes.py)."""

import argparse
import math
import tempfile

from ddctl import objective
from ddctl.commands.common import (
    UnitsView,
    add_dream_options,
    builder,
    connect,
    dream_options_of,
    say,
    seconds,
)
from ddctl.errors import UsageError
from ddctl.image import check_tag
from ddctl.modes import ModeJob, run_mode, source_in
from ddctl.run.dream import prepare
from ddctl.run.naming import prepare_output_dir
from ddctl.run.options import DEFAULT_MAX_SIZE, ENGINE_DEFAULTS
from ddctl.run.transfer import forced_transfer
from ddctl.zoom import ZoomOptions, check_resume, find_resume, resume_command, zoom_command


def _number(kind, lo, hi, what):
    def parse(text):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number")
        if (kind is float and not math.isfinite(v)) or v < lo or v > hi:
            raise argparse.ArgumentTypeError(f"{what} goes from {lo} to {hi}, not {text}")
        return v

    return parse


def add_parser(sub):
    p = sub.add_parser(
        "zoom",
        help="the 2015 zoom animation: dream, zoom in a little, dream again; prints the video's path",
        description="Dream on a picture, zoom into it a little (the notebook's affine zoom), dream "
        "again, FRAMES times, in one container. Frames are written as they are made into "
        "<name>-zoom-<layer>/NNNN.png; at the end an MP4 (H.264) and a GIF are made beside that "
        "folder. The last line printed is the video's path. An interrupted zoom continues with --resume.",
    )
    p.add_argument(
        "source", metavar="SOURCE", help="an http(s) URL or a picture file (or, with --resume, a zoom folder)"
    )
    p.add_argument(
        "layer",
        metavar="LAYER",
        nargs="?",
        default=None,
        help=f"layer to amplify (default {ENGINE_DEFAULTS['layer']}; see `ddctl layers`)",
    )
    add_dream_options(p, DEFAULT_MAX_SIZE, defaults_none=True)
    p.add_argument(
        "--frames", type=_number(int, 1, 9999, "--frames"), metavar="N", help="frames (default 100)"
    )
    p.add_argument(
        "--scale",
        type=_number(float, 0.0, 0.5, "--scale"),
        metavar="S",
        help="zoom per frame, the notebook's s: each frame shows 1-S of the previous one (default 0.05)",
    )
    p.add_argument(
        "--rotate",
        type=_number(float, -45.0, 45.0, "--rotate"),
        metavar="DEG",
        help="degrees turned per frame, counter-clockwise (default 0)",
    )
    p.add_argument(
        "--fps",
        type=_number(float, 0.1, 120.0, "--fps"),
        metavar="F",
        help="frames per second of the video (default 25)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the newest unfinished zoom of SOURCE (or the zoom folder SOURCE) from its last complete frame",
    )
    p.set_defaults(func=run)
    return p


def options_of(args) -> ZoomOptions:
    return dream_options_of(
        args, ZoomOptions, frames=args.frames, scale=args.scale, rotate=args.rotate, fps=args.fps
    )


def with_defaults(opts: ZoomOptions) -> ZoomOptions:
    for key, value in ENGINE_DEFAULTS.items():
        if getattr(opts, key) is None:
            setattr(opts, key, value)
    if opts.max_size is None:
        opts.max_size = DEFAULT_MAX_SIZE
    opts.max_size = opts.max_size or None  # 0: the full size
    return opts


def run(args, ui):
    check_tag(args.image, "--image")
    if args.layer is not None:
        objective.check_spec(args.layer, getattr(args, "model", None))
    opts = options_of(args)
    view = UnitsView(ui, "frame", "zooming on")
    transfer = "copy" if args.copy else None
    with tempfile.TemporaryDirectory(prefix="ddctl-") as workdir:
        if args.resume:
            forced_transfer(transfer)
            outdir = prepare_output_dir(args.output_dir)
            folder = find_resume(outdir, args.source, opts.layer)
            given = {k: v for k, v in vars(opts).items() if k not in ("save_steps", "max_size")}
            check_resume(f"{outdir}/{folder}", given)
            if opts.max_size is not None:
                raise UsageError("--max-size cannot change when a zoom is resumed: drop it.")
            say(ui, f"resuming {outdir}/{folder}")
            job = ModeJob("zoom", resume_command(folder), outdir, None, transfer, resume=folder)
        else:
            opts = with_defaults(opts)
            pre = prepare(
                args.source, workdir, None, output_dir=args.output_dir, transfer=transfer, on_event=view
            )
            cmd = zoom_command(source_in(pre.picture), pre.picture.stem, opts)
            job = ModeJob("zoom", cmd, pre.outdir, pre.picture, transfer)
        ep, client = connect()
        build = builder(ui, client, args.no_build)
        try:
            result = run_mode(client, job, ep, image=args.image, build=build, on_event=view)
        finally:
            view.close()
    done = result.done
    say(
        ui,
        f"done in {seconds(done.get('elapsed'))}; frames in {result.path[:-4]}/, GIF {result.path[:-4]}.gif",
    )
    ui.out.print(result.path, markup=False, highlight=False, soft_wrap=True)
    return 0
