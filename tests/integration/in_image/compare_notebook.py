"""Run inside the dream image: the engine's picture against the notebook transcription's.

    python3 compare_notebook.py LAYER JITTER SEED [W H ITER OCTAVES]

The notebook side is tests/unit/notebook_reference.py driving a caffe.Classifier on
deploy.prototxt + `force_backward: true` (exactly the notebook's tmp.prototxt); the engine
side is engine.dream.deepdream on engine.caffe_net. Both draw jitter from the same seed.
Prints one JSON object: max and mean absolute difference of the uint8 pictures, whether
the float pictures are equal, and how many of the cut net's layers are still Caffe's
Convolution (0: the engine's fast convolutions ran) and how many are Python layers.
"""

import json
import os
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "unit"))  # notebook_reference

import caffe  # noqa: E402
import notebook_reference as nb  # noqa: E402

from engine import caffe_net, dream  # noqa: E402


def test_picture(w, h):
    """A deterministic RGB picture (H,W,3) uint8 with edges and texture."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rng = np.random.RandomState(1)
    img = np.stack([128 + 100 * np.sin(xx / 9.0), 128 + 100 * np.cos(yy / 7.0), (xx + yy) % 256], axis=-1)
    img += rng.normal(0, 12, img.shape)
    return np.uint8(np.clip(img, 0, 255))


def notebook_net(prototxt, weights):
    with open(prototxt) as f:
        text = f.read()
    with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as tmp:
        tmp.write(text + "\nforce_backward: true\n")
    try:
        return caffe.Classifier(
            tmp.name, weights, mean=np.float32([104.0, 116.0, 122.0]), channel_swap=(2, 1, 0)
        )
    finally:
        os.unlink(tmp.name)


def main(argv):
    layer, jitter, seed = argv[1], int(argv[2]), int(argv[3])
    w, h, iter_n, octave_n = (int(v) for v in (argv[4:8] or (160, 120, 2, 2)))
    prototxt, weights = os.environ["DDCTL_PROTOTXT"], os.environ["DDCTL_WEIGHTS"]
    img = test_picture(w, h)

    ref_net = notebook_net(prototxt, weights)
    np.random.seed(seed)
    ref_float = nb.deepdream(ref_net, img, iter_n=iter_n, octave_n=octave_n, end=layer, jitter=jitter)
    ref = nb.to_uint8(ref_float)

    net = caffe_net.load_net(prototxt, weights)
    out_float = dream.deepdream(
        net,
        img,
        iter_n=iter_n,
        octave_n=octave_n,
        end=layer,
        jitter=jitter,
        rng=np.random.RandomState(seed),
    )
    out = dream.to_uint8(out_float)
    cut_net, _ = net._net(layer)  # the net the engine dreamed with: which layers are Caffe's
    kinds = [lay.type for lay in cut_net.layers]
    diff = np.abs(out.astype(np.int16) - ref.astype(np.int16))
    print(
        json.dumps(
            {
                "layer": layer,
                "jitter": jitter,
                "shape": list(out.shape),
                "max_diff": int(diff.max()),
                "float_equal": bool(np.array_equal(np.asarray(out_float), np.asarray(ref_float))),
                "caffe_convolutions": kinds.count("Convolution"),
                "python_layers": kinds.count("Python"),
                "mean_diff": float(diff.mean()),
                "changed": float(np.abs(ref.astype(np.int16) - img).mean()),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
