"""`ddctl models`: the networks one can dream with, known and present (ddctl/models.py)."""

import json

from rich.table import Table

from ddctl.models import cache_dir, listing, models_dir


def add_parser(sub):
    p = sub.add_parser(
        "models",
        help="list the networks one can dream with (--model NAME|DIR)",
        description="Known models (name, default layer, mean, SHA1, source) and whether they are "
        "present; a folder holding deploy.prototxt and one .caffemodel works too.",
    )
    p.add_argument("--json", action="store_true", help="one JSON document instead of a table")
    p.set_defaults(func=run)
    return p


def run(args, ui):
    rows = listing()
    if args.json:
        ui.out.print_json(json.dumps({"cache": models_dir(), "models": rows}))
        return 0
    table = Table(title=f"models (cache: {cache_dir()})", title_justify="left")
    for col in ("name", "present", "default layer", "mean (BGR)", "SHA1", "source"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["name"], r["present"], r["layer"], r["mean"], r["sha1"], r["source"])
    ui.out.print(table)
    ui.err.print(
        "Also: --model FOLDER with deploy.prototxt and one .caffemodel "
        '(optional ddctl-model.json: {"mean": [B, G, R], "layer": "..."}).',
        markup=False,
        highlight=False,
    )
    return 0
