"""Run inside the dream image: what a trained net sees in pictures, to judge objectives.

    python3 measure.py PROTOTXT WEIGHTS B,G,R LAYER GUIDE PICTURE...

Prints one JSON object: for each PICTURE (relative to /images), at LAYER,
  l2            |features|^2 / 2
  channel_mean  [C] mean activation of each channel
  channel_l2    [C] |channel|^2 / 2 of each channel
  cosine_guide  cosine similarity of the picture's mean feature vector with GUIDE's
"""

import json
import os
import sys

import numpy as np
from PIL import Image

from engine import caffe_net, dream


def rgb(path):
    with Image.open(os.path.join("/images", path)) as im:
        return np.asarray(im.convert("RGB"))


def main(argv):
    prototxt, weights, mean, layer, guide = argv[1:6]
    net = caffe_net.load_net(prototxt, weights, [float(v) for v in mean.split(",")])

    def feats(path):
        return net.features(dream.preprocess(net.mean, rgb(path)), layer).astype(np.float64)  # (C,h,w)

    g = feats(guide).mean(axis=(1, 2))
    out = {}
    for path in argv[6:]:
        f = feats(path)
        v = f.mean(axis=(1, 2))
        out[path] = {
            "l2": float((f**2).sum() / 2),
            "channel_mean": v.tolist(),
            "channel_l2": ((f**2).sum(axis=(1, 2)) / 2).tolist(),
            "cosine_guide": float(v.dot(g) / (np.linalg.norm(v) * np.linalg.norm(g) + 1e-12)),
        }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
