"""`ddctl build`: parsing and rendering only (the work is ddctl/build.py)."""

import time

from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from ddctl.build import DEFAULT_TAG, build_image, human_size, weights_buildargs
from ddctl.client import make_client, resolve_endpoint
from ddctl.errors import one_line

UNTRAINED_WARNING = (
    "warning: {tag} holds untrained weights: dreams will show noise-like patterns, "
    "not the 2015 pictures (build with `ddctl build` or `--weights PATH` for real ones)."
)


def add_parser(sub):
    p = sub.add_parser(
        "build",
        help="build the dream image (Caffe, GoogLeNet weights, the engine)",
        description="Build the dream image through the Docker API, with live progress.",
    )
    p.add_argument("--tag", default=DEFAULT_TAG, help=f"image tag (default {DEFAULT_TAG})")
    p.add_argument(
        "--weights",
        default="download",
        metavar="download|untrained|PATH",
        help="where the GoogLeNet weights come from: download them (SHA1-checked, the "
        "default), untrained (Caffe-initialised, for tests), or a .caffemodel file",
    )
    p.add_argument("--weights-url", metavar="URL", help="download the weights from URL instead")
    p.add_argument("--weights-sha1", metavar="HEX", help="the SHA1 the file at --weights-url must have")
    p.add_argument("--no-cache", action="store_true", help="rebuild every step")
    p.set_defaults(func=run)
    return p


class BuildView:
    """Renders BuildEvents on ui.err: rich bars on a terminal, plain lines otherwise."""

    def __init__(self, ui):
        self.ui = ui
        self.live = ui.err.is_terminal
        self.progress = None
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
        if ev.kind == "step":
            line = f"step {ev.step}/{ev.steps_total}: {one_line(ev.text, 100)}"
            if self.live:
                if self.task is None:
                    self.task = self.progress.add_task(ev.text, total=ev.steps_total, step="")
                self.progress.update(
                    self.task,
                    completed=ev.step - 1,
                    total=ev.steps_total,
                    step=f"{ev.step}/{ev.steps_total}",
                    description=one_line(ev.text, 60),
                )
                self.progress.console.print(f"[dim]{line}[/]", markup=True, highlight=False, soft_wrap=True)
            else:
                self.ui.err.print(line, markup=False, highlight=False, soft_wrap=True)
        elif ev.kind == "log" and self.live and self.task is not None:
            self.progress.update(self.task, description=one_line(ev.text, 60))
        elif ev.kind == "download":
            if self.live:
                if self.dl_task is None:
                    self.dl_task = self.progress.add_task(
                        f"downloading {ev.text}",
                        total=ev.total,
                        step="",
                    )
                self.progress.update(
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
        elif ev.kind == "done" and self.live and self.task is not None:
            self.progress.update(self.task, completed=ev.steps_total)


def _bytes(current, total):
    return f"{human_size(current or 0)} of {human_size(total)}" if total else human_size(current or 0)


def render_summary(ui, s):
    ui.out.print(f"built {s.tag}", markup=False, highlight=False, soft_wrap=True)
    ui.out.print(f"  image    {s.image_id.split(':')[-1][:12]}", markup=False, highlight=False)
    ui.out.print(f"  size     {human_size(s.size)}", markup=False, highlight=False)
    weights = s.weights + (f" (sha1 {s.weights_sha1})" if s.weights_sha1 else "")
    ui.out.print(f"  weights  {weights}", markup=False, highlight=False, soft_wrap=True)
    ui.out.print(f"  time     {s.seconds:.0f} s", markup=False, highlight=False)
    if s.weights == "untrained":
        warn_untrained(ui, s.tag)


def warn_untrained(ui, tag):
    ui.err.print(
        UNTRAINED_WARNING.format(tag=tag), style="yellow", markup=False, highlight=False, soft_wrap=True
    )


def build_with_view(ui, client, ep, tag, **kw):
    # Refuse clashing options before saying anything else.
    weights_buildargs(kw.get("weights"), kw.get("weights_url"), kw.get("weights_sha1"))
    ui.err.print(
        f"building {tag} (a first build takes a few minutes; later ones reuse the cache)",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    with BuildView(ui) as view:
        return build_image(client, tag=tag, on_event=view, ep=ep, **kw)


def run(args, ui):
    ep = resolve_endpoint()
    client = make_client(ep)
    summary = build_with_view(
        ui,
        client,
        ep,
        args.tag,
        weights=args.weights,
        weights_url=args.weights_url,
        weights_sha1=args.weights_sha1,
        nocache=args.no_cache,
    )
    render_summary(ui, summary)
    return 0
