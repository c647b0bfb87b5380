"""Tar in and tar out, for the archive copy: the input picture into the container, the
container's /images out into the output folder without overwriting anything."""

import io
import os
import posixpath
import tarfile
import tempfile
from typing import Optional

from ddctl.run.naming import plan_extraction
from ddctl.run.options import IMAGES


def input_archive(
    picture_path: str, filename: str, uid: Optional[int] = None, gid: Optional[int] = None
) -> bytes:
    """A tar holding <filename>, readable by the container's user, for put_archive into
    the container's input folder (a volume: the container's root is read-only)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tar.gettarinfo(picture_path, filename)
        info.mode, info.uid, info.gid = 0o644, uid or 0, gid or 0
        info.uname = info.gname = ""
        with open(picture_path, "rb") as f:
            tar.addfile(info, f)
    return buf.getvalue()


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
