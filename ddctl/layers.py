"""The layers one can dream on, read from the image's own network definition (or from a
--model's), cached per image ID and model.

Runs the image with `--list-layers` (no network, as the invoking user, labelled
io.ddctl.run=<id>, removed after) and returns its list of {name, channels, stride}. With a
model, the engine first checks that the weights fit the prototxt (`--check-model`); the
model reaches the container read-only (bind mount, or the archive copy for a remote daemon).
A listing is cached under <cache>/layers/ (ddctl.models.cache_dir), so `ddctl run` checks
LAYER on the host before any container once an image and model have been listed.
"""

import json
import os
from typing import Optional

from docker.errors import APIError
from docker.types import Mount

from ddctl import containers
from ddctl.errors import DdctlError, UsageError, one_line
from ddctl.image import DEFAULT_TAG, ensure_image
from ddctl.models import cache_dir
from ddctl.run.archive import model_archive
from ddctl.run.options import INPUT_DIR, MODEL_DIR, model_args


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


def _engine_error(stdout: str) -> Optional[str]:
    for line in stdout.splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and obj.get("event") == "error" and obj.get("message"):
            return one_line(obj["message"])
    return None


def _cache_path(image_id: str, model) -> str:
    key = model.key if model is not None else "image"
    return os.path.join(cache_dir(), "layers", f"{image_id.split(':')[-1][:16]}-{key}.json")


def cached_layers(image_id: str, model=None) -> Optional[list]:
    try:
        with open(_cache_path(image_id, model), encoding="utf-8") as f:
            rows = json.load(f)
        return rows if isinstance(rows, list) else None
    except (OSError, ValueError):
        return None


def _store(image_id: str, model, rows: list) -> None:
    path = _cache_path(image_id, model)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(rows, f)
        os.replace(tmp, path)
    except OSError:
        pass  # a cache only


def list_layers(client, image: str = DEFAULT_TAG, labels=None, model=None, mode: str = "mount") -> list:
    """The dreamable layers of the image (or of `model` in it); SDK errors propagate to the
    CLI's error boundary. A model whose weights do not fit, or that Caffe cannot load, is a
    UsageError in one line."""
    img = ensure_image(client, image)
    rows = cached_layers(img.id, model)
    if rows is not None:
        return rows
    command = ["--list-layers", "--progress", "json"] + model_args(model)
    if model is not None:
        command.append("--check-model")
    try:
        code, out, err = _run(client, img.id, command, labels, model, mode)
    except APIError as exc:
        if mode == "mount" and model is not None and "bind source path does not exist" in str(exc):
            code, out, err = _run(client, img.id, command, labels, model, "copy")
        else:
            raise
    if code != 0:
        message = _engine_error(out)
        if model is not None:
            if message is None:  # Caffe aborted: its last fatal line says why
                fatal = [x for x in err.splitlines() if x.startswith("F") or "Check failed" in x]
                message = one_line((fatal or err.splitlines() or [f"exit {code}"])[-1].split("] ", 1)[-1])
            raise UsageError(f"the model {model.name} does not load: {message}")
        if code == 2 and message:
            raise UsageError(message)
        tail = " ".join(err.split()[-60:])[-300:]
        raise DdctlError(f"The image {image} could not list its layers (exit {code}): {tail}")
    rows = parse_layers(out)
    _store(img.id, model, rows)
    return rows


def _run(client, image_id, command, labels, model, mode):
    run_id = containers.new_run_id()
    kwargs = containers.engine_settings("layers", run_id, command, labels, client=client)
    if model is not None and mode == "mount":
        kwargs["mounts"] = [Mount(MODEL_DIR, model.folder, type="bind", read_only=True)]
    if model is None or mode == "mount":
        return containers.run_to_completion(client, image_id, **kwargs)
    # the root is read-only: the model's files go into an anonymous volume at the input folder
    kwargs["mounts"] = [Mount(INPUT_DIR, None, type="volume")]
    container = containers.create(client, image_id, **kwargs)
    try:
        uid, gid = containers.container_ids()
        container.put_archive(INPUT_DIR, model_archive(model, uid, gid))
        container.start()
        code = int(container.wait().get("StatusCode", 1))
        out = container.logs(stdout=True, stderr=False).decode("utf-8", "replace")
        err = container.logs(stdout=False, stderr=True).decode("utf-8", "replace")
        return code, out, err
    finally:
        try:
            container.remove(force=True, v=True)  # v: the input volume too
        except Exception:
            pass
