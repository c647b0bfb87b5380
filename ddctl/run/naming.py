"""Where the pictures go and what they are called (README "Contracts" / "Files").

The engine names the final picture `<stem>-<layer with / as ->-i<ITERATIONS>-o<OCTAVES>.png`
and adds -2, -3, ... rather than overwrite; a `--save-steps` folder `<final stem>-steps/`
claims its name too. ddctl follows the same rule when it copies results out of a
container (tests/unit/test_contract.py binds the two).
"""

import os
import posixpath
import re
import unicodedata
import urllib.parse
from typing import Optional

from ddctl.errors import UsageError
from ddctl.run.options import IMAGES

DEFAULT_OUTPUT = "dreams"
STEPS_SUFFIX = "-steps"
STEM_CHARS, STEM_BYTES = 60, 120  # a file name is at most 255 bytes; the layer and -i10-o4 follow


def _kept(c: str) -> bool:
    """Letters, digits and marks of any script, and . _ - (engine/cli.py keeps the same, and +)."""
    return c in "._-" or unicodedata.category(c)[0] in "LNM"


def safe_stem(name: str, default: str = "picture") -> str:
    """The stem results are named from: one a user recognises, that every file system takes.

    `Müller-Straße.jpg` -> `Müller-Straße`, `雪.png` -> `雪`. NFC first (a Mac's decomposed ü
    becomes one letter); each run of other characters (spaces, path separators, control
    and format characters such as a right-to-left override, punctuation) becomes one `_`;
    at most 60 characters and 120 bytes of UTF-8, cut on a character; no leading or
    trailing `.`, `_` or `-` (no hidden file, nothing read as an option). The engine's own
    rule leaves such a stem as it is (tests/unit/test_contract.py)."""
    stem = unicodedata.normalize("NFC", os.path.splitext(os.path.basename(name))[0])
    out: list = []
    for c in stem:
        if _kept(c):
            out.append(c)
        elif not out or out[-1] != "\0":
            out.append("\0")
    stem = "".join(out).replace("\0", "_")[:STEM_CHARS]
    while len(stem.encode("utf-8")) > STEM_BYTES:
        stem = stem[:-1]
    return stem.strip("._-") or default


def source_stem(source: str) -> str:
    """The stem SOURCE's results are named from, without fetching it: a URL's last path
    part (decoded), a file's name. A URL urlsplit refuses gives the default stem (the fetch
    refuses it later, in one line)."""
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", source):
        try:
            path = urllib.parse.urlsplit(source).path
        except ValueError:
            path = ""
        return safe_stem(urllib.parse.unquote(path))
    return safe_stem(source)


def layer_stem(layer: str) -> str:
    """LAYER as a part of a file name (engine/objectives.stem): a blob name with `/` as `-`
    (the 2015 naming), an objective (`a:97`, `a*1+b*0.5`) with every other separator as `_`."""
    if re.match(r"^[\w./-]+$", layer):
        return layer.replace("/", "-")
    return re.sub(r"[^\w.+-]+", "_", layer.replace("/", "-")).strip("._-")[:80] or "dream"


def final_stem(stem: str, layer: str, iterations: int, octaves: int, guided: bool = False) -> str:
    """The final picture's name before any -2, -3 suffix (the engine's naming rule)."""
    return f"{stem}-{layer_stem(layer)}{'-guided' if guided else ''}-i{iterations}-o{octaves}"


def prepare_output_dir(path: Optional[str]) -> str:
    """The absolute output folder, created when missing; UsageError when unusable."""
    full = os.path.abspath(os.path.expanduser(path or DEFAULT_OUTPUT))
    if os.path.exists(full) and not os.path.isdir(full):
        raise UsageError(f"The output folder {path} exists and is not a folder: choose another with -o DIR.")
    try:
        os.makedirs(full, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"Cannot create the output folder {path} ({exc.strerror}): choose another with -o DIR."
        )
    if not os.access(full, os.W_OK | os.X_OK):
        raise UsageError(
            f"The output folder {path} is not writable by this user: choose another with -o DIR."
        )
    return full


def free_stem(directory: str, stem: str, ext: str, taken=()) -> str:
    """stem, or stem-2, stem-3, ... so that neither stem<ext> nor stem-steps exists (the engine's rule)."""
    k = 1
    while True:
        cand = stem if k == 1 else f"{stem}-{k}"
        if (
            (cand + ext) not in taken
            and not os.path.lexists(os.path.join(directory, cand + ext))
            and not os.path.lexists(os.path.join(directory, cand + STEPS_SUFFIX))
        ):
            return cand
        k += 1


def plan_extraction(names, directory: str) -> dict:
    """Map the top-level entries of the container's /images to fresh names in directory.

    names: top-level names found in the archive (files and folders). A final picture X.png
    and its steps folder X-steps move together: both get the first free suffix.
    """
    plan: dict[str, str] = {}
    taken: set[str] = set()
    files = sorted(n for n in names if os.path.splitext(n)[1])
    for name in files:
        stem, ext = os.path.splitext(name)
        new = free_stem(directory, stem, ext, taken)
        plan[name] = new + ext
        taken.update({new + ext, new + STEPS_SUFFIX})
        if stem + STEPS_SUFFIX in names:
            plan[stem + STEPS_SUFFIX] = new + STEPS_SUFFIX
    for name in sorted(set(names) - set(plan)):
        new, k = name, 1
        while new in taken or os.path.lexists(os.path.join(directory, new)):
            k += 1
            new = f"{name}-{k}"
        plan[name] = new
        taken.add(new)
    return plan


def host_path(container_path: str, output_dir: str, copied: Optional[dict] = None) -> str:
    """The host path of a file the engine wrote at container_path (under /images)."""
    if copied and container_path in copied:
        return copied[container_path]
    rel = posixpath.relpath(container_path, IMAGES)
    return os.path.join(output_dir, *rel.split("/"))
