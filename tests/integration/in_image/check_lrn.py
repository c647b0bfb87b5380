"""Run inside the dream image: the engine's LRN against Caffe's own LRN layer.

    python3 check_lrn.py

engine/caffe_net.py runs ACROSS_CHANNELS LRN as a Python layer: Caffe's running sums
compiled by numba, and for beta = 0.75 the power scale^-beta by engine/powf.py (glibc's
powf on 16 lanes). Checks, compared as bits: the layer's forward and backward against
Caffe's for GoogLeNet's LRN (size 5, alpha 1e-4, beta 0.75) and for other parameters (which
keep numba's powf call); and engine/powf.py against numpy's power (libm's powf) for
exponent -0.75 on 16.8 M positive floats spread over the whole float32 range (every 127th
bit pattern), the special values and scale-like values. Prints one JSON object.
"""

import json
import sys

import numpy as np
from caffe.proto import caffe_pb2
from caffe_bits import bits, build_net
from google.protobuf import text_format

from engine import caffe_net, powf

CASES = [  # (C, H, W, local_size, alpha, beta, k)
    (64, 37, 45, 5, 1e-4, 0.75, 1.0),  # GoogLeNet's norm1 and norm2
    (192, 20, 33, 5, 1e-4, 0.75, 1.0),
    (7, 9, 11, 3, 0.02, 0.75, 2.0),
    (16, 13, 17, 5, 1e-4, 0.5, 1.0),  # another beta: numba's powf call
]


def layer_results():
    rng = np.random.RandomState(0)
    results = []
    for c, h, w, size, alpha, beta, k in CASES:
        text = (
            'input: "data" input_shape { dim: 1 dim: %d dim: %d dim: %d }\n'
            "force_backward: true\n"
            'layer { name: "norm" type: "LRN" bottom: "data" top: "norm" '
            "lrn_param { local_size: %d alpha: %r beta: %r k: %r } }\n" % (c, h, w, size, alpha, beta, k)
        )
        netp = caffe_pb2.NetParameter()
        text_format.Merge(text, netp)
        layer = netp.layer[0]
        param_str = caffe_net._fast_lrn(layer)
        layer.ClearField("lrn_param")
        caffe_net._make_python(layer, "LRNLayer", param_str)
        x = np.maximum(rng.standard_normal((c, h, w)), 0).astype(np.float32) * np.float32(30)
        dtop = rng.standard_normal((c, h, w)).astype(np.float32)
        outs = []
        for net in (build_net(text), build_net(text_format.MessageToString(netp))):
            net.blobs["data"].data[0] = x
            net.forward()
            net.blobs["norm"].diff[0] = dtop
            net.backward()
            outs.append((net.blobs["norm"].data[0].copy(), net.blobs["data"].diff[0].copy()))
        (rtop, rdx), (top, dx) = outs
        results.append(
            {
                "case": [c, h, w, size, alpha, beta, k],
                "top_equal": bool(np.array_equal(bits(top), bits(rtop))),
                "dx_equal": bool(np.array_equal(bits(dx), bits(rdx))),
            }
        )
    return results


def powf_mismatches():
    y = np.float32(-0.75)
    spread = np.arange(1, 0x7F800000, 127, dtype=np.uint32).view(np.float32)  # every 127th
    scale_like = (1 + np.float32(2e-5) * np.random.RandomState(1).gamma(1, 5e4, 2_000_000)).astype(np.float32)
    special = np.array(
        [0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, 1e-45, 1.17549435e-38, 3.4028235e38, 2.0, 0.5],
        np.float32,
    )
    total = bad = 0
    for x in (spread, scale_like, special):
        got = np.empty_like(x)
        powf.pow_array(x, got, y)
        with np.errstate(all="ignore"):
            want = np.power(x, y)
        total += x.size
        bad += int(np.count_nonzero(bits(got) != bits(want)))
    return total, bad


def main():
    total, bad = powf_mismatches()
    print(json.dumps({"results": layer_results(), "powf_checked": total, "powf_mismatches": bad}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
