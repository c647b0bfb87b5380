"""`ddctl layers`: parsing and rendering only (the work is ddctl/layers.py)."""

from rich.table import Table

from ddctl.commands.common import (
    add_image_option,
    add_model_option,
    clean_leftovers,
    connect,
    discarded_unless_accepted,
    resolve_model,
)
from ddctl.image import check_tag
from ddctl.layers import list_layers
from ddctl.run.transfer import choose_transfer


def add_parser(sub):
    p = sub.add_parser(
        "layers",
        help="list the layers one can dream on",
        description="The layers of the image's network (or of --model's): name, channels, stride.",
    )
    add_image_option(p)
    add_model_option(p)
    p.set_defaults(func=run)
    return p


def run(args, ui):
    check_tag(args.image, "--image")  # before Docker is asked
    model = resolve_model(ui, args.model)
    with discarded_unless_accepted(model):
        ep, client = connect()
        clean_leftovers(ui, client)
        mode, _why = choose_transfer(ep)
        layers = list_layers(client, args.image, model=model, mode=mode)
        if model is not None:
            model.commit()
    what = args.image if model is None else f"{model.name} in {args.image}"
    table = Table(title=f"layers of {what}", title_justify="left")
    table.add_column("layer")
    table.add_column("channels", justify="right")
    table.add_column("stride", justify="right")
    for layer in layers:
        table.add_row(layer["name"], str(layer["channels"]), str(layer["stride"]))
    ui.out.print(table)
    return 0
