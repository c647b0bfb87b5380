"""Which network a dream runs on: the image's own bvlc_googlenet (the default), a known model
downloaded on this machine, or a folder the user brings.

- Known models (KNOWN) carry their published URL, SHA1 (of what that URL serves), mean
  pixel and default layer. They are downloaded with requests (streamed, SHA1 checked,
  a progress callback), into a staging folder of the cache; a model moves into the cache
  only once the image has checked that its weights fit its prototxt (`commit()`), so
  nothing broken or half-written is ever cached.
- A folder: `deploy.prototxt` and exactly one `.caffemodel`, and optionally `ddctl-model.json`
  (`{"mean": [B, G, R], "layer": "default/layer"}`).

Models reach the container read-only (a bind mount, or the archive copy for a remote
daemon; ddctl/run/container.py). The cache is $DDCTL_CACHE_DIR, else $XDG_CACHE_HOME/ddctl,
else ~/.cache/ddctl (~/Library/Caches/ddctl on macOS, %LOCALAPPDATA%\\ddctl on Windows).
"""

import hashlib
import json
import os
import shutil
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import requests

from ddctl import __version__
from ddctl.caffemodel import NotWeights, walk
from ddctl.errors import DdctlError, UsageError, one_line
from ddctl.image import BVLC_GOOGLENET, BVLC_GOOGLENET_SHA1

DEFAULT_MODEL = BVLC_GOOGLENET  # the image's own
MANIFEST = "ddctl-model.json"
PROTOTXT = "deploy.prototxt"
CHUNK = 1 << 16
CONNECT_TIMEOUT, READ_TIMEOUT = 10, 60


@dataclass(frozen=True)
class KnownModel:
    name: str
    title: str
    url: str  # the weights, or an archive holding prototxt and weights
    sha1: Optional[str]  # of what `url` serves; None: none published (pinned on first download)
    mean: tuple  # (B, G, R)
    layer: str  # default LAYER
    prototxt_url: Optional[str] = None  # None: the archive at `url` holds it
    page: str = ""


KNOWN = {
    m.name: m
    for m in (
        KnownModel(
            "googlenet_places205",
            "GoogLeNet trained on MIT Places205 (buildings, landscapes)",
            "http://places.csail.mit.edu/model/googlenet_places205.tar.gz",
            # the Caffe model zoo's SHA1 covers this archive (download_model_binary.py saves
            # the URL's bytes under the .caffemodel name and hashes them), not the weights inside
            "d767debf686fa15df1e05fbc9b4598076127134a",
            (104.051, 112.514, 116.676),
            "inception_4c/output",
            page="http://places.csail.mit.edu/downloadCNN.html",
        ),
        KnownModel(
            "googlenet_places365",
            "GoogLeNet trained on MIT Places365",
            "http://places2.csail.mit.edu/models_places365/googlenet_places365.caffemodel",
            None,
            (104.0, 117.0, 123.0),
            "inception_4c/output",
            prototxt_url="https://raw.githubusercontent.com/CSAILVision/places365/master/"
            "deploy_googlenet_places365.prototxt",
            page="https://github.com/CSAILVision/places365",
        ),
    )
}


@dataclass
class Model:
    """A model ready for a container: a host folder holding its prototxt and weights."""

    name: str
    folder: str
    prototxt: str  # file name in folder
    weights: str  # file name in folder
    mean: Optional[tuple] = None  # (B, G, R); None: the engine's default (bvlc_googlenet's)
    layer: Optional[str] = None  # default LAYER; None: the engine's default
    key: str = ""  # identifies these files (the layer cache's key)
    staged: bool = False  # downloaded, not yet checked: commit() or discard()
    sources: dict = field(default_factory=dict)

    def commit(self) -> None:
        """The image found the model sound: move it from staging into the cache."""
        if not self.staged:
            return
        final = os.path.join(models_dir(), self.name)
        if os.path.isdir(final):
            shutil.rmtree(final)
        os.replace(self.folder, final)
        self.folder, self.staged = final, False

    def discard(self) -> None:
        if self.staged:
            shutil.rmtree(self.folder, ignore_errors=True)


# --- where ---------------------------------------------------------------------------------


def cache_dir(env=None) -> str:
    env = os.environ if env is None else env
    if env.get("DDCTL_CACHE_DIR"):
        return os.path.abspath(os.path.expanduser(env["DDCTL_CACHE_DIR"]))
    if sys.platform == "darwin":
        return os.path.expanduser("~/Library/Caches/ddctl")
    if os.name == "nt" and env.get("LOCALAPPDATA"):
        return os.path.join(env["LOCALAPPDATA"], "ddctl")
    base = env.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return os.path.join(base, "ddctl")


def models_dir() -> str:
    return os.path.join(cache_dir(), "models")


def _mirror_url(model: KnownModel, url: str) -> str:
    """DDCTL_MODEL_MIRROR=http://host/path: fetch <mirror>/<model>/<file name> instead."""
    mirror = os.environ.get("DDCTL_MODEL_MIRROR", "").rstrip("/")
    if not mirror:
        return url
    return f"{mirror}/{model.name}/{url.rsplit('/', 1)[-1]}"


def _redact(url: str) -> str:
    """The URL without user:password@ or a query string (never print a secret)."""
    import urllib.parse

    p = urllib.parse.urlsplit(url)
    host = p.hostname or ""
    if p.port:
        host += f":{p.port}"
    return urllib.parse.urlunsplit((p.scheme, host, p.path, "", ""))


# --- a folder the user brings --------------------------------------------------------------


def from_folder(path: str) -> Model:
    """A user's folder -> Model; UsageError (one line) when it is not a usable model folder."""
    folder = os.path.abspath(os.path.expanduser(path))
    if not os.path.isdir(folder):
        raise UsageError(
            f"{path}: no such folder (give a known model name, see `ddctl models`, or a folder)."
        )
    names = os.listdir(folder)
    if PROTOTXT not in names:
        raise UsageError(f"{path} has no {PROTOTXT}: a model folder holds {PROTOTXT} and one .caffemodel.")
    weights = sorted(n for n in names if n.endswith(".caffemodel"))
    if len(weights) != 1:
        what = "no .caffemodel" if not weights else f"{len(weights)} .caffemodel files ({', '.join(weights)})"
        raise UsageError(f"{path} holds {what}: a model folder holds {PROTOTXT} and exactly one .caffemodel.")
    name = os.path.basename(folder.rstrip(os.sep)) or "model"
    try:  # a text file, a picture or a cut download: said here, before any container
        walk(os.path.join(folder, weights[0]))
    except NotWeights as exc:
        raise UsageError(f"the model {name} does not load: {weights[0]} is not a Caffe weights file ({exc}).")
    except OSError as exc:
        raise UsageError(f"the model {name} does not load: cannot read {weights[0]} ({exc.strerror}).")
    mean, layer = None, None
    if MANIFEST in names:
        mean, layer = _read_manifest(os.path.join(folder, MANIFEST))
    stats = [os.stat(os.path.join(folder, n)) for n in (PROTOTXT, weights[0])]
    key = hashlib.sha1(
        json.dumps([folder, [(s.st_size, s.st_mtime_ns) for s in stats]]).encode()
    ).hexdigest()[:16]
    return Model(name, folder, PROTOTXT, weights[0], mean, layer, key)


def _read_manifest(path: str) -> tuple:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path} is not a JSON object like {{\"mean\": [104, 117, 123]}}: {one_line(exc)}")
    mean = data.get("mean")
    if mean is not None:
        ok = isinstance(mean, list) and len(mean) == 3
        ok = ok and all(isinstance(v, (int, float)) and 0 <= v <= 255 for v in mean)
        if not ok:
            raise UsageError(f"{path}: \"mean\" must be three numbers from 0 to 255 (blue, green, red).")
        mean = tuple(float(v) for v in mean)
    layer = data.get("layer")
    if layer is not None and (not isinstance(layer, str) or not layer.strip()):
        raise UsageError(f"{path}: \"layer\" must be a layer name.")
    return mean, layer


# --- known models: cache and download ------------------------------------------------------


def cached(name: str) -> Optional[Model]:
    """The known model `name` from the cache, or None when it is not (fully) there."""
    folder = os.path.join(models_dir(), name)
    try:
        with open(os.path.join(folder, "model.json"), encoding="utf-8") as f:
            info = json.load(f)
        weights = info["weights"]
        if not (
            os.path.isfile(os.path.join(folder, PROTOTXT)) and os.path.isfile(os.path.join(folder, weights))
        ):
            return None
    except (OSError, ValueError, KeyError):
        return None
    return Model(
        name,
        folder,
        PROTOTXT,
        weights,
        tuple(info["mean"]) if info.get("mean") else None,
        info.get("layer"),
        info.get("key", ""),
        sources=info.get("sources", {}),
    )


Progress = Callable[[str, int, Optional[int]], None]  # (what, bytes so far, total or None)


def fetch_known(model: KnownModel, on_progress: Optional[Progress] = None, session=None) -> Model:
    """Download a known model into a staging folder of the cache (SHA1 checked); the caller
    commits it once the image has checked it, or discards it. DdctlError/UsageError in one line."""
    on_progress = on_progress or (lambda what, done, total: None)
    root = models_dir()
    try:
        os.makedirs(root, exist_ok=True)
        stage = tempfile.mkdtemp(prefix=f".staging-{model.name}-", dir=root)
    except OSError as exc:
        raise UsageError(
            f"Cannot keep models in {root} ({exc.strerror}): set DDCTL_CACHE_DIR to a folder you can write."
        )
    try:
        sources: dict = {}
        if model.prototxt_url is None:  # one archive holding both
            archive = os.path.join(stage, "download.tar.gz")
            sources["archive"] = _download(model, model.url, model.sha1, archive, on_progress, session)
            weights = _extract(archive, stage, model)
            os.unlink(archive)
        else:
            weights = model.name + ".caffemodel"
            sources["weights"] = _download(
                model, model.url, model.sha1, os.path.join(stage, weights), on_progress, session
            )
            sources["prototxt"] = _download(
                model, model.prototxt_url, None, os.path.join(stage, PROTOTXT), on_progress, session
            )
        key = hashlib.sha1(json.dumps(sorted(sources.items())).encode()).hexdigest()[:16]
        info = dict(
            name=model.name,
            weights=weights,
            mean=list(model.mean),
            layer=model.layer,
            key=key,
            sources=sources,
        )
        with open(os.path.join(stage, "model.json"), "w", encoding="utf-8") as f:
            json.dump(info, f, indent=1)
        return Model(model.name, stage, PROTOTXT, weights, model.mean, model.layer, key, True, sources)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def _download(model, url, sha1, dest, on_progress, session) -> dict:
    """url -> dest (written as dest.part, renamed when complete and its SHA1 right)."""
    url = _mirror_url(model, url)
    shown = _redact(url)
    what = os.path.basename(dest)
    session = session or requests.Session()
    part = dest + ".part"
    h = hashlib.sha1()
    try:
        with session.get(
            url,
            stream=True,
            timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
            headers={"User-Agent": f"ddctl/{__version__}"},
        ) as r:
            if r.status_code != 200:
                raise DdctlError(
                    f"Downloading {model.name} failed: {shown} answered HTTP {r.status_code} {r.reason}; "
                    f"try again later, or download it yourself and use --model FOLDER."
                )
            total = int(r.headers.get("Content-Length") or 0) or None
            done, t0 = 0, time.monotonic()
            with open(part, "wb") as f:
                for chunk in r.iter_content(CHUNK):
                    f.write(chunk)
                    h.update(chunk)
                    done += len(chunk)
                    on_progress(what, done, total)
            if total is not None and done != total:
                raise DdctlError(
                    f"Downloading {model.name} failed: {shown} ended after {done} of {total} bytes; try again."
                )
    except requests.RequestException as exc:
        if os.path.exists(part):
            os.unlink(part)
        raise DdctlError(
            f"Downloading {model.name} failed: cannot fetch {shown} ({type(exc).__name__}); "
            f"check the network, or download it yourself and use --model FOLDER."
        )
    except BaseException:
        if os.path.exists(part):
            os.unlink(part)
        raise
    digest = h.hexdigest()
    if sha1 is not None and digest != sha1:
        os.unlink(part)
        raise DdctlError(
            f"Downloading {model.name} failed: {shown} gave a file with SHA1 {digest}, not the published "
            f"{sha1}; nothing was kept (a changed or broken file: download it yourself and use --model FOLDER)."
        )
    os.replace(part, dest)
    return {"url": shown, "sha1": digest, "bytes": done, "seconds": round(time.monotonic() - t0, 1)}


def _extract(archive: str, stage: str, model: KnownModel) -> str:
    """The archive's deploy prototxt -> stage/deploy.prototxt, its .caffemodel -> stage/<name>.caffemodel."""
    try:
        with tarfile.open(archive) as tar:
            members = [m for m in tar.getmembers() if m.isfile()]
            protos = [m for m in members if m.name.endswith((".prototxt", ".protxt")) and "deploy" in m.name]
            weights = [m for m in members if m.name.endswith(".caffemodel")]
            if len(protos) != 1 or len(weights) != 1:
                raise UsageError(
                    f"the {model.name} archive does not hold one deploy prototxt and one .caffemodel; "
                    f"nothing was kept."
                )
            name = model.name + ".caffemodel"
            for member, target in ((protos[0], PROTOTXT), (weights[0], name)):
                src = tar.extractfile(member)
                if src is None:
                    raise UsageError(
                        f"the {model.name} archive holds an unreadable {member.name}; nothing was kept."
                    )
                with open(os.path.join(stage, target), "wb") as f:
                    shutil.copyfileobj(src, f, CHUNK)
            return name
    except tarfile.TarError as exc:
        raise DdctlError(
            f"the {model.name} download is not a readable archive ({one_line(exc)}); nothing was kept."
        )


def resolve(spec: Optional[str], on_progress: Optional[Progress] = None) -> Optional[Model]:
    """--model NAME|DIR -> Model (a known model downloaded when missing), or None for the
    image's own bvlc_googlenet. UsageError when it is neither a known name nor a folder."""
    if spec is None or spec == DEFAULT_MODEL:
        return None
    if spec in KNOWN:
        return cached(spec) or fetch_known(KNOWN[spec], on_progress)
    if os.sep in spec or "/" in spec or os.path.isdir(spec) or spec.startswith("."):
        return from_folder(spec)
    raise UsageError(
        f"unknown model {spec!r}: give one of {', '.join([DEFAULT_MODEL, *KNOWN])} or a folder "
        f"holding {PROTOTXT} and one .caffemodel (see `ddctl models`)."
    )


def reference(spec: Optional[str]) -> Optional[str]:
    """How a --model is named for later (a resumed zoom's zoom.json): None for the image's
    own, a known model's name, or a folder's absolute path."""
    if spec is None or spec == DEFAULT_MODEL:
        return None
    if spec in KNOWN:
        return spec
    return os.path.abspath(os.path.expanduser(spec))


def listing() -> list:
    """Rows for `ddctl models`: every known model and whether it is cached."""
    rows = [
        dict(
            name=DEFAULT_MODEL,
            title="GoogLeNet trained on ImageNet (the 2015 dreams)",
            present="in the image",
            layer="inception_4c/output",
            mean="104,116,122",
            sha1=BVLC_GOOGLENET_SHA1,
            source="built into the image (ddctl build)",
        )
    ]
    for m in KNOWN.values():
        have = cached(m.name)
        rows.append(
            dict(
                name=m.name,
                title=m.title,
                present=have.folder if have else "not downloaded (fetched on first use)",
                layer=m.layer,
                mean=",".join(f"{v:g}" for v in m.mean),
                sha1=m.sha1 or "not published",
                source=m.url,
            )
        )
    return rows
