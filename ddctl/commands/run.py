"""`ddctl run`: parsing and rendering only (the work is ddctl/run/ and ddctl/fetch.py)."""

import time

from rich.progress import BarColumn, Progress, TextColumn

from ddctl.commands.common import (
    add_dream_options,
    check_guided,
    discarded_unless_accepted,
    dream_options_of,
    dream_session,
    guide_picture,
    resolve_model,
    say,
    seconds,
    warn_if_untrained,
)
from ddctl.containers import temp_folder
from ddctl.errors import DdctlError
from ddctl.fetch import check_settings
from ddctl.image import check_tag
from ddctl.run.batch import is_batch_source, prepare_batch, run_batch
from ddctl.run.dream import dream, prepare
from ddctl.run.options import DEFAULT_MAX_SIZE, ENGINE_DEFAULTS, DreamOptions
from ddctl.run.progress import DreamProgress


def add_parser(sub):
    p = sub.add_parser(
        "run",
        help="dream on a picture (URL or file) or on many (a folder, a .txt list); prints the new pictures' paths",
        description="Dream on a picture from an http(s) URL or a file. The picture is checked on "
        "this machine, dreamed on in a container with no network, and written to the "
        "output folder; the last line printed is its path. SOURCE may also be a folder (every "
        "picture in it) or a .txt file listing URLs and files one a line: all are dreamed in one "
        "container, results whose file exists are skipped (--force redoes them), and "
        "manifest.jsonl in the output folder records each picture.",
    )
    p.add_argument(
        "source",
        metavar="SOURCE",
        help="an http(s) URL, a picture file, a folder of pictures, or a .txt list of URLs and files",
    )
    add_dream_options(p, DEFAULT_MAX_SIZE)
    p.add_argument(
        "--save-steps",
        action="store_true",
        help="also save every step, in a folder named after the final picture",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="with a folder or list: dream again the pictures whose result exists (default: skip them)",
    )
    p.set_defaults(func=run)
    return p


def options_of(args) -> DreamOptions:
    opts = dream_options_of(args)
    opts.layer = str(args.layer or ENGINE_DEFAULTS["layer"])
    opts.max_size = args.max_size or None
    return opts


class RunView:
    """Renders RunEvents on ui.err: a rich bar on a terminal, one plain line per step otherwise."""

    def __init__(self, ui, opts):
        self.ui = ui
        self.opts = opts
        self.live = ui.err.is_terminal
        self.progress = None
        self.task = None
        self.state = None

    def say(self, text, style=None):
        say(self.ui, text, style)

    def close(self):
        if self.progress:
            self.progress.stop()
            self.progress = None

    def __call__(self, ev):
        d = ev.data
        if ev.kind == "fetched":
            self.say(f"input: {d['source']} ({d['width']}x{d['height']} {d['format']})")
        elif ev.kind == "build-needed":
            self.say(f"The image {d['tag']} does not exist yet: building it first ({d['command']}).")
        elif ev.kind == "image":
            warn_if_untrained(self.ui, d["tag"], d.get("weights"))
        elif ev.kind == "transfer":
            if d["mode"] == "mount":
                self.say(f"files: {d['output_dir']} bind-mounted into the container, as {d['why']}")
            else:
                self.say(
                    f"files: copied in and out through the Docker API, as {d['why']}; "
                    f"results into {d['output_dir']}"
                )
        elif ev.kind == "start":
            self.state = DreamProgress(d, self.opts.octave_scale)
            self.say(
                f"dreaming on {d.get('layer')}: {d.get('width')}x{d.get('height')}, "
                f"{d.get('octaves')} octaves x {d.get('iterations')} iterations"
            )
            if self.live:
                self.progress = Progress(
                    TextColumn("[bold]{task.description}"),
                    BarColumn(bar_width=30),
                    TextColumn("{task.percentage:>3.0f}%"),
                    TextColumn("{task.fields[info]}"),
                    console=self.ui.err,
                    transient=True,
                )
                self.progress.start()
                self.task = self.progress.add_task("starting", total=1000, info="")
        elif ev.kind == "step" and self.state is not None:
            st = self.state
            st.update(d)
            where = f"octave {st.octave + 1}/{st.octaves} iteration {st.iteration + 1}/{st.iterations}"
            info = f"elapsed {seconds(st.elapsed)}  ETA {seconds(st.eta)}"
            if self.progress:
                self.progress.update(
                    self.task,
                    completed=int(st.fraction * 1000),
                    description=where,
                    info=f"{d.get('width')}x{d.get('height')}  {info}",
                )
            else:
                self.say(
                    f"step {st.step}/{st.steps_total}: {where} ({d.get('width')}x{d.get('height')})  {info}"
                )
        elif ev.kind == "done":
            self.close()
        # "log" (the engine's non-JSON lines) is kept for error messages only


def run(args, ui):
    check_settings()  # a bad DDCTL_MAX_DOWNLOAD_MB / DDCTL_DOWNLOAD_TIMEOUT is said first
    check_tag(args.image, "--image")
    check_guided(args.guide, [args.layer] if args.layer is not None else [], args.model)
    if is_batch_source(args.source):
        return run_batch_command(args, ui)
    opts = options_of(args)
    view = RunView(ui, opts)
    with temp_folder() as workdir:  # ddctl-<pid>-XXXX: a killed run's is found and removed
        # Everything that needs no Docker first: the transfer setting, the output folder,
        # the picture and the guide (downloaded and verified here), the model (downloaded).
        job = prepare(
            args.source,
            workdir,
            opts,
            output_dir=args.output_dir,
            transfer="copy" if args.copy else None,
            on_event=view,
        )
        opts.guide = guide_picture(ui, args.guide, workdir)
        opts.model = resolve_model(ui, args.model)
        with discarded_unless_accepted(opts.model):
            if args.layer is None and opts.model is not None and opts.model.layer:
                opts.layer = opts.model.layer
            ep, client, build = dream_session(ui, args.no_build)
            try:
                result = dream(client, job, ep, image=args.image, build=build, on_event=view)
            finally:
                view.close()
    extra = len(result.files) - 1
    view.say(f"done in {seconds(result.elapsed)}" + (f"; {extra} step pictures saved" if extra > 0 else ""))
    ui.out.print(result.path, markup=False, highlight=False, soft_wrap=True)
    return 0


class BatchView(RunView):
    """A batch: one bar for the whole batch (pictures done/total, the current picture's
    octave and iteration, ETA of the batch); plain lines per picture otherwise."""

    def __init__(self, ui, opts):
        super().__init__(ui, opts)
        self.total = 0
        self.index = 0
        self.started = None
        self.finished = 0

    def fraction(self):
        current = self.state.fraction if self.state is not None else 0.0
        return (self.finished + current) / self.total if self.total else 0.0

    def __call__(self, ev):
        d = ev.data
        if ev.kind == "plan":
            items = d["items"]
            counts = {s: sum(1 for i in items if i.status == s) for s in ("skipped", "failed")}
            parts = [f"{len(items)} pictures"]
            if counts["skipped"]:
                parts.append(f"{counts['skipped']} already dreamed (skipped; --force redoes them)")
            if counts["failed"]:
                parts.append(f"{counts['failed']} refused here")
            parts.append(f"{d['to_dream']} to dream")
            self.say(", ".join(parts))
            for i in items:
                if i.status == "failed":
                    self.say(f"  {i.shown}: {i.error}")
        elif ev.kind in ("fetched", "start", "done"):
            if ev.kind == "start":
                self.state = DreamProgress(d, self.opts.octave_scale)
        elif ev.kind == "batch":
            self.total = int(d.get("total") or 0)
            self.started = time.monotonic()
            if self.live:
                self.progress = Progress(
                    TextColumn("[bold]{task.description}"),
                    BarColumn(bar_width=30),
                    TextColumn("{task.percentage:>3.0f}%"),
                    TextColumn("{task.fields[info]}"),
                    console=self.ui.err,
                    transient=True,
                )
                self.progress.start()
                self.task = self.progress.add_task(f"picture 0/{self.total}", total=1000, info="")
        elif ev.kind == "item":
            status = d.get("status")
            self.index = int(d.get("index") or 0)
            if status == "start":
                self.state = None
                self._update(f"{d.get('source')}")
                return
            self.finished += 1
            note = {"done": "dreamed", "skipped": "skipped (result exists)"}.get(status, "failed")
            if status == "failed":
                note += f": {(d.get('record') or {}).get('error')}"
            self.say(f"[{self.index}/{self.total}] {d.get('source')}: {note}")
            self.state = None
            self._update("")
        elif ev.kind == "step" and self.state is not None:
            self.state.update(d)
            st = self.state
            where = f"octave {st.octave + 1}/{st.octaves} iteration {st.iteration + 1}/{st.iterations}"
            self._update(where, d, quiet=True)
        elif ev.kind == "batch_done":
            self.close()
        else:
            super().__call__(ev)

    def _update(self, where, step=None, quiet=False):
        elapsed = time.monotonic() - self.started if self.started else 0.0
        f = self.fraction()
        eta = elapsed * (1 - f) / f if f > 0 else None
        info = f"{where}  elapsed {seconds(elapsed)}  ETA {seconds(eta)}"
        desc = f"picture {min(self.index, self.total)}/{self.total} ({self.finished} done)"
        if self.progress:
            self.progress.update(self.task, completed=int(f * 1000), description=desc, info=info)
        elif step is not None and self.state is not None:
            self.say(f"{desc}: step {self.state.step}/{self.state.steps_total} {info}")


def run_batch_command(args, ui):
    opts = options_of(args)
    view = BatchView(ui, opts)
    with temp_folder() as workdir:  # ddctl-<pid>-XXXX: a killed run's is found and removed
        # as for one picture: the guide fetched and verified here, the model downloaded; first,
        # since the names the results will have (and so what a rerun skips) depend on them
        opts.guide = guide_picture(ui, args.guide, workdir)
        opts.model = resolve_model(ui, args.model)
        with discarded_unless_accepted(opts.model):
            if args.layer is None and opts.model is not None and opts.model.layer:
                opts.layer = opts.model.layer
            job = prepare_batch(
                args.source,
                workdir,
                opts,
                output_dir=args.output_dir,
                transfer="copy" if args.copy else None,
                force=args.force,
                on_event=view,
            )
            if job.to_dream:
                ep, client, build = dream_session(ui, args.no_build)
                try:
                    result = run_batch(client, job, ep, image=args.image, build=build, on_event=view)
                finally:
                    view.close()
                items = result.items
            else:
                items = job.items
    done = [i for i in items if i.status == "done"]
    failed = [i for i in items if i.status == "failed"]
    skipped = [i for i in items if i.status == "skipped"]
    for i in done:
        ui.out.print(i.output, markup=False, highlight=False, soft_wrap=True)
    view.say(
        f"{len(done)} dreamed, {len(skipped)} skipped (result exists), {len(failed)} failed; "
        f"results and manifest.jsonl in {job.outdir}"
    )
    if failed:
        lines = "\n".join(f"  {i.shown}: {i.error}" for i in failed)
        raise DdctlError(f"{len(failed)} of {len(items)} pictures failed:\n{lines}")
    return 0
