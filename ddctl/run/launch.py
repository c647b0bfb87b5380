"""What every engine container (a dream, a batch, a zoom, a sheet) goes through before and
around its run: the image made sure of (built first when missing and a builder is given),
the transfer chosen (bind mounts or the archive copy), and the fallback to the archive copy
when the daemon cannot see this machine's folders (ddctl in a container, a VM without the
folder shared). Events: build-needed, image, transfer (twice on a fallback).
"""

from typing import Callable, Optional, TypeVar

from ddctl.client import Endpoint
from ddctl.image import build_command, ensure_image, weights_of
from ddctl.run.container import BindUnavailable
from ddctl.run.transfer import choose_transfer

T = TypeVar("T")
Emit = Callable[[str, dict], None]  # emit(kind, data)


def launch(
    client,
    ep: Endpoint,
    image: str,
    outdir: str,
    transfer: Optional[str],
    run: Callable[[str, str], T],
    emit: Emit,
    build: Optional[Callable[[str], object]] = None,
    check: Optional[Callable[[str], None]] = None,
) -> tuple:
    """(mode, run(image id, mode)): the image ensured, the transfer chosen (`transfer` forces
    one), check(mode) called before the first container of the job (e.g. LAYER against the
    net), then run; on BindUnavailable run again with the archive copy."""

    def build_first(tag):
        emit("build-needed", {"tag": tag, "command": build_command(tag)})
        assert build is not None  # build_first is passed only when build is given
        build(tag)

    img = ensure_image(client, image, build_first if build else None)
    emit("image", {"tag": image, "weights": weights_of(img)})
    mode, why = choose_transfer(ep, transfer)
    if check is not None:
        check(mode)
    emit("transfer", {"mode": mode, "why": why, "output_dir": outdir})
    try:
        return mode, run(img.id, mode)
    except BindUnavailable:
        # A "local" socket whose daemon lives elsewhere: the archive copy works wherever
        # the daemon is.
        mode = "copy"
        emit(
            "transfer",
            {"mode": mode, "output_dir": outdir, "why": "the daemon cannot see this machine's folders"},
        )
        return mode, run(img.id, mode)
