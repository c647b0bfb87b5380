"""The dream image's build context: where it lives and how it travels to the daemon.

The context is the Dockerfile, .dockerignore, engine/, provision/ and weights/. It is
found next to the ddctl package in a checkout, or under `sys.prefix/share/ddctl` where
setup.py's data_files install it. It is sent as an in-memory tar (the daemon may be
remote), with the user's weights file added as weights/user.caffemodel for
`ddctl build --weights PATH`.
"""

import io
import os
import sys
import tarfile
from collections.abc import Sequence
from typing import Optional

from ddctl.errors import DdctlError, UsageError

# What the image is built from; everything else in a checkout stays out of the tar.
CONTEXT_FILES = ("Dockerfile", ".dockerignore")
CONTEXT_DIRS = ("engine", "provision", "weights")
USER_WEIGHTS = "weights/user.caffemodel"
_SKIP_DIRS = {"__pycache__", ".pytest_cache"}
_SKIP_SUFFIXES = (".pyc", ".pyo", ".caffemodel")  # weights only enter via --weights PATH


def candidate_roots() -> list[str]:
    """Where a build context may be, in the order they are tried."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    roots = [here]  # a checkout: repo root next to ddctl/
    for prefix in (
        sys.prefix,
        getattr(sys, "base_prefix", sys.prefix),
        os.path.join(os.path.expanduser("~"), ".local"),
    ):
        roots.append(os.path.join(prefix, "share", "ddctl"))  # setup.py data_files
    seen: set[str] = set()
    out: list[str] = []
    for r in roots:
        if r not in seen:
            seen.add(r)
            out.append(r)
    return out


def find_context(roots: Optional[Sequence[str]] = None) -> str:
    """The first folder holding a Dockerfile and engine/; DdctlError when none does."""
    roots = candidate_roots() if roots is None else roots
    for root in roots:
        if os.path.isfile(os.path.join(root, "Dockerfile")) and os.path.isdir(os.path.join(root, "engine")):
            return root
    raise DdctlError(
        "Cannot find the dream image's build context (Dockerfile and engine/) in "
        + ", ".join(roots)
        + ": reinstall ddctl with `pip install .` from its source folder."
    )


def context_files(root: str) -> list[tuple[str, str]]:
    """(absolute path, name in the tar) for each file of the context, sorted."""
    files = []
    for name in CONTEXT_FILES:
        path = os.path.join(root, name)
        if os.path.isfile(path):
            files.append((path, name))
    for d in CONTEXT_DIRS:
        top = os.path.join(root, d)
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = sorted(x for x in dirnames if x not in _SKIP_DIRS)
            for f in sorted(filenames):
                if f.endswith(_SKIP_SUFFIXES):
                    continue
                path = os.path.join(dirpath, f)
                files.append((path, os.path.relpath(path, root).replace(os.sep, "/")))
    return files


def _add(tar: tarfile.TarFile, path: str, arcname: str) -> None:
    info = tar.gettarinfo(path, arcname)
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mtime = int(info.mtime)
    if info.isfile():
        with open(path, "rb") as f:
            tar.addfile(info, f)
    else:
        tar.addfile(info)


def build_context_tar(root: Optional[str] = None, weights_path: Optional[str] = None) -> io.BytesIO:
    """The context as a gzip tar in memory (rewound), ready for `api.build(fileobj=...)`."""
    root = root or find_context()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path, arcname in context_files(root):
            _add(tar, path, arcname)
        if weights_path is not None:
            if not os.path.isfile(weights_path):
                raise UsageError(f"The weights file {weights_path} does not exist or is not a file.")
            try:
                _add(tar, weights_path, USER_WEIGHTS)
            except OSError as exc:
                raise UsageError(f"Cannot read the weights file {weights_path}: {exc.strerror}.")
    buf.seek(0)
    return buf


def dockerfile_bases(root: str) -> list[str]:
    """The images the Dockerfile starts FROM (build stages excluded, ARG defaults applied)."""
    args: dict[str, str] = {}
    stages: set[str] = set()
    bases: list[str] = []
    with open(os.path.join(root, "Dockerfile")) as f:
        text = f.read().replace("\\\n", " ")
    for line in text.splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        op = words[0].upper()
        if op == "ARG" and len(words) > 1 and "=" in words[1] and not bases:
            k, v = words[1].split("=", 1)
            args[k] = v.strip('"\'')
        elif op == "FROM":
            rest = [w for w in words[1:] if not w.startswith("--")]
            if not rest:
                continue
            image = rest[0]
            for k, v in args.items():
                image = image.replace("${%s}" % k, v).replace("$" + k, v)
            if image not in stages and image != "scratch" and image not in bases:
                bases.append(image)
            if len(rest) >= 3 and rest[1].upper() == "AS":
                stages.add(rest[2])
    return bases
