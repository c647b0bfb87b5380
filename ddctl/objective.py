"""LAYER's objective grammar on the host (README "The objective grammar"), so that a bad
LAYER is refused before any download or container.

    TERM := BLOB [":" CHANNEL ("," CHANNEL)*] ["*" WEIGHT]      terms joined by "+"

The engine parses the same grammar (engine/objectives.py); tests/unit/test_objective_contract.py
holds both to the same answers. ddctl never imports the engine.
"""

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

from ddctl.errors import UsageError

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


def check(terms: list, layers: list) -> None:
    """UsageError for a blob the net lacks or a channel out of range.
    layers: [{"name", "channels", "stride"}] as `ddctl layers` lists them."""
    channels = {str(row["name"]): int(row.get("channels") or 0) for row in layers}
    for t in terms:
        if t.blob not in channels:
            hint = " (LAYER comes before ITERATIONS)" if re.match(r"^[0-9.]+$", t.blob) else ""
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
