"""What a dream is asked to do, and the engine's command line that asks it.

`engine_command()` is the one place the engine's argv is built (README "Contracts
between the parts" / "The engine's command line"); tests/unit/test_contract.py parses
it with the engine's own parser.
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:  # annotations only: no import cycle, no cost
    from ddctl.fetch import Picture
    from ddctl.models import Model

# The engine's defaults (engine/cli.py DEFAULTS), bound by tests/unit/test_contract.py.
# step_size and jitter are left to the engine (DreamOptions None) and named in --help.
DEFAULT_LAYER = "inception_4c/output"
DEFAULT_ITERATIONS = 10
DEFAULT_OCTAVES = 4
DEFAULT_OCTAVE_SCALE = 1.4
ENGINE_DEFAULTS = {
    "layer": DEFAULT_LAYER,
    "iterations": DEFAULT_ITERATIONS,
    "octaves": DEFAULT_OCTAVES,
    "octave_scale": DEFAULT_OCTAVE_SCALE,
    "step_size": 1.5,
    "jitter": 32,
}
# A phone's 12-megapixel photo would take 20x the time of the notebook's 1024x576 example
# and several GB of memory (more than many Docker VMs have): dream at a size that fits,
# as every modern DeepDream tool does, unless asked otherwise (--max-size 0).
DEFAULT_MAX_SIZE = 1280
IMAGES = "/images"  # the engine's output folder inside the image (its --output-dir default)
INPUT_DIR = "/input"  # where ddctl puts the input inside the container
MIN_TILE = 256  # the engine's smallest --tile but 0 (engine/tiling.py MIN_TILE)
MODEL_DIR = INPUT_DIR + "/ddctl-model"  # a --model's prototxt and weights, read-only
GUIDE_DIR = INPUT_DIR + "/ddctl-guide"  # the --guide picture, read-only


@dataclass
class DreamOptions:
    layer: str = DEFAULT_LAYER
    iterations: int = DEFAULT_ITERATIONS
    octaves: int = DEFAULT_OCTAVES
    octave_scale: float = DEFAULT_OCTAVE_SCALE
    step_size: Optional[float] = None
    jitter: Optional[int] = None
    seed: Optional[int] = None
    save_steps: bool = False
    max_size: Optional[int] = None
    tile: Optional[int] = None  # None: the engine's default (auto); 0: never tile
    model: "Optional[Model]" = None  # None: the image's own bvlc_googlenet
    guide: "Optional[Picture]" = None  # --guide, verified on the host


def engine_command(source_in_container: str, name: str, opts: DreamOptions) -> list:
    """The engine's argv per the README contract: options, then `--`, then the positionals
    (so a LAYER such as `--output-dir=/x` can never be read as an option)."""
    cmd = ["--name", name, "--progress", "json"]
    if opts.step_size is not None:
        cmd += ["--step-size", _num(opts.step_size)]
    if opts.jitter is not None:
        cmd += ["--jitter", str(opts.jitter)]
    if opts.seed is not None:
        cmd += ["--seed", str(opts.seed)]
    if opts.save_steps:
        cmd.append("--save-steps")
    if opts.max_size is not None:
        cmd += ["--max-size", str(opts.max_size)]
    if opts.tile is not None:
        cmd += ["--tile", str(opts.tile)]
    cmd += model_args(opts.model)
    if opts.guide is not None:
        cmd += ["--guide", f"{GUIDE_DIR}/{opts.guide.filename}"]
    # positionals last, after `--`: a LAYER can never be read as an option
    return cmd + [
        "--",
        source_in_container,
        opts.layer,
        str(opts.iterations),
        str(opts.octaves),
        _num(opts.octave_scale),
    ]


def mode_command(mode: str, mode_args: list, source_in_container: str, name: str, opts: DreamOptions) -> list:
    """The engine's argv for a mode that makes several pictures in one container (`--mode
    zoom|sheet`): the mode's own options, then the dream's, as engine_command makes them."""
    return ["--mode", mode, *mode_args] + engine_command(source_in_container, name, opts)


def model_args(model: "Optional[Model]") -> list:
    """The engine's --prototxt/--weights/--mean for a ddctl.models.Model (none for the image's own)."""
    if model is None:
        return []
    cmd = ["--prototxt", f"{MODEL_DIR}/{model.prototxt}", "--weights", f"{MODEL_DIR}/{model.weights}"]
    if model.mean is not None:
        cmd += ["--mean", ",".join(_num(v) for v in model.mean)]
    return cmd


def batch_command(list_in_container: str, opts: DreamOptions, force: bool = False) -> list:
    """The engine's argv for a batch: the list file of pictures as SOURCE (README contract)."""
    return ["--batch"] + (["--force"] if force else []) + engine_command(list_in_container, "batch", opts)


def _num(x):
    return repr(float(x)).rstrip("0").rstrip(".") if float(x) != int(float(x)) else str(int(float(x)))
