"""`ddctl run` on many pictures, in one container: SOURCE is a folder (every picture in it)
or a list file (`.txt`/`.list`: one URL or file a line).

prepare_batch()  everything without Docker: the sources, which results exist already
                 (skipped unless force), each picture fetched and verified on this machine
                 (a bad one is failed here and the others go on), the inputs staged in one
                 folder with the engine's list file (README "The engine's command line").
run_batch()      one container, the engine's batch mode (the net loaded once); results
                 are on the host as each picture finishes: written through the bind mount,
                 or copied out of the container at once (archive copy); manifest.jsonl gets
                 one line per dreamed or failed picture.

No rendering here: on_event(RunEvent) as ddctl/run/dream.py, plus "plan" (what will be
done) and the engine's own "batch", "item" and "batch_done" events.
"""

import json
import os
import re
import shutil
import tarfile
import tempfile
import urllib.parse
from dataclasses import dataclass, field
from typing import Callable, Optional

from docker.errors import NotFound
from docker.types import Mount

from ddctl import containers
from ddctl.client import Endpoint
from ddctl.errors import DdctlError, Interrupted, UsageError
from ddctl.fetch import get_picture, is_url
from ddctl.image import DEFAULT_TAG
from ddctl.redact import redact_url
from ddctl.run import container as one
from ddctl.run.archive import extract_new_files, files_archive
from ddctl.run.dream import RunEvent, check_objective
from ddctl.run.launch import launch
from ddctl.run.naming import final_stem, prepare_output_dir, source_stem
from ddctl.run.options import GUIDE_DIR, IMAGES, INPUT_DIR, MODEL_DIR, DreamOptions, batch_command
from ddctl.run.progress import lines_of, parse_engine_line
from ddctl.run.transfer import forced_transfer

MANIFEST = "manifest.jsonl"  # README "The batch manifest"
LIST_EXTENSIONS = (".txt", ".list")
PICTURE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".jfif"}
RESULT_NAME = re.compile(r"-i\d+-o\d+(-\d+)?\.png$")  # a final picture of an earlier run
LIST_NAME = "batch.jsonl"  # the engine's list file, in the staged input folder


def is_batch_source(source: str) -> bool:
    """A folder, or a list file (.txt, .list): many pictures."""
    if is_url(source):
        return False
    path = os.path.expanduser(source)
    return os.path.isdir(path) or (os.path.isfile(path) and path.lower().endswith(LIST_EXTENSIONS))


def redact(source: str) -> str:
    """A source fit to print and store: no user:password, no query values (signed URLs)."""
    if not is_url(source):
        return source
    try:
        u = urllib.parse.urlsplit(source)
    except ValueError:  # not an address: the fetch says so; shown without what could be a secret
        return redact_url(source)
    netloc = (u.hostname or "") + (f":{u.port}" if u.port else "")
    query = "&".join(p.split("=", 1)[0] + "=…" for p in u.query.split("&") if p)
    return urllib.parse.urlunsplit((u.scheme, netloc, u.path, query, ""))


def expand_sources(source: str) -> list:
    """The sources of a folder (its pictures, by name) or of a list file; UsageError if none."""
    path = os.path.expanduser(source)
    if os.path.isdir(path):
        names = sorted(
            n
            for n in os.listdir(path)
            if not n.startswith(".")
            and os.path.splitext(n)[1].lower() in PICTURE_EXTENSIONS
            and not RESULT_NAME.search(n)
            and os.path.isfile(os.path.join(path, n))
        )
        found = [os.path.join(path, n) for n in names]
        what = f"The folder {source} holds no pictures ({', '.join(sorted(PICTURE_EXTENSIONS))})"
    else:
        try:
            with open(path, encoding="utf-8") as f:
                lines = [line.strip() for line in f]
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"Cannot read the list {source} ({exc}): give a text file, one source a line.")
        base = os.path.dirname(os.path.abspath(path))
        found = [
            line if is_url(line) else os.path.join(base, os.path.expanduser(line))
            for line in lines
            if line and not line.startswith("#")
        ]
        what = f"The list {source} names no pictures"
    if not found:
        raise UsageError(f"{what}: nothing to dream.")
    return found


@dataclass
class BatchItem:
    source: str  # as found (a URL, or a file path)
    shown: str  # what messages and the manifest call it (redacted)
    stem: str  # the result's name is made from it (unique in the batch)
    final: str  # the final picture's file name, before any -2 (the engine's rule)
    status: str = "pending"  # pending | skipped | failed | done
    error: str = ""
    output: str = ""  # host path of the result (done), or of the existing one (skipped)
    picture: object = None  # fetch.Picture once verified


def plan(sources: list, opts: DreamOptions, outdir: str, force: bool = False) -> list:
    """[BatchItem] with their result names; those whose result exists are skipped."""
    items: list = []
    used: dict = {}
    for src in sources:
        stem = source_stem(src)
        n = used.get(stem.lower(), 0) + 1  # two pictures called the same: x, x-2, ...
        used[stem.lower()] = n
        if n > 1:
            stem = f"{stem}-{n}"
        final = final_stem(stem, opts.layer, opts.iterations, opts.octaves, opts.guide is not None) + ".png"
        shown = redact(src) if is_url(src) else os.path.basename(src)
        item = BatchItem(source=src, shown=shown, stem=stem, final=final)
        existing = os.path.join(outdir, final)
        if not force and os.path.lexists(existing):
            item.status, item.output = "skipped", existing
        items.append(item)
    return items


@dataclass
class BatchJob:
    items: list
    opts: DreamOptions
    outdir: str
    stage: str  # host folder holding the inputs and the list file (mounted or copied as /input)
    force: bool = False
    transfer: Optional[str] = None

    @property
    def to_dream(self) -> list:
        return [i for i in self.items if i.status == "pending"]


def prepare_batch(
    source: str,
    workdir: str,
    opts: DreamOptions,
    output_dir: str,
    transfer: Optional[str] = None,
    force: bool = False,
    on_event: Optional[Callable[[RunEvent], None]] = None,
) -> BatchJob:
    """Check the batch without Docker and stage its inputs in workdir."""
    on_event = on_event or (lambda e: None)
    forced_transfer(transfer)
    containers.memory_limit()
    outdir = prepare_output_dir(output_dir)
    items = plan(expand_sources(source), opts, outdir, force)
    stage = os.path.join(workdir, "input")
    downloads = os.path.join(workdir, "downloads")
    os.makedirs(stage)
    os.makedirs(downloads)
    listing = []
    for k, item in enumerate(items, 1):
        if item.status != "pending":
            continue
        try:
            pic = get_picture(item.source, downloads)
        except DdctlError as exc:
            item.status, item.error = "failed", exc.message
            append_manifest(outdir, _record(item, opts, "failed"))
            continue
        item.picture = pic
        staged = f"{k:04d}-{item.stem}{os.path.splitext(pic.filename)[1]}"
        _stage(pic.path, os.path.join(stage, staged))
        listing.append({"source": f"{INPUT_DIR}/{staged}", "name": item.stem, "shown": item.shown})
    with open(os.path.join(stage, LIST_NAME), "w", encoding="utf-8") as f:
        for row in listing:
            f.write(json.dumps(row) + "\n")
    job = BatchJob(items=items, opts=opts, outdir=outdir, stage=stage, force=force, transfer=transfer)
    on_event(RunEvent("plan", {"items": items, "to_dream": len(job.to_dream)}))
    return job


def _stage(src: str, dst: str) -> None:
    try:
        os.link(src, dst)  # same file system: no copy
    except OSError:
        shutil.copyfile(src, dst)
    os.chmod(dst, 0o644)


def _record(item: BatchItem, opts: DreamOptions, status: str) -> dict:
    """A manifest line written by ddctl itself (a picture refused on this machine)."""
    return {
        "source": item.shown,
        "output": None,
        "options": {
            "layer": opts.layer,
            "iterations": opts.iterations,
            "octaves": opts.octaves,
            "octave_scale": opts.octave_scale,
            "step_size": opts.step_size,
            "jitter": opts.jitter,
            "max_size": opts.max_size,
            "tile": opts.tile if opts.tile is not None else "auto",
        },
        "seed": None,
        "seconds": 0.0,
        "status": status,
        "error": item.error,
    }


def append_manifest(outdir: str, record: dict) -> None:
    with open(os.path.join(outdir, MANIFEST), "a", encoding="utf-8") as f:
        f.write(json.dumps(record, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


@dataclass
class BatchResult:
    items: list
    transfer: str = ""
    run_id: str = ""
    elapsed: float = 0.0
    files: list = field(default_factory=list)  # host files written, as they came

    def count(self, status: str) -> int:
        return sum(1 for i in self.items if i.status == status)

    @property
    def failed(self) -> list:
        return [i for i in self.items if i.status == "failed"]


def _mount_points(stage: str, opts: DreamOptions) -> None:
    """The --model folder and the --guide file are bind-mounted inside the input folder, itself
    a read-only bind of `stage`: their mount points must exist in `stage` beforehand."""
    if opts.model is not None:
        os.makedirs(os.path.join(stage, MODEL_DIR[len(INPUT_DIR) + 1 :]), exist_ok=True)
    if opts.guide is not None:
        point = os.path.join(stage, GUIDE_DIR[len(INPUT_DIR) + 1 :], opts.guide.filename)
        os.makedirs(os.path.dirname(point), exist_ok=True)
        open(point, "a").close()


def _input_tar(stage: str, uid, gid):
    """A temporary file holding input/<every staged file>, readable by the container's user."""
    f = tempfile.TemporaryFile()
    with tarfile.open(fileobj=f, mode="w") as tar:

        def owned(info):
            info.uid, info.gid, info.uname, info.gname = uid or 0, gid or 0, "", ""
            info.mode = 0o755 if info.isdir() else 0o644
            return info

        tar.add(stage, arcname=".", filter=owned)  # into the container's input folder
    f.seek(0)
    return f


def _copy_result_out(container, path: str, outdir: str) -> list:
    """The final picture at `path` in the container (and its -steps folder, if any) copied
    into outdir without overwriting; [(container path, host path)]."""
    written = []
    for p in (path, path[: -len(".png")] + "-steps"):
        try:
            stream, _stat = container.get_archive(p)
        except NotFound:
            continue
        with tempfile.TemporaryFile() as f:
            for chunk in stream:
                f.write(chunk)
            f.seek(0)
            # extract_new_files drops the archive's first component (the /images folder
            # of a whole copy): give it one
            with tempfile.TemporaryFile() as g:
                with tarfile.open(fileobj=f) as src, tarfile.open(fileobj=g, mode="w") as dst:
                    for m in src:
                        data = src.extractfile(m) if m.isfile() else None
                        m.name = "images/" + m.name
                        # a non-ASCII or long name comes in a PAX `path` header, which
                        # tarfile writes back over m.name: drop it
                        m.pax_headers = {k: v for k, v in m.pax_headers.items() if k != "path"}
                        dst.addfile(m, data)
                g.seek(0)
                got = extract_new_files(g, outdir)
        written += sorted(got.items())
    return written


def run_batch(
    client,
    job: BatchJob,
    ep: Endpoint,
    image: str = DEFAULT_TAG,
    build: Optional[Callable[[str], object]] = None,
    on_event: Optional[Callable[[RunEvent], None]] = None,
    labels: Optional[dict] = None,
) -> BatchResult:
    """Dream job.to_dream in one container; a BatchResult (failures are in it, not raised),
    Interrupted on Ctrl-C (every finished picture kept), DdctlError when the whole batch
    could not run (an unknown layer, the container killed for memory)."""
    on_event = on_event or (lambda e: None)
    result = BatchResult(items=job.items)
    if not job.to_dream:
        return result

    def emit(kind, data):
        on_event(RunEvent(kind, data))

    labels = labels or {}
    return launch(
        client,
        ep,
        image,
        job.outdir,
        job.transfer,
        lambda image_id, mode: _run(client, image_id, job, mode, emit, labels, result),
        emit,
        build,
        check=lambda mode: check_objective(client, image, job.opts, mode, labels),
    )[1]


def _run(client, image_id, job, mode, emit, labels, result):
    run_id = containers.new_run_id()
    memory = containers.memory_limit(client=client)
    result.transfer, result.run_id = mode, run_id
    by_shown = {i.shown: i for i in job.to_dream}
    # locked down like a dream (containers.engine_settings), stopped when ddctl is gone
    cmd = batch_command(f"{INPUT_DIR}/{LIST_NAME}", job.opts, job.force)
    kwargs = one.stdin_watched(
        containers.engine_settings("batch", run_id, cmd, labels, memory=memory, client=client)
    )
    if mode == "mount":
        _mount_points(job.stage, job.opts)
        kwargs["mounts"] = [
            Mount(IMAGES, job.outdir, type="bind"),
            Mount(INPUT_DIR, job.stage, type="bind", read_only=True),
        ] + one.option_mounts(job.opts)
    else:
        kwargs["mounts"] = one.copy_mounts()
    outcome = one.Outcome(run_id=run_id, memory=memory)
    # finished pictures are on the host already (mount, or copied as they came): nothing
    # more to keep from a stopped batch
    again = "run the command again; finished pictures are kept"
    try:
        with one.living(client, image_id, kwargs, mode, emit, run_id, again=again) as container:
            if mode == "copy":
                uid, gid = containers.container_ids()
                with _input_tar(job.stage, uid, gid) as tar:
                    container.put_archive(INPUT_DIR, tar)
                extra = one.option_files(job.opts)  # the --model's files and the --guide
                if extra:
                    container.put_archive(INPUT_DIR, files_archive(extra, uid, gid))
            container.start()
            stdout = container.logs(stream=True, follow=True, stdout=True, stderr=False)
            for line in lines_of(stdout):
                ev = parse_engine_line(line)
                if ev is None:
                    if line.strip():
                        outcome.other = (outcome.other + [line.rstrip()])[-one.KEPT_LINES :]
                    continue
                kind = ev["event"]
                if kind == "item" and ev.get("status") in ("done", "failed", "skipped"):
                    _item_ended(container, job, mode, ev, by_shown.get(ev.get("source")), result)
                elif kind == "error":
                    outcome.error = ev
                elif kind == "batch_done":
                    outcome.done = ev
                emit(kind, ev)
            outcome.code = int(container.wait().get("StatusCode", 1))
            outcome.stderr = container.logs(stdout=False, stderr=True, tail=one.KEPT_LINES).decode(
                "utf-8", "replace"
            )
            try:
                container.reload()
                outcome.state = container.attrs.get("State") or {}
            except NotFound:
                pass
    except KeyboardInterrupt:
        raise Interrupted(
            f"interrupted: the container was stopped and removed; the {result.count('done')} "
            f"picture(s) already dreamed stay in {job.outdir}."
        )
    if outcome.code in (0, 3) and outcome.done is not None:
        result.elapsed = float(outcome.done.get("elapsed") or 0.0)
        return result
    failure = outcome.failure()
    done = result.count("done")
    if done and failure is not None:
        failure = type(failure)(
            f"{failure.message} ({done} picture(s) finished before are kept in {job.outdir}.)"
        )
    raise failure or DdctlError("The dream engine ended without finishing the batch.")


def _item_ended(container, job, mode, ev, item, result):
    """An item the engine finished: its result onto the host (archive copy), the manifest."""
    if item is None:
        return
    status = ev["status"]
    record = ev.get("record") or {}
    if status == "done" and ev.get("output"):
        cpath = f"{IMAGES}/{ev['output']}"
        if mode == "copy":
            copied = _copy_result_out(container, cpath, job.outdir)
            result.files += [h for _, h in copied]
            host = dict(copied).get(cpath, "")
            record["output"] = os.path.relpath(host, job.outdir) if host else None
            append_manifest(job.outdir, record)
        else:
            host = os.path.join(job.outdir, *ev["output"].split("/"))
            result.files.append(host)
        item.status, item.output = "done", host
    elif status == "failed":
        item.status, item.error = "failed", str(record.get("error") or "failed")
        if mode == "copy":
            append_manifest(job.outdir, record)
    else:
        item.status, item.output = "skipped", os.path.join(job.outdir, ev.get("output") or item.final)
