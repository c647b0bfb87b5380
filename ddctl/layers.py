"""The layers one can dream on, read from the image's own network definition.

Runs the image with `--list-layers` (no network, as the invoking user, labelled
io.ddctl.run=<id>, removed after) and returns its list of {name, channels, stride}.
"""

import json
import uuid

from ddctl.build import DEFAULT_TAG
from ddctl.client import translate_errors
from ddctl.containers import run_to_completion
from ddctl.errors import DdctlError
from ddctl.run import RUN_LABEL, as_invoking_user, ensure_image, extra_labels


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


def list_layers(client, image=DEFAULT_TAG, ep=None, labels=None):
    img = ensure_image(client, image, None, None, ep)
    run_id = uuid.uuid4().hex[:12]
    kwargs = as_invoking_user(
        dict(
            command=["--list-layers"],
            name=f"ddctl-layers-{run_id}",
            labels={**extra_labels(), **(labels or {}), RUN_LABEL: run_id},
            network_disabled=True,
            network_mode="none",
        )
    )
    with translate_errors(ep):
        code, out, err = run_to_completion(client, img.id, **kwargs)
    if code != 0:
        tail = " ".join(err.split()[-60:])[-300:]
        raise DdctlError(f"The image {image} could not list its layers (exit {code}): {tail}")
    return parse_layers(out)
