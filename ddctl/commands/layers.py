"""`ddctl layers`: parsing and rendering only (the work is ddctl/layers.py)."""

from rich.table import Table

from ddctl.commands.common import add_image_option, clean_leftovers, connect
from ddctl.layers import list_layers


def add_parser(sub):
    p = sub.add_parser(
        "layers",
        help="list the layers one can dream on",
        description="The layers of the image's network: name, channels, stride.",
    )
    add_image_option(p)
    p.set_defaults(func=run)
    return p


def run(args, ui):
    _ep, client = connect()
    clean_leftovers(ui, client)
    layers = list_layers(client, args.image)
    table = Table(title=f"layers of {args.image}", title_justify="left")
    table.add_column("layer")
    table.add_column("channels", justify="right")
    table.add_column("stride", justify="right")
    for layer in layers:
        table.add_row(layer["name"], str(layer["channels"]), str(layer["stride"]))
    ui.out.print(table)
    return 0
