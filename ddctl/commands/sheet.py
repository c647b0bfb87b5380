"""`ddctl sheet`: parsing and rendering only (the work is ddctl/modes.py; the cells are read by ddctl/objective.py)."""

from ddctl import objective
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
from ddctl.modes import ModeJob, run_mode, source_in
from ddctl.run.dream import prepare
from ddctl.run.options import DreamOptions, mode_command

SHEET_MAX_SIZE = 512  # px: a sheet of every layer is dozens of cells


def add_parser(sub):
    p = sub.add_parser(
        "sheet",
        help="a contact sheet: the picture dreamed on several layers (or channels), one labelled cell each",
        description="Dream on a picture once per layer (or per channel of a layer), with the same "
        "seed, in one container, and put the results in one PNG grid, each cell labelled with "
        "its layer. The last line printed is the sheet's path. Give --layers or --channels, not "
        "both (to mix, list channels in --layers: L1,L2:97).",
    )
    p.add_argument("source", metavar="SOURCE", help="an http(s) URL or a picture file")
    p.add_argument(
        "--layers",
        metavar="all|L1,L2,...",
        help="one cell per layer: `all` (every layer `ddctl layers` lists, or --model's) or a "
        "comma-separated list; each may be an objective (L:97, A*1+B*0.5, as LAYER of `ddctl run`)",
    )
    p.add_argument(
        "--channels",
        metavar="LAYER:0-15",
        help="one cell per channel of LAYER (ranges and lists: 0-7,12), to pick a channel for an objective",
    )
    add_dream_options(p, SHEET_MAX_SIZE, layer=False, results="the sheets")
    p.set_defaults(func=run)
    return p


def sheet_command(source_in_container: str, name: str, args, opts: DreamOptions) -> list:
    """The engine's argv for a sheet: options first, positionals after `--`."""
    mine = []
    if args.layers is not None:
        mine += ["--layers", args.layers]
    if args.channels is not None:
        mine += ["--channels", args.channels]
    return mode_command("sheet", mine, source_in_container, name, opts)


def options_of(args) -> DreamOptions:
    opts = dream_options_of(args)
    opts.layer = "-"  # the cells are --layers or --channels
    opts.max_size = args.max_size or None
    return opts


def run(args, ui):
    check_tag(args.image, "--image")
    specs = objective.check_cells(args.layers, args.channels, args.model)  # the cells' grammar, first
    if args.guide and args.channels is not None:
        raise UsageError("--guide works on whole layers, not on channels: give --layers.")
    check_guided(args.guide, specs, args.model)
    opts = options_of(args)
    view = UnitsView(ui, "cell", "sheet of")
    transfer = "copy" if args.copy else None
    with temp_folder() as workdir:  # ddctl-<pid>-XXXX: a killed run's is found and removed
        # everything that needs no Docker first: the picture and the guide (fetched and
        # verified here), the model (downloaded)
        pre = prepare(
            args.source, workdir, None, output_dir=args.output_dir, transfer=transfer, on_event=view
        )
        opts.guide = guide_picture(ui, args.guide, workdir)
        opts.model = resolve_model(ui, args.model)
        with discarded_unless_accepted(opts.model):
            cmd = sheet_command(source_in(pre.picture), pre.picture.stem, args, opts)
            job = ModeJob("sheet", cmd, pre.outdir, pre.picture, transfer, opts=opts, objectives=specs)
            ep, client, build = dream_session(ui, args.no_build)
            try:
                result = run_mode(client, job, ep, image=args.image, build=build, on_event=view)
            finally:
                view.close()
    say(ui, f"done in {seconds(result.done.get('elapsed'))}: {result.done.get('cells')} cells")
    ui.out.print(result.path, markup=False, highlight=False, soft_wrap=True)
    return 0
