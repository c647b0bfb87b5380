"""`ddctl sheet`: parsing and rendering only (the work is ddctl/modes.py)."""

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
from ddctl.run.options import mode_command

SHEET_MAX_SIZE = 512  # px: a sheet of every layer is dozens of cells


def add_parser(sub):
    p = sub.add_parser(
        "sheet",
        help="a contact sheet: the picture dreamed on several layers (or channels), one labelled cell each",
        description="Dream on a picture once per layer (or per channel of a layer), with the same "
        "seed, in one container, and put the results in one PNG grid, each cell labelled with "
        "its layer. The last line printed is the sheet's path.",
    )
    p.add_argument("source", metavar="SOURCE", help="an http(s) URL or a picture file")
    p.add_argument(
        "--layers",
        metavar="all|L1,L2,...",
        help="one cell per layer: `all` (every layer `ddctl layers` lists) or a comma-separated list",
    )
    p.add_argument(
        "--channels",
        metavar="LAYER:0-15",
        help="one cell per channel of LAYER (ranges and lists: 0-7,12), to pick a channel for an objective",
    )
    add_dream_options(p, SHEET_MAX_SIZE)
    p.set_defaults(func=run)
    return p


def sheet_command(source_in_container: str, name: str, args) -> list:
    """The engine's argv for a sheet: options first, positionals after `--`."""
    mine = []
    if args.layers is not None:
        mine += ["--layers", args.layers]
    if args.channels is not None:
        mine += ["--channels", args.channels]
    opts = dream_options_of(args)
    opts.layer = "all" if args.layers is None and args.channels is None else "-"
    opts.max_size = args.max_size or None
    return mode_command("sheet", mine, source_in_container, name, opts)


def run(args, ui):
    check_tag(args.image, "--image")
    if args.layers is None and args.channels is None:
        raise UsageError("Say what the cells are: --layers all, --layers L1,L2,... or --channels LAYER:0-15.")
    objective.check_cells(args.layers, args.channels)  # their grammar, before anything else
    view = UnitsView(ui, "cell", "sheet of")
    transfer = "copy" if args.copy else None
    with tempfile.TemporaryDirectory(prefix="ddctl-") as workdir:
        pre = prepare(
            args.source, workdir, None, output_dir=args.output_dir, transfer=transfer, on_event=view
        )
        cmd = sheet_command(source_in(pre.picture), pre.picture.stem, args)
        job = ModeJob("sheet", cmd, pre.outdir, pre.picture, transfer)
        ep, client = connect()
        build = builder(ui, client, args.no_build)
        try:
            result = run_mode(client, job, ep, image=args.image, build=build, on_event=view)
        finally:
            view.close()
    say(ui, f"done in {seconds(result.done.get('elapsed'))}: {result.done.get('cells')} cells")
    ui.out.print(result.path, markup=False, highlight=False, soft_wrap=True)
    return 0
