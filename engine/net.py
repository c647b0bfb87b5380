"""The small interface the dream algorithm needs from a network.

engine/caffe_net.py implements it with Caffe (the only module that imports caffe);
tests implement it with a few numpy ops. Nothing here imports caffe.
"""

from typing import (
    NamedTuple,
    Protocol,  # Python 3.8+ (the image has 3.9)
)

import numpy as np


class LayerInfo(NamedTuple):
    name: str  # blob name, e.g. 'inception_4c/output'
    channels: int  # e.g. 512
    stride: int  # input pixels per blob pixel, e.g. 16


class Net(Protocol):
    mean: np.ndarray  # (3,) float32, BGR, [104, 116, 122] for bvlc_googlenet

    def input_gradient(self, data: np.ndarray, end) -> np.ndarray:
        """data (3,H,W) float32 BGR mean-subtracted; forward to the objective's blobs, let
        the objective set their diffs, backward; return d(objective)/d(data), (3,H,W) float32.

        end: an engine/objectives.py objective (`.layers`, `.set_diffs(datas, diffs)`), or
        a blob name, meaning the L2 objective on that blob (diff = data, the notebook's)."""

    def features(self, data: np.ndarray, end: str) -> np.ndarray:
        """data (3,H,W) float32 BGR mean-subtracted -> blob `end`'s data (C,h,w) float32
        after a forward pass (the guide's features of a guided dream)."""

    def layers(self) -> list[LayerInfo]:
        """[LayerInfo(name, channels, stride)] blobs one can dream on, in net order."""

    def min_input_size(self, end: str) -> int:
        """Smallest square side (px) the net can run to `end` (0 if unknown)."""

    # Optional (dream.deepdream calls it when present): reserve(h, w, end) sizes the net for
    # its largest picture before the first step, so later steps never reallocate.
