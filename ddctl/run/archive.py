"""Tar in and tar out, for the archive copy: the input picture into the container, the
container's /images out into the output folder without overwriting anything."""

import io
import os
import posixpath
import tarfile
import tempfile
import time
from typing import Optional

from ddctl.run.naming import plan_extraction
from ddctl.run.options import IMAGES, INPUT_DIR, MODEL_DIR


def input_archive(
    picture_path: str, filename: str, uid: Optional[int] = None, gid: Optional[int] = None, extra=()
) -> bytes:
    """A tar holding <filename> (and `extra`: (host path, path under the input folder) pairs),
    readable (not writable) by the container's user, for put_archive into the container's
    input folder (a volume: the container's root is read-only)."""
    return files_archive([(picture_path, filename), *extra], uid, gid, modes={filename: 0o644})


def files_archive(files, uid: Optional[int] = None, gid: Optional[int] = None, modes=None) -> bytes:
    """A tar holding each (host path, path under the input folder) of `files`, with their
    folders, for put_archive into the input folder; files are read-only (0444) unless `modes`
    ({path under the input folder: mode}) says otherwise."""
    names = [rel for _, rel in files]
    dirs: set = set()
    for name in names:
        parts = name.split("/")[:-1]
        dirs.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d in sorted(dirs):
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, int(time.time())
            tar.addfile(info)
        for (path, rel), name in zip(files, names):
            info = tar.gettarinfo(path, name)
            info.mode, info.uid, info.gid = (modes or {}).get(rel, 0o444), uid or 0, gid or 0
            info.uname = info.gname = ""
            with open(path, "rb") as f:
                tar.addfile(info, f)
    return buf.getvalue()


def model_files(model) -> list:
    """[(host path, path under the input folder)] of a ddctl.models.Model (none for the image's own)."""
    if model is None:
        return []
    sub = MODEL_DIR[len(INPUT_DIR) + 1 :]
    return [(os.path.join(model.folder, n), f"{sub}/{n}") for n in (model.prototxt, model.weights)]


def model_archive(model, uid: Optional[int] = None, gid: Optional[int] = None) -> bytes:
    """A tar holding only the model's files (the layer listing's archive copy)."""
    return files_archive(model_files(model), uid, gid)


def extract_new_files(tar_fileobj, directory: str) -> dict:
    """Extract the container's /images archive into directory, never overwriting.

    Returns {container path: host path} for every regular file written.
    """
    written = {}
    with tarfile.open(fileobj=tar_fileobj, mode="r|*") as tar:
        members: list[tuple[list[str], Optional[bytes]]] = []  # None: a folder
        # The archive of /images has the folder itself as its first component.
        for m in tar:
            parts = [p for p in m.name.split("/") if p not in ("", ".")]
            if len(parts) < 2 or ".." in parts or not (m.isfile() or m.isdir()):
                continue
            rel = parts[1:]
            if m.isfile():
                fileobj = tar.extractfile(m)
                members.append((rel, fileobj.read() if fileobj is not None else b""))
            else:
                members.append((rel, None))
    tops = {rel[0] for rel, _ in members}
    plan = plan_extraction(tops, directory)
    for rel, data in members:
        target = os.path.join(directory, plan[rel[0]], *rel[1:])
        if data is None:
            os.makedirs(target, exist_ok=True)
            continue
        os.makedirs(os.path.dirname(target), exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        written[posixpath.join(IMAGES, *rel)] = target
    return written


def copy_out(container, outdir: str) -> dict:
    """get_archive('/images') extracted into outdir without overwriting; {container path: host path}."""
    stream, _stat = container.get_archive(IMAGES)
    with tempfile.TemporaryFile() as f:
        for chunk in stream:
            f.write(chunk)
        f.seek(0)
        return extract_new_files(f, outdir)
