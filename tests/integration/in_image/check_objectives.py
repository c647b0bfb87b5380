"""Run inside the dream image: engine/objectives.py on Caffe (engine.caffe_net).

    python3 check_objectives.py JITTER SEED

Prints one JSON object:
  guided_max_diff   the engine's guided dream against the notebook transcription's
                    (objective_guide on a force_backward caffe.Classifier), uint8 pictures;
  plain_equal       a blob name and the parsed objective give the same gradient bits;
  before_equal      ... the same bits as the net of before objectives (its L2Objective layer);
  channel_rel_err   channels {a} + the other channels = the whole blob (gradients add up);
  mix_rel_err       a*1+b*0.5 = grad(a) + 0.5 grad(b).
"""

import json
import os
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "unit"))  # notebook_reference
sys.path.insert(0, HERE)

import caffe  # noqa: E402
import notebook_reference as nb  # noqa: E402
from compare_notebook import notebook_net, test_picture  # noqa: E402
from google.protobuf import text_format  # noqa: E402

from engine import caffe_net, dream, objectives  # noqa: E402


def rel(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))


def before_gradient(net, x, layer):
    """The gradient as the engine computed it before objectives: the cut net whose loss is
    the L2Objective layer (dream_netparameter without a slot)."""
    netp = caffe_net.dream_netparameter(net.netp, layer)
    with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as f:
        f.write(text_format.MessageToString(netp))
    try:
        old = caffe.Net(f.name, net.weights, caffe.TEST)
    finally:
        os.unlink(f.name)
    blob = old.blobs["data"]
    blob.reshape(1, *x.shape)
    old.reshape()
    blob.data[0] = x
    n = len(old.layers)
    old._forward(0, n - 1)
    old._backward(n - 1, 0)
    return blob.diff[0].copy()


def main(argv):
    jitter, seed = int(argv[1]), int(argv[2])
    prototxt, weights = os.environ["DDCTL_PROTOTXT"], os.environ["DDCTL_WEIGHTS"]
    layer = "inception_3b/output"  # the notebook's guided example
    img, guide = test_picture(160, 120), test_picture(96, 80)[::-1, ::-1].copy()

    ref_net = notebook_net(prototxt, weights)
    nb.set_guide(ref_net, np.float32(guide), layer)
    np.random.seed(seed)
    ref = nb.deepdream(
        ref_net, img, iter_n=2, octave_n=2, end=layer, jitter=jitter, objective=nb.objective_guide
    )

    net = caffe_net.load_net(prototxt, weights)
    objective = objectives.guide(net, guide, layer)
    out = dream.deepdream(
        net, img, iter_n=2, octave_n=2, end=objective, jitter=jitter, rng=np.random.RandomState(seed)
    )
    diff = np.abs(dream.to_uint8(out).astype(np.int16) - nb.to_uint8(ref).astype(np.int16))

    x = dream.preprocess(net.mean, img)
    whole = net.input_gradient(x, layer)
    plain_equal = bool(np.array_equal(whole, net.input_gradient(x, objectives.parse(layer))))
    before_equal = all(
        bool(np.array_equal(net.input_gradient(x, name), before_gradient(net, x, name)))
        for name in (layer, "inception_4c/output")
    )
    some = net.input_gradient(x, objectives.parse(layer + ":3,100"))
    rest = net.input_gradient(
        x, objectives.parse(layer + ":" + ",".join(str(c) for c in range(480) if c not in (3, 100)))
    )
    other = "inception_4c/output"
    mix = net.input_gradient(x, objectives.parse("%s*1+%s*0.5" % (other, layer)))
    parts = net.input_gradient(x, other) + 0.5 * whole
    print(
        json.dumps(
            {
                "guided_max_diff": int(diff.max()),
                "guided_changed": float(np.abs(dream.to_uint8(out).astype(np.int16) - img).mean()),
                "plain_equal": plain_equal,
                "before_equal": before_equal,
                "channel_rel_err": rel(some + rest, whole),
                "channel_share": float(np.abs(some).sum() / np.abs(whole).sum()),
                "mix_rel_err": rel(mix, parts),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
