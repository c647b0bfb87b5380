"""Run inside the dream image: the engine's convolutions against Caffe's own layers.

    python3 check_convolution.py

engine/caffe_net.py runs every 2-D Convolution (and the in-place ReLU after it) as a Python
ConvLayer on engine/conv_kernels.py: im2col, the same OpenBLAS SGEMM calls, col2im, the
fused ReLU. For kernel shapes GoogLeNet uses (7x7 stride 2 pad 3, 3x3 pad 1, 5x5 pad 2, 1x1)
and others (dilation, stride 3, padding wider than the kernel's reach, no bias, no ReLU),
on pictures small and large enough to be split into several blocks, the forward's output
and the backward's input gradient must be Caffe's bit for bit (compared as bits, so -0.0
and NaN count). Prints one JSON object.
"""

import json
import sys

import numpy as np
from caffe.proto import caffe_pb2
from caffe_bits import bits, build_net
from google.protobuf import text_format

from engine import caffe_net

CASES = [  # (C, H, W, Cout, kernel, stride, pad, dilation, bias, relu)
    (3, 37, 61, 8, 7, 2, 3, 1, True, True),  # conv1/7x7_s2
    (3, 290, 515, 4, 7, 2, 3, 1, True, True),  # the same, several col2im blocks a channel
    (5, 13, 17, 6, 3, 1, 1, 1, True, True),  # the inception 3x3s
    (2, 150, 530, 3, 3, 1, 1, 1, True, True),  # several blocks, stride 1
    (4, 11, 9, 3, 5, 1, 2, 1, True, True),  # the inception 5x5s
    (6, 10, 12, 5, 1, 1, 0, 1, True, True),  # 1x1 (no im2col)
    (2, 9, 14, 4, 3, 2, 1, 2, True, False),  # dilation 2, no ReLU
    (3, 16, 11, 2, 4, 3, 5, 1, False, True),  # stride 3, pad beyond the kernel, no bias
    (1, 1, 1, 2, 3, 1, 1, 1, True, True),  # a one-pixel picture
]


def prototxt(c, h, w, cout, k, s, p, d, bias, relu):
    text = (
        'input: "data" input_shape { dim: 1 dim: %d dim: %d dim: %d }\n'
        "force_backward: true\n"
        'layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" '
        "convolution_param { num_output: %d kernel_size: %d stride: %d pad: %d dilation: %d "
        'bias_term: %s weight_filler { type: "gaussian" std: 0.3 } '
        'bias_filler { type: "gaussian" std: 0.5 } } }\n'
        % (c, h, w, cout, k, s, p, d, "true" if bias else "false")
    )
    if relu:
        text += 'layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }\n'
    return text


def main():
    rng = np.random.RandomState(0)
    results = []
    for case in CASES:
        text = prototxt(*case)
        ref = build_net(text)
        netp = caffe_pb2.NetParameter()
        text_format.Merge(text, netp)
        caffe_net._use_fast_convs(netp)
        python_layers = sum(1 for layer in netp.layer if layer.type == "Python")
        ours = build_net(text_format.MessageToString(netp))
        for i, blob in enumerate(ref.params["conv"]):
            ours.params["conv"][i].data[...] = blob.data
        c, h, w = case[:3]
        x = rng.standard_normal((c, h, w)).astype(np.float32) * np.float32(4)
        x[rng.random_sample(x.shape) < 0.05] = 0.0  # zeros, as after a ReLU
        outs = []
        for net in (ref, ours):
            net.blobs["data"].data[0] = x
            net.forward()
            dtop = np.random.RandomState(1).standard_normal(net.blobs["conv"].data.shape).astype(np.float32)
            top = net.blobs["conv"].data.copy()
            net.blobs["conv"].diff[...] = dtop
            net.backward()
            outs.append((top, net.blobs["data"].diff.copy()))
        (rtop, rdx), (top, dx) = outs
        results.append(
            {
                "case": list(case),
                "python_layers": python_layers,
                "top_equal": bool(top.shape == rtop.shape and np.array_equal(bits(top), bits(rtop))),
                "dx_equal": bool(np.array_equal(bits(dx), bits(rdx))),
            }
        )
    print(json.dumps({"results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
