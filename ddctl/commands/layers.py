"""`ddctl layers`: parsing and rendering only (the work is ddctl/layers.py)."""

from rich.table import Table

from ddctl.build import DEFAULT_TAG
from ddctl.client import make_client, resolve_endpoint
from ddctl.layers import list_layers


def add_parser(sub):
    p = sub.add_parser(
        "layers",
        help="list the layers one can dream on",
        description="The layers of the image's network: name, channels, stride.",
    )
    p.add_argument("--image", default=DEFAULT_TAG, metavar="TAG", help=f"image tag (default {DEFAULT_TAG})")
    p.set_defaults(func=run)
    return p


def run(args, ui):
    ep = resolve_endpoint()
    client = make_client(ep)
    layers = list_layers(client, args.image, ep)
    table = Table(title=f"layers of {args.image}", title_justify="left")
    table.add_column("layer")
    table.add_column("channels", justify="right")
    table.add_column("stride", justify="right")
    for layer in layers:
        table.add_row(layer["name"], str(layer["channels"]), str(layer["stride"]))
    ui.out.print(table)
    return 0
