"""Run inside the dream image: engine.caffe_net's shape rules against Caffe's own.

For several picture sizes, every blob of the cut net to inception_5b/output must have the
shape caffe_net.infer_shapes predicts; for every dreamable layer, the net must run at
min_input_size(layer) with the layer at least 1x1, and infer_shapes must reject one less.
Prints one JSON object {"ok": bool, "problems": [...]}.
"""

import json
import sys

import numpy as np

from engine import caffe_net


def main():
    net = caffe_net.load_net()
    problems = []
    end = "inception_5b/output"
    cut, data = net._net(end)
    for h, w in ((224, 224), (131, 97), (64, 200), (31, 31)):
        net.input_gradient(np.zeros((3, h, w), np.float32), end)
        want = caffe_net.infer_shapes(net.netp, h, w)
        for name, blob in cut.blobs.items():
            if name in want and want[name] is not None:
                if tuple(blob.data.shape[1:]) != tuple(want[name]):
                    problems.append(
                        "%dx%d %s: caffe %s, inferred %s" % (h, w, name, blob.data.shape, want[name])
                    )
    for info in net.layers():
        n = net.min_input_size(info.name)
        g = net.input_gradient(np.ones((3, n, n), np.float32), info.name)
        shape = net._net(info.name)[0].blobs[info.name].data.shape
        if min(shape[2:]) < 1 or not np.isfinite(g).all():
            problems.append("%s at %d: blob %s" % (info.name, n, shape))
        if n > 1 and caffe_net.infer_shapes(net.netp, n - 1, n - 1).get(info.name) is not None:
            problems.append("%s: %d is not the smallest" % (info.name, n))
    print(
        json.dumps(
            {
                "ok": not problems,
                "problems": problems[:20],
                "min_sizes": {
                    i.name: net.min_input_size(i.name) for i in net.layers() if i.name.endswith("/output")
                },
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
