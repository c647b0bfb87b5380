"""`ddctl zoom`: parsing and rendering only (the work is ddctl/zoom.py and ddctl/modes.py)."""

from ddctl import models
from ddctl.commands.common import (
    UnitsView,
    add_dream_options,
    check_guided,
    discarded_unless_accepted,
    dream_options_of,
    dream_session,
    guide_picture,
    resolve_model,
    say,
    seconds,
)
from ddctl.containers import temp_folder
from ddctl.errors import UsageError
from ddctl.image import check_tag
from ddctl.limits import arg_type
from ddctl.modes import ModeJob, run_mode, source_in
from ddctl.run.dream import prepare
from ddctl.run.naming import prepare_output_dir
from ddctl.run.options import DEFAULT_MAX_SIZE, ENGINE_DEFAULTS
from ddctl.run.transfer import forced_transfer
from ddctl.zoom import (
    ZoomOptions,
    check_noted,
    check_resume,
    find_resume,
    guide_reference,
    note_of,
    noted,
    read_settings,
    resume_command,
    zoom_command,
)


def add_parser(sub):
    p = sub.add_parser(
        "zoom",
        help="the 2015 zoom animation: dream, zoom in a little, dream again; prints the video's path",
        description="Dream on a picture, zoom into it a little (the notebook's affine zoom), dream "
        "again, FRAMES times, in one container. Frames are written as they are made into "
        "<name>-zoom-<layer>/NNNN.png; at the end an MP4 (H.264) and a GIF are made beside that "
        "folder. The last line printed is the video's path. An interrupted zoom continues with "
        "--resume, with the settings, --model and --guide it began with.",
    )
    p.add_argument(
        "source", metavar="SOURCE", help="an http(s) URL or a picture file (or, with --resume, a zoom folder)"
    )
    add_dream_options(p, DEFAULT_MAX_SIZE, defaults_none=True, results="the frames and videos")
    p.add_argument("--frames", type=arg_type("frames", "--frames"), metavar="N", help="frames (default 100)")
    p.add_argument(
        "--scale",
        type=arg_type("scale", "--scale"),
        metavar="S",
        help="zoom per frame, the notebook's s: each frame shows 1-S of the previous one (default 0.05)",
    )
    p.add_argument(
        "--rotate",
        type=arg_type("rotate", "--rotate"),
        metavar="DEG",
        help="degrees turned per frame, counter-clockwise (default 0)",
    )
    p.add_argument(
        "--fps",
        type=arg_type("fps", "--fps"),
        metavar="F",
        help="frames per second of the video (default 25)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the newest unfinished zoom of SOURCE (or the zoom folder SOURCE) from its last "
        "complete frame, with the settings, model and guide it began with",
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
    opts = options_of(args)
    check_guided(args.guide, [args.layer] if args.layer is not None else [], args.model)
    view = UnitsView(ui, "frame", "zooming on")
    transfer = "copy" if args.copy else None
    with temp_folder() as workdir:  # ddctl-<pid>-XXXX: a killed run's is found and removed
        # everything that needs no Docker first (as `ddctl run`): the zoom to resume, or the
        # picture and the guide (fetched and verified here); the model (downloaded)
        if args.resume:
            forced_transfer(transfer)
            outdir = prepare_output_dir(args.output_dir)
            folder = find_resume(outdir, args.source, opts.layer)
            full = f"{outdir}/{folder}"
            given = {
                k: v
                for k, v in vars(opts).items()
                if k not in ("save_steps", "max_size", "model", "guide", "note")
            }
            check_resume(full, given)
            check_noted(full, models.reference(args.model), guide_reference(args.guide))
            if opts.max_size is not None:
                raise UsageError("--max-size cannot change when a zoom is resumed: drop it.")
            say(ui, f"resuming {full}")
            job = ModeJob("zoom", [], outdir, None, transfer, resume=folder)
            job.opts.layer = str((read_settings(full) or {}).get("layer") or ENGINE_DEFAULTS["layer"])
            spec = noted(full).get("model")
        else:
            opts = with_defaults(opts)
            pre = prepare(
                args.source, workdir, None, output_dir=args.output_dir, transfer=transfer, on_event=view
            )
            opts.guide = guide_picture(ui, args.guide, workdir)
            opts.note = note_of(models.reference(args.model), guide_reference(args.guide))
            job = ModeJob("zoom", [], pre.outdir, pre.picture, transfer, opts=opts)
            spec = args.model
        try:
            job.opts.model = resolve_model(ui, spec)
        except UsageError as exc:
            if not args.resume:
                raise
            raise UsageError(f"That zoom was made with --model {spec}: {exc.message}")
        with discarded_unless_accepted(job.opts.model) as model:
            if args.layer is None and not args.resume and model is not None and model.layer:
                opts.layer = model.layer
            job.objectives = [job.opts.layer]
            ep, client, build = dream_session(ui, args.no_build)
            try:
                # the argv once the model is known (and committed to the cache by the check)
                if job.resume:
                    job.command = resume_command(job.resume, model)
                else:
                    assert job.picture is not None  # a new zoom has its picture
                    job.command = zoom_command(source_in(job.picture), job.picture.stem, opts)
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
