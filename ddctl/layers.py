"""The layers one can dream on, read from the image's own network definition.

Runs the image with `--list-layers` (no network, as the invoking user, labelled
io.ddctl.run=<id>, removed after) and returns its list of {name, channels, stride}.
"""

import json

from ddctl import containers
from ddctl.errors import DdctlError
from ddctl.image import DEFAULT_TAG, ensure_image


def parse_layers(stdout):
    """The engine's `{"layers": [...]}` line -> list of dicts; DdctlError when absent."""
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and isinstance(obj.get("layers"), list):
            return [
                {
                    "name": str(layer.get("name")),
                    "channels": layer.get("channels"),
                    "stride": layer.get("stride"),
                }
                for layer in obj["layers"]
                if isinstance(layer, dict)
            ]
    raise DdctlError(
        "The image did not list its layers: is it a ddctl dream image? Rebuild it with `ddctl build`."
    )


def list_layers(client, image: str = DEFAULT_TAG, labels=None) -> list:
    """The image's dreamable layers; SDK errors propagate to the CLI's error boundary."""
    img = ensure_image(client, image)
    run_id = containers.new_run_id()
    kwargs = containers.engine_settings("layers", run_id, ["--list-layers"], labels, client=client)
    code, out, err = containers.run_to_completion(client, img.id, **kwargs)
    if code != 0:
        tail = " ".join(err.split()[-60:])[-300:]
        raise DdctlError(f"The image {image} could not list its layers (exit {code}): {tail}")
    return parse_layers(out)
