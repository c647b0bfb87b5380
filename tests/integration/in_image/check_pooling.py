"""Run inside the dream image: the engine's max pooling against Caffe's own Pooling layer.

    python3 check_pooling.py

For each window shape GoogLeNet uses (3x3 stride 2, 3x3 stride 1 pad 1) and a few others
(odd sizes, ceil-mode edges, padding wider than one), on pictures full of ties (ReLU zeros
and repeated values, where "the first maximum" decides the mask; -0.0 next to 0.0, NaN,
-inf): the forward's values and the backward's gradient must be Caffe's bit for bit.
Prints one JSON object.
"""

import json
import sys

import numpy as np
from caffe_bits import bits, build_net

from engine import caffe_net

SHAPES = [  # (C, H, W, kernel, stride, pad)
    (8, 17, 23, 3, 2, 0),
    (8, 16, 16, 3, 2, 0),
    (5, 19, 11, 3, 1, 1),
    (4, 9, 13, 2, 2, 0),
    (3, 12, 7, 5, 3, 2),
    (2, 3, 9, 3, 2, 0),
    # rows long enough for the vectorised passes (8 outputs at a time, then a last
    # overlapping block), odd and even widths, a padded stride 2 (windows starting on odd
    # columns); their pictures also mix -0.0 with 0.0 and hold NaN and -inf, which Caffe's
    # strict > skips
    (6, 40, 131, 3, 2, 0),
    (5, 37, 70, 3, 1, 1),
    (4, 29, 64, 3, 2, 1),
]
SPECIAL_FROM = 6  # SHAPES[SPECIAL_FROM:] get the special values


def caffe_pool(x, k, s, p, dtop):
    text = (
        'input: "data" input_shape { dim: 1 dim: %d dim: %d dim: %d }\n'
        'force_backward: true\n'
        'layer { name: "pool" type: "Pooling" bottom: "data" top: "pool" '
        "pooling_param { pool: MAX kernel_size: %d stride: %d pad: %d } }\n" % (x.shape + (k, s, p))
    )
    net = build_net(text)
    net.blobs["data"].data[0] = x
    net.forward()
    top = net.blobs["pool"].data[0].copy()
    net.blobs["pool"].diff[0] = dtop
    net.backward()
    return top, net.blobs["data"].diff[0].copy()


def main():
    rng = np.random.RandomState(0)
    results = []
    for n, (c, h, w, k, s, p) in enumerate(SHAPES):
        x = rng.randint(-3, 4, size=(c, h, w)).astype(np.float32)  # many equal values
        x = np.maximum(x, 0) * np.float32(0.5)  # and ReLU's zeros
        if n >= SPECIAL_FROM:
            pick = rng.random_sample(x.shape)
            x[pick < 0.3] = -0.0
            x[(pick > 0.98) & (pick < 0.99)] = np.nan
            x[pick >= 0.99] = -np.inf
        oh = caffe_net._out_len(h, k, s, p, True, pad_any=p)
        ow = caffe_net._out_len(w, k, s, p, True, pad_any=p)
        dtop = rng.standard_normal((c, oh, ow)).astype(np.float32)
        ref_top, ref_dx = caffe_pool(x, k, s, p, dtop)
        top = np.empty((c, oh, ow), np.float32)
        mask = np.empty((c, oh, ow), np.int32)
        caffe_net._maxpool_forward(x, top, mask, k, k, s, s, p, p)
        dx = np.empty_like(x)
        caffe_net._maxpool_backward(dtop, mask, dx)
        results.append(
            {
                "shape": [c, h, w, k, s, p],
                "top_equal": bool(top.shape == ref_top.shape and np.array_equal(bits(top), bits(ref_top))),
                "dx_equal": bool(np.array_equal(bits(dx), bits(ref_dx))),
            }
        )
    print(json.dumps({"results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
