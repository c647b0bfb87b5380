"""What the in-image checks against Caffe's own layers share (check_convolution.py,
check_lrn.py, check_pooling.py): a caffe.Net made from prototxt text, and float32 bits to
compare (-0.0 differs from 0.0, NaN equals itself)."""

import os
import tempfile

import caffe
import numpy as np


def build_net(text):
    """A caffe.Net (TEST phase) from prototxt text: Caffe reads nets only from files."""
    with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as f:
        f.write(text)
    try:
        return caffe.Net(f.name, caffe.TEST)
    finally:
        os.unlink(f.name)


def bits(a):
    """The float32 bits of `a`, for comparisons that see -0.0 and NaN."""
    return np.ascontiguousarray(a, np.float32).view(np.uint32)
