"""`ddctl layers`."""
from ddctl.client import make_client


def add_parser(sub):
    p = sub.add_parser("layers", help="layers (not implemented yet)")
    p.set_defaults(func=run)
    return p


def run(args, ui):
    # Until this command lands it at least proves Docker answers, or says why not.
    client = make_client()
    ui.err.print("ddctl layers: not implemented yet (Docker answers: %s)." % client.version().get("Version"))
    return 3
