"""`ddctl models`: the networks one can dream with, known and present (ddctl/models.py)."""

import json

from rich.table import Table

from ddctl.commands.common import add_image_option, connect
from ddctl.image import WEIGHTS_SHA1_LABEL, check_tag, ensure_image, labels_of, weights_of
from ddctl.layers import cached_layers
from ddctl.models import DEFAULT_MODEL, cache_dir, cached, listing, models_dir


def add_parser(sub):
    p = sub.add_parser(
        "models",
        help="list the networks one can dream with (--model NAME|DIR)",
        description="Known models (name, default layer, mean, SHA1, source) and whether they are "
        "present; a folder holding deploy.prototxt and one .caffemodel works too. With --image, "
        "also what that image holds and which models it has checked (asks Docker).",
    )
    p.add_argument("--json", action="store_true", help="one JSON document instead of a table")
    add_image_option(p)
    p.set_defaults(func=run, image=None)  # without --image the command needs no Docker
    return p


def image_facts(tag: str, rows: list) -> dict:
    """The image's own weights into the first row, and for each known model whether this
    image has checked it (its layer list is cached for the image's ID)."""
    _ep, client = connect()
    img = ensure_image(client, tag)
    sha1 = labels_of(img).get(WEIGHTS_SHA1_LABEL) or "?"
    for row in rows:
        if row["name"] == DEFAULT_MODEL:
            row.update(present=f"in {tag} ({weights_of(img)} weights)", sha1=sha1)
            row["in_image"] = "yes" if cached_layers(img.id) is not None else "layers not listed yet"
            continue
        model = cached(row["name"])
        layers = cached_layers(img.id, model) if model is not None else None
        row["in_image"] = f"checked ({len(layers)} layers)" if layers is not None else "not checked yet"
    return {"tag": tag, "id": img.id, "weights": weights_of(img), "weights_sha1": sha1}


def run(args, ui):
    if args.image is not None:
        check_tag(args.image, "--image")
    rows = listing()
    image = image_facts(args.image, rows) if args.image is not None else None
    if args.json:
        doc: dict = {"cache": models_dir(), "models": rows}
        if image is not None:
            doc["image"] = image
        ui.out.print_json(json.dumps(doc))
        return 0
    table = Table(title=f"models (cache: {cache_dir()})", title_justify="left")
    cols = ["name", "present", "default layer", "mean (BGR)", "SHA1", "source"]
    if image is not None:
        cols.append(f"in {args.image}")
    for col in cols:
        table.add_column(col, overflow="fold")
    for r in rows:
        cells = [r["name"], r["present"], r["layer"], r["mean"], r["sha1"], r["source"]]
        table.add_row(*cells, *([r["in_image"]] if image is not None else []))
    ui.out.print(table)
    ui.err.print(
        "Also: --model FOLDER with deploy.prototxt and one .caffemodel "
        '(optional ddctl-model.json: {"mean": [B, G, R], "layer": "..."}).',
        markup=False,
        highlight=False,
    )
    return 0
