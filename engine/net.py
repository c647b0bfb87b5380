"""The small interface the dream algorithm needs from a network.

engine/caffe_net.py implements it with Caffe (the only module that imports caffe);
tests implement it with a few numpy ops. Nothing here imports caffe.
"""

from typing import NamedTuple

import numpy as np

try:  # Python 3.8+ (the image has 3.9)
    from typing import Protocol
except ImportError:  # pragma: no cover
    Protocol = object


class LayerInfo(NamedTuple):
    name: str  # blob name, e.g. 'inception_4c/output'
    channels: int  # e.g. 512
    stride: int  # input pixels per blob pixel, e.g. 16


class Net(Protocol):
    mean: np.ndarray  # (3,) float32, BGR, [104, 116, 122] for bvlc_googlenet

    def input_gradient(self, data: np.ndarray, end: str) -> np.ndarray:
        """data (3,H,W) float32 BGR mean-subtracted; forward to blob `end`, set its diff
        to its data (the L2 objective), backward; return d(objective)/d(data), (3,H,W) float32."""

    def layers(self) -> list[LayerInfo]:
        """[LayerInfo(name, channels, stride)] blobs one can dream on, in net order."""

    def min_input_size(self, end: str) -> int:
        """Smallest square side (px) the net can run to `end` (0 if unknown)."""
