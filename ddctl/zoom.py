"""`ddctl zoom`'s work: the engine's argv for a zoom (README "The engine's command line",
--mode zoom), and finding the unfinished zoom that `--resume` continues.

A zoom lives in <output>/<stem>-zoom-<layer>[-N]/: NNNN.png frames, zoom.json (the settings
and seed it was started with, "complete" once the videos exist) and .resume.npz (the input
of the next frame) while it is unfinished; <folder>.mp4 and <folder>.gif sit beside it.
"""

import json
import os
import re
from dataclasses import dataclass, fields
from typing import Optional

from ddctl.errors import UsageError
from ddctl.fetch import is_url
from ddctl.redact import redact_url
from ddctl.run.naming import source_stem
from ddctl.run.options import DreamOptions, _num, mode_command, model_args

ZOOM_DEFAULTS = {"frames": 100, "scale": 0.05, "rotate": 0.0, "fps": 25.0}
SETTINGS = "zoom.json"
STATE = ".resume.npz"


@dataclass
class ZoomOptions(DreamOptions):
    frames: Optional[int] = None
    scale: Optional[float] = None
    rotate: Optional[float] = None
    fps: Optional[float] = None
    note: Optional[dict] = None  # kept in zoom.json: how --model and --guide were named


def zoom_command(source_in_container: str, name: str, opts: ZoomOptions) -> list:
    """The engine's argv for a new zoom: options first, positionals after `--`."""
    mine = []
    for flag, value in (
        ("--frames", opts.frames),
        ("--scale", opts.scale),
        ("--rotate", opts.rotate),
        ("--fps", opts.fps),
    ):
        if value is not None:
            mine += [flag, _num(value)]
    if opts.note:
        mine += ["--note", json.dumps(opts.note, sort_keys=True)]
    return mode_command("zoom", mine, source_in_container, name, opts)


def resume_command(folder: str, model=None) -> list:
    """The engine's argv that continues the zoom in outdir/folder (settings, and a guided
    zoom's guide, from the folder; the model's files as the zoom began with them)."""
    return ["--mode", "zoom", "--progress", "json", "--resume", folder] + model_args(model)


def guide_reference(spec: Optional[str]) -> Optional[str]:
    """How a --guide is named in zoom.json: its URL without secrets, or its absolute path."""
    if spec is None:
        return None
    return redact_url(spec) if is_url(spec) else os.path.abspath(os.path.expanduser(spec))


def note_of(model: Optional[str], guide: Optional[str]) -> Optional[dict]:
    """What ddctl keeps in zoom.json ("note") for --resume: the --model (models.reference)
    and the --guide (its absolute path, or its URL without secrets) a zoom began with."""
    note = {k: v for k, v in (("model", model), ("guide", guide)) if v is not None}
    return note or None


def noted(folder: str) -> dict:
    """The note of the zoom in folder ({} when it has none: the image's own net, no guide)."""
    note = (read_settings(folder) or {}).get("note")
    return note if isinstance(note, dict) else {}


def check_noted(folder: str, model: Optional[str], guide: Optional[str]) -> None:
    """UsageError when a --model or --guide given with --resume is not the zoom's own
    (model, guide: their references; None when not given)."""
    note = noted(folder)
    for flag, given, default in (("--model", model, "the image's own model"), ("--guide", guide, "no guide")):
        if given is None:
            continue
        have = note.get(flag[2:])
        if given != have:
            raise UsageError(
                f"That zoom was made with {f'{flag} {have}' if have else default}, not {flag} {given}: "
                f"drop {flag} to continue it, or start a new zoom without --resume."
            )


def stem_of(source: str) -> str:
    """The name stem `ddctl zoom SOURCE` gives its folder, without fetching SOURCE."""
    return source_stem(source)


def read_settings(folder: str) -> Optional[dict]:
    try:
        with open(os.path.join(folder, SETTINGS)) as f:
            rec = json.load(f)
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) else None


def unfinished(folder: str) -> bool:
    rec = read_settings(folder) or {}
    return bool(rec) and not rec.get("complete") and os.path.isfile(os.path.join(folder, STATE))


def find_resume(outdir: str, source: str, layer: Optional[str] = None) -> str:
    """The name (in outdir) of the zoom `--resume` continues: SOURCE itself when it is a zoom
    folder, else the newest unfinished <stem>-zoom-<layer>[-N] folder. UsageError if none."""
    if os.path.isdir(source) and os.path.isfile(os.path.join(source, SETTINGS)):
        full = os.path.abspath(source)
        if os.path.dirname(full) != outdir:
            raise UsageError(
                f"{source} is not in the output folder {outdir}: give -o {os.path.dirname(full)}."
            )
        rec = read_settings(full)
        if rec is None:
            raise UsageError(
                f"The zoom in {source} cannot be resumed: its {SETTINGS} cannot be read. "
                "Start a new zoom without --resume."
            )
        if rec.get("complete"):
            raise UsageError(f"The zoom in {source} is complete: there is nothing to resume.")
        if not unfinished(full):
            raise UsageError(
                f"The zoom in {source} cannot be resumed: {STATE} (the state after its last frame) "
                "is missing. Start a new zoom without --resume."
            )
        return os.path.basename(full)
    stem = stem_of(source)
    pattern = re.compile(r"^" + re.escape(stem) + r"-zoom-.+$")
    cands = []
    for name in os.listdir(outdir):
        full = os.path.join(outdir, name)
        if not pattern.match(name) or not os.path.isdir(full) or not unfinished(full):
            continue
        if layer is not None and (read_settings(full) or {}).get("layer") != layer:
            continue
        cands.append((os.path.getmtime(os.path.join(full, STATE)), name))
    if not cands:
        raise UsageError(f"There is no unfinished zoom of {stem} in {outdir}: start one without --resume.")
    return max(cands)[1]


def check_resume(folder: str, given: dict) -> None:
    """UsageError when an option given with --resume differs from the zoom's own."""
    rec = read_settings(folder) or {}
    for key, value in given.items():
        if value is None or key not in rec:
            continue
        have = rec[key]
        same = float(have) == float(value) if isinstance(value, (int, float)) else have == value
        if not same:
            flag = "LAYER" if key == "layer" else "--" + key.replace("_", "-")
            raise UsageError(
                f"That zoom was made with {flag} {have}, not {value}: drop {flag} to continue it, "
                f"or start a new zoom without --resume."
            )


def option_values(opts: ZoomOptions) -> dict:
    return {f.name: getattr(opts, f.name) for f in fields(opts)}
