"""What several commands share: argument types and options, the Docker connection, the
build's live view (`ddctl build`, and `ddctl run` when the image is missing), warnings.

Command modules import this one, never each other.
"""

import argparse
import time
from typing import Optional

from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from ddctl.build import BuildSummary, build_image, human_size
from ddctl.client import Endpoint, make_client, resolve_endpoint
from ddctl.errors import one_line
from ddctl.image import DEFAULT_TAG, UNTRAINED, WeightsChoice

UNTRAINED_WARNING = (
    "warning: {tag} holds untrained weights: dreams will show noise-like patterns, "
    "not the 2015 pictures (build with `ddctl build` or `--weights PATH` for real ones)."
)


# --- arguments ---------------------------------------------------------------------------


def number(kind, minimum, strict):
    """An argparse type: `kind` (int or float) at least `minimum` (more than it if strict)."""
    noun = "whole number" if kind is int else "number"
    bound = f"more than {minimum}" if strict else f"{minimum} or more"

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {noun}")
        if value < minimum or (strict and value == minimum):
            raise argparse.ArgumentTypeError(f"{text!r} must be {bound}")
        return value

    return parse


positive_int = number(int, 1, strict=False)
positive_float = number(float, 0, strict=True)
non_negative_int = number(int, 0, strict=False)


def add_image_option(parser: argparse.ArgumentParser) -> None:
    """--image TAG (default the dream image's tag)."""
    parser.add_argument(
        "--image", default=DEFAULT_TAG, metavar="TAG", help=f"image tag (default {DEFAULT_TAG})"
    )


# --- Docker ------------------------------------------------------------------------------


def connect(timeout: int = 60) -> tuple:
    """(endpoint, docker client) for the endpoint in effect. Call it only once everything
    that needs no Docker has been checked; SDK errors reach the CLI's error boundary."""
    ep: Endpoint = resolve_endpoint()
    return ep, make_client(ep, timeout=timeout)


# --- rendering -----------------------------------------------------------------------------


def say(ui, text: str, style=None) -> None:
    """One plain line on stderr (no markup, no highlighting)."""
    ui.err.print(text, style=style, markup=False, highlight=False, soft_wrap=True)


def seconds(s) -> str:
    """12 -> '12 s', 75 -> '1:15', None -> '?'."""
    if s is None:
        return "?"
    s = int(round(s))
    return f"{s // 60}:{s % 60:02d}" if s >= 60 else f"{s} s"


def warn_untrained(ui, tag: str) -> None:
    say(ui, UNTRAINED_WARNING.format(tag=tag), style="yellow")


def warn_if_untrained(ui, tag: str, weights: str) -> None:
    if weights == UNTRAINED:
        warn_untrained(ui, tag)


class BuildView:
    """Renders BuildEvents on ui.err: rich bars on a terminal, plain lines otherwise."""

    def __init__(self, ui):
        self.ui = ui
        self.live = ui.err.is_terminal
        self.progress: Optional[Progress] = None
        self.task = None
        self.dl_task = None
        self._last_dl = 0.0

    def __enter__(self):
        if self.live:
            self.progress = Progress(
                SpinnerColumn(),
                TextColumn("[bold]step {task.fields[step]}"),
                BarColumn(bar_width=24),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=self.ui.err,
                transient=True,
            )
            self.progress.start()
        return self

    def __exit__(self, *exc):
        if self.progress:
            self.progress.stop()

    def __call__(self, ev):
        progress = self.progress  # set (by __enter__) exactly when the screen is live
        if ev.kind == "step":
            line = f"step {ev.step}/{ev.steps_total}: {one_line(ev.text, 100)}"
            if progress is not None:
                if self.task is None:
                    self.task = progress.add_task(ev.text, total=ev.steps_total, step="")
                progress.update(
                    self.task,
                    completed=ev.step - 1,
                    total=ev.steps_total,
                    step=f"{ev.step}/{ev.steps_total}",
                    description=one_line(ev.text, 60),
                )
                progress.console.print(f"[dim]{line}[/]", markup=True, highlight=False, soft_wrap=True)
            else:
                self.ui.err.print(line, markup=False, highlight=False, soft_wrap=True)
        elif ev.kind == "log" and progress is not None and self.task is not None:
            progress.update(self.task, description=one_line(ev.text, 60))
        elif ev.kind == "download":
            if progress is not None:
                if self.dl_task is None:
                    self.dl_task = progress.add_task(
                        f"downloading {ev.text}",
                        total=ev.total,
                        step="",
                    )
                progress.update(
                    self.dl_task,
                    completed=ev.current,
                    total=ev.total,
                    description=f"downloading {ev.text}: {_bytes(ev.current, ev.total)}",
                )
            elif time.monotonic() - self._last_dl > 5 or (ev.total and ev.current == ev.total):
                self._last_dl = time.monotonic()
                self.ui.err.print(
                    f"  downloading {ev.text}: {_bytes(ev.current, ev.total)}", markup=False, highlight=False
                )
        elif ev.kind == "pull":
            self.ui.err.print(ev.text, markup=False, highlight=False, soft_wrap=True)
        elif ev.kind == "done" and progress is not None and self.task is not None:
            progress.update(self.task, completed=ev.steps_total)


def _bytes(current, total):
    return f"{human_size(current or 0)} of {human_size(total)}" if total else human_size(current or 0)


def build_with_view(
    ui, client, tag: str, weights: Optional[WeightsChoice] = None, nocache: bool = False
) -> BuildSummary:
    """Build `tag` with live progress on stderr; weights from image.weights_buildargs()
    (checked by the caller before Docker was asked)."""
    say(ui, f"building {tag} (a first build takes a few minutes; later ones reuse the cache)")
    with BuildView(ui) as view:
        return build_image(client, tag=tag, weights=weights, nocache=nocache, on_event=view)
