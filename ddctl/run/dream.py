"""Dream on a picture: `prepare()` checks everything that needs no Docker (the transfer
setting, the output folder, the picture itself, fetched and verified on this machine),
then `dream()` makes sure the image exists and runs the engine's container.

No rendering here: both call `on_event(RunEvent)`; `dream()` returns a RunResult. The
container runs with no network, as the invoking user, labelled io.ddctl.run=<id>, and is
removed whatever happens (Ctrl-C included).
"""

from dataclasses import dataclass, field
from typing import Callable, Optional

from ddctl import objective
from ddctl.client import Endpoint
from ddctl.containers import memory_limit
from ddctl.fetch import Picture, get_picture
from ddctl.image import DEFAULT_TAG, ensure_image
from ddctl.layers import cached_layers, list_layers
from ddctl.run import container
from ddctl.run.launch import launch
from ddctl.run.naming import DEFAULT_OUTPUT, host_path, prepare_output_dir
from ddctl.run.options import DreamOptions
from ddctl.run.transfer import forced_transfer


@dataclass
class RunEvent:
    kind: str  # fetched | image | build-needed | transfer | container | start | step | saved | done | log
    data: dict = field(default_factory=dict)


@dataclass
class RunResult:
    path: str  # the final picture on the host
    transfer: str  # mount | copy
    files: list  # every host file this run wrote
    elapsed: float
    run_id: str


@dataclass
class DreamJob:
    """A dream checked and ready: everything but Docker is known to be fine."""

    picture: Picture  # verified, on this machine
    opts: DreamOptions
    outdir: str  # absolute, exists, writable
    transfer: Optional[str] = None  # mount | copy when the command forced it (--copy)


def prepare(
    source: str,
    workdir: str,
    opts: Optional[DreamOptions] = None,
    output_dir: str = DEFAULT_OUTPUT,
    transfer: Optional[str] = None,
    on_event: Optional[Callable[[RunEvent], None]] = None,
) -> DreamJob:
    """Check the dream without Docker: transfer setting, output folder, the picture (a URL is
    downloaded into workdir). UsageError (or DdctlError for the network) when something is wrong."""
    on_event = on_event or (lambda e: None)
    forced_transfer(transfer)  # a bad DDCTL_TRANSFER is refused before anything else
    memory_limit()  # and a bad DDCTL_MEMORY
    outdir = prepare_output_dir(output_dir)
    picture = get_picture(source, workdir)
    on_event(
        RunEvent(
            "fetched",
            {
                "source": picture.source,  # a URL's secrets redacted
                "path": picture.path,
                "width": picture.width,
                "height": picture.height,
                "format": picture.format,
            },
        )
    )
    return DreamJob(picture=picture, opts=opts or DreamOptions(), outdir=outdir, transfer=transfer)


def check_objective(
    client, image: str, opts: DreamOptions, mode: str, labels: dict, specs: Optional[list] = None
) -> None:
    """LAYER (or each of `specs`, the LAYERs of a sheet) against the net's layers (cached per
    image and model, else listed by a short container; for the image's own net and plain
    layer names, only a cached list) before the dream's container; a downloaded model is
    checked by the image and only then kept in the cache. UsageError in one line."""
    model = opts.model
    specs = [opts.layer] if specs is None else specs
    if model is None and all(objective.plain_blob(objective.parse(s)) for s in specs):
        # the image's own net and layer names: check against a cached list only (the engine
        # refuses an unknown layer in one line too), so a plain run starts one container
        rows = cached_layers(ensure_image(client, image).id) if specs else None
        if rows is not None:
            _check(specs, rows)
        return
    try:
        rows = list_layers(client, image, labels, model, mode)
    except BaseException:
        if model is not None:
            model.discard()
        raise
    if model is not None:
        model.commit()
    _check(specs, rows)


def _check(specs: list, rows: list) -> None:
    for spec in specs:
        objective.check(objective.parse(spec, [r["name"] for r in rows]), rows)


def dream(
    client,
    job: DreamJob,
    ep: Endpoint,
    image: str = DEFAULT_TAG,
    build: Optional[Callable[[str], object]] = None,
    on_event: Optional[Callable[[RunEvent], None]] = None,
    labels: Optional[dict] = None,
) -> RunResult:
    """Run the prepared dream in a container on `client` (the daemon at `ep`); a RunResult."""
    report: Callable[[RunEvent], None] = on_event or (lambda e: None)

    def emit(kind, data):
        report(RunEvent(kind, data))

    labels = labels or {}
    mode, outcome = launch(
        client,
        ep,
        image,
        job.outdir,
        job.transfer,
        lambda image_id, mode: container.run(
            client, image_id, job.picture, job.opts, job.outdir, mode, emit, labels
        ),
        emit,
        build,
        check=lambda mode: check_objective(client, image, job.opts, mode, labels),
    )
    failure = outcome.failure()
    if failure is not None:
        raise failure
    done = outcome.done
    assert done is not None  # failure() is None only when the engine said "done"
    path = host_path(done.get("path", ""), job.outdir, outcome.copied)
    if mode == "copy":
        files = sorted(outcome.copied.values())
    else:
        files = [host_path(p, job.outdir) for p in outcome.saved if p]
    return RunResult(
        path=path,
        transfer=mode,
        files=files,
        elapsed=float(done.get("elapsed") or 0.0),
        run_id=outcome.run_id,
    )
