"""LAYER's objective grammar on the host (README "The objective grammar"), so that a bad
LAYER is refused before any download or container.

    TERM := BLOB [":" CHANNEL ("," CHANNEL)*] ["*" WEIGHT]      terms joined by "+"

The engine parses the same grammar (engine/objectives.py); tests/unit/test_objective_contract.py
holds both to the same answers. ddctl never imports the engine.
"""

import difflib
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

from ddctl.errors import UsageError
from ddctl.limits import check_layer_name

_TERM = re.compile(r"^(?P<blob>[^:*+\s]+)(?::(?P<channels>[^*+]*))?(?:\*(?P<weight>[^*+]*))?$")
EXAMPLE = "e.g. inception_4c/output:97 or inception_4c/output*1+inception_3b/output*0.5"


@dataclass
class Term:
    blob: str
    channels: Optional[tuple] = None  # None: every channel
    weight: float = 1.0


def parse(spec: str, known: Sequence[str] = ()) -> list:
    """LAYER -> [Term]; UsageError (one line) when it does not follow the grammar.
    A name in `known` (the net's blobs) is always one blob."""
    if not spec or not spec.strip():
        raise UsageError("LAYER is empty: give a layer name (see `ddctl layers`).")
    if spec in known:
        return [Term(spec)]
    terms = []
    for part in spec.split("+"):
        m = _TERM.match(part.strip())
        if not m:
            raise UsageError(
                f"cannot read {part!r} as LAYER[:CHANNEL[,CHANNEL...]][*WEIGHT] joined by +: {EXAMPLE}."
            )
        blob, channels, weight = m.group("blob"), None, 1.0
        if m.group("channels") is not None:
            try:
                channels = tuple(sorted({int(c) for c in m.group("channels").split(",")}))
            except ValueError:
                channels = ()
            if not channels or channels[0] < 0:
                raise UsageError(
                    f"channels of {blob} must be whole numbers from 0, separated by commas, "
                    f"got {m.group('channels')!r}."
                )
        if m.group("weight") is not None:
            try:
                weight = float(m.group("weight"))
            except ValueError:
                weight = math.nan
            if not math.isfinite(weight) or weight <= 0:
                raise UsageError(
                    f"the weight of {blob} must be a number greater than 0, got {m.group('weight')!r}."
                )
        terms.append(Term(blob, channels, weight))
    return terms


_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def check_spec(spec: str, model: Optional[str] = None, label: str = "LAYER") -> list:
    """Everything the host can check of LAYER without the net (the one place commands call,
    before any download or container): not an option, the grammar, and no blob that is a
    number. The number rule holds for the nets ddctl knows (the image's own and the known
    models, `model` a name or None), whose blobs all have names; a folder's net may really
    have a blob "123" (converted nets do), so with a folder the net's own list decides.
    Returns the terms; UsageError (one line, exit 2) otherwise."""
    try:
        check_layer_name(spec)
    except ValueError as exc:
        raise UsageError(str(exc).replace("LAYER ", f"{label} ", 1))
    terms = parse(spec)
    if model is None or not _is_folder(model):
        for t in terms:
            if _NUMBER.match(t.blob):
                raise UsageError(
                    f"{label} {t.blob!r} is a number, not a layer: LAYER comes before ITERATIONS "
                    f"and OCTAVES (e.g. `ddctl run SOURCE inception_4c/output {t.blob}`); "
                    f"`ddctl layers` lists the layers."
                    if label == "LAYER"
                    else f"{label} {t.blob!r} is a number, not a layer: `ddctl layers` lists the layers."
                )
    return terms


MAX_CELLS = 256  # engine/sheet.py's: cells in one sheet
_CHANNEL_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")


def split_cells(layers: str) -> list:
    """--layers L1,L2,... -> [L1, L2, ...] as engine/sheet.py split_layers reads it: each may
    be an objective, and a comma followed by a channel number belongs to the objective
    before it: 'a,b:1,2,c*0.5+d' -> ['a', 'b:1,2', 'c*0.5+d']."""
    out: list = []
    for part in (x.strip() for x in layers.split(",")):
        if not part:
            continue
        last = out[-1].rpartition("+")[2] if out else ""
        if part.isdigit() and ":" in last and "*" not in last:
            out[-1] += "," + part
        else:
            out.append(part)
    return out


def check_cells(layers: Optional[str], channels: Optional[str], model: Optional[str] = None) -> list:
    """`ddctl sheet`'s --layers all|L1,L2 and --channels LAYER:0-15,20 read as the engine reads
    them (engine/sheet.py cells_of, split_layers, parse_channels), without the net; UsageError
    otherwise. Each layer passes check_spec (not an option, the grammar, not a number).
    Returns the LAYERs to check against the net: none for `all`, each item of --layers,
    one LAYER:c,c,... for --channels. Both options together are refused."""
    if layers is None and channels is None:
        raise UsageError("Say what the cells are: --layers all, --layers L1,L2,... or --channels LAYER:0-15.")
    if layers is not None and channels is not None:
        # `--layers all --channels L:0-3` would be every layer's cell and then four more:
        # a sheet compares layers or the channels of one layer; a mix is said in --layers
        raise UsageError(
            "Give --layers or --channels, not both: to mix them, list the channels in --layers "
            "(e.g. --layers inception_3b/output,inception_4c/output:97,inception_4c/output:112)."
        )
    if layers is not None and layers.strip() != "all":
        names = split_cells(layers)
        if not names:
            raise UsageError(f"--layers is all or a comma-separated list of layers, got {layers!r}.")
        if len(names) > MAX_CELLS:
            raise UsageError(f"--layers: {len(names)} cells, at most {MAX_CELLS} in one sheet.")
        for name in names:
            check_spec(name, model, label="--layers")
    else:
        names = []
    if channels is None:
        return names
    layer, sep, rest = channels.rpartition(":")
    if not sep or not layer or not rest:
        raise UsageError(f"--channels is LAYER:FIRST-LAST (e.g. inception_4c/output:0-15), got {channels!r}.")
    check_spec(layer, model, label="--channels")
    chosen: set = set()
    for part in rest.split(","):
        m = _CHANNEL_RANGE.match(part)
        if not m:
            raise UsageError(f"--channels: {part!r} is not a channel number or a range FIRST-LAST.")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo:
            raise UsageError(f"--channels: the range {part!r} goes backwards; write {hi}-{lo}.")
        if hi - lo >= MAX_CELLS:
            raise UsageError(f"--channels: at most {MAX_CELLS} cells in one sheet.")
        chosen.update(range(lo, hi + 1))
    if len(chosen) > MAX_CELLS:
        raise UsageError(f"--channels: at most {MAX_CELLS} cells in one sheet.")
    return names + [f"{layer}:{','.join(str(c) for c in sorted(chosen))}"]


def _is_folder(model: str) -> bool:
    """--model DIR rather than a known name (ddctl.models.resolve's rule)."""
    return "/" in model or os.sep in model or model.startswith(".") or os.path.isdir(model)


def check(terms: list, layers: list) -> None:
    """UsageError for a blob the net lacks or a channel out of range.
    layers: [{"name", "channels", "stride"}] as `ddctl layers` lists them."""
    channels = {str(row["name"]): int(row.get("channels") or 0) for row in layers}
    for t in terms:
        if t.blob not in channels:
            hint = " (LAYER comes before ITERATIONS)" if re.match(r"^[0-9.]+$", t.blob) else ""
            close = difflib.get_close_matches(t.blob, list(channels), n=1, cutoff=0.8)
            hint = hint or (f" (did you mean {close[0]}?)" if close else "")
            names = ", ".join(channels)
            raise UsageError(f"unknown layer {t.blob!r}{hint}: choose one of {names}")
        bad = [c for c in t.channels or () if c >= channels[t.blob]]
        if bad and channels[t.blob] > 0:
            n = channels[t.blob]
            raise UsageError(f"channel {bad[0]} is out of range: {t.blob} has {n} channels (0 to {n - 1})")


def plain_blob(terms: list) -> Optional[str]:
    """The blob name when the objective is one whole blob with weight 1, else None."""
    if len(terms) == 1 and terms[0].channels is None and terms[0].weight == 1.0:
        return terms[0].blob
    return None
