"""The engine's progress as ddctl reads it: bytes to lines, lines to events, steps to an ETA.

The event shapes are the README's ("Contracts" / "Progress"); tests/unit/test_contract.py
feeds the engine's real lines through these.
"""

import json
from typing import Optional


def parse_engine_line(line: str) -> Optional[dict]:
    """A dict for one of the engine's JSON progress lines, or None for any other line."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) and "event" in obj else None


class LineSplitter:
    """Bytes chunks in, complete text lines out."""

    def __init__(self):
        self._buf = b""

    def feed(self, chunk: bytes) -> list:
        self._buf += chunk
        *lines, self._buf = self._buf.split(b"\n")
        return [line.decode("utf-8", "replace") for line in lines]

    def close(self) -> list:
        rest, self._buf = self._buf, b""
        return [rest.decode("utf-8", "replace")] if rest.strip() else []


def lines_of(chunks):
    """Every complete line of a stream of byte chunks, the last unterminated one included."""
    splitter = LineSplitter()
    for chunk in chunks:
        yield from splitter.feed(chunk)
    yield from splitter.close()


class DreamProgress:
    """Octave, iteration and an ETA weighted by each octave's pixel count.

    The small octaves cost far less than the last, full-size one: counting steps alone
    would promise an early finish. Work = sum of width*height over steps.
    """

    def __init__(self, start: dict, octave_scale: float = 1.4):
        self.steps_total = int(start.get("steps_total") or 0)
        self.octaves = max(1, int(start.get("octaves") or 1))
        self.iterations = max(1, int(start.get("iterations") or 1))
        w, h = int(start.get("width") or 0), int(start.get("height") or 0)
        s = float(octave_scale or 1.4)
        self.work_total = float(sum(w * h / s ** (2 * k) for k in range(self.octaves)) * self.iterations)
        self.work_done = 0.0
        self.step = 0
        self.octave = 0
        self.iteration = 0
        self.elapsed = 0.0

    def update(self, step: dict) -> None:
        self.step = int(step.get("step") or self.step + 1)
        self.octave = int(step.get("octave") or 0)
        self.iteration = int(step.get("iteration") or 0)
        self.elapsed = float(step.get("elapsed") or 0.0)
        self.work_done += int(step.get("width") or 0) * int(step.get("height") or 0)
        # Trust the steps when the size prediction was off.
        floor = self.work_done * self.steps_total / self.step if self.step and self.steps_total else 0
        if self.work_total < self.work_done or (self.step >= self.steps_total and self.steps_total):
            self.work_total = max(self.work_done, floor)

    @property
    def fraction(self) -> float:
        if self.work_total > 0:
            return min(1.0, self.work_done / self.work_total)
        return self.step / self.steps_total if self.steps_total else 0.0

    @property
    def eta(self) -> Optional[float]:
        f = self.fraction
        if f <= 0:
            return None
        return max(0.0, self.elapsed * (1 - f) / f)
