"""The engine's limits on every number, checked on the host before any download or container.

The same table as the engine's engine/limits.py (ddctl never imports engine: a contract
test asserts the two are equal). Each entry: name -> (kind, lowest, highest, lowest
allowed?); NaN and infinities are never allowed.
"""

import argparse
import math
import os
from collections.abc import Mapping
from typing import Callable, Optional, Union

from ddctl.errors import UsageError

LIMITS = {
    "iterations": ("int", 1, 100000, True),
    "octaves": ("int", 1, 100, True),
    "octave_scale": ("float", 1.0, 100.0, True),
    "step_size": ("float", 0.0, 1000.0, False),
    "jitter": ("int", 0, 100000, True),
    "seed": ("int", 0, 2**32 - 1, True),
    "max_size": ("int", 1, 1000000, True),
    "tile": ("int", 0, 1000000, True),  # 0: never tile (the engine also wants at least its MIN_TILE)
    # ddctl zoom (the engine's --mode zoom)
    "frames": ("int", 1, 9999, True),
    "scale": ("float", 0.0, 0.5, True),
    "rotate": ("float", -45.0, 45.0, True),
    "fps": ("float", 0.1, 120.0, True),
}


def check(name: str, text: str, label: str, zero_means_none: bool = False) -> Union[int, float]:
    """text as the number LIMITS[name] allows; ValueError with one sentence naming `label`."""
    kind, lo, hi, lo_ok = LIMITS[name]
    conv = int if kind == "int" else float
    noun = "a whole number" if kind == "int" else "a number"
    if hi is None:
        rng = f"at least {lo}" if lo_ok else f"more than {lo}"
    else:
        rng = f"from {lo} to {hi}" if lo_ok else f"more than {lo} and at most {hi}"
    if zero_means_none:
        rng += " (or 0 for none)"
    try:
        value = conv(str(text).strip())
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{label} must be {noun} {rng}, not {text!r}.")
    if zero_means_none and value == 0:
        return 0
    if kind == "float" and not math.isfinite(value):
        raise ValueError(f"{label} must be {noun} {rng}, not {text!r}.")
    if value < lo or (value == lo and not lo_ok) or (hi is not None and value > hi):
        raise ValueError(f"{label} must be {noun} {rng}, not {text!r}.")
    return value


def arg_type(name: str, label: str, zero_means_none: bool = False) -> Callable[[str], Union[int, float]]:
    """An argparse type for LIMITS[name]; argparse shows its sentence and exits 2."""

    def parse(text: str) -> Union[int, float]:
        try:
            return check(name, text, label, zero_means_none)
        except ValueError as exc:
            # argparse already names the argument: "argument --seed: must be ..."
            raise argparse.ArgumentTypeError(str(exc).rstrip(".").replace(f"{label} ", "", 1))

    parse.__name__ = label  # argparse names the type in some messages
    return parse


def check_layer_name(layer: str) -> str:
    """LAYER as given, or ValueError when it could be read as an option or is not a name.

    The engine gets it after `--` anyway; refusing here says so before any download.
    """
    if not layer or layer.startswith("-") or any(c.isspace() or ord(c) < 32 for c in layer):
        raise ValueError(
            f"LAYER {layer!r} is not a layer name: `ddctl layers` lists them "
            f"(put options before SOURCE, or after the numbers)."
        )
    return layer


def env_number(
    name: str,
    default: int,
    lo: int,
    hi: int,
    env: Optional[Mapping[str, str]] = None,
    what: str = "a whole number",
) -> int:
    """An int from the environment variable `name` (default when unset or empty).

    Read when used, never at import: a bad value is one sentence (UsageError), not a
    traceback that breaks every command."""
    env = os.environ if env is None else env
    text = (env.get(name) or "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not lo <= value <= hi:
        raise UsageError(
            f"{name}={text!r} is not {what} from {lo} to {hi}: set it to such a number "
            f"(default {default}) or unset it."
        )
    return value
