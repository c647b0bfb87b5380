"""Engine vs the plain notebook transcription, in one run inside the dream image.

    docker run --rm -v "$PWD:/src:ro" --entrypoint python3 ddctl/deepdream:test \
        /src/bench/engine_vs_notebook.py [--width 1024 --height 576 --layer inception_4c/output]
    (or: bash bench/run.sh [IMAGE])

Both dream the same 1024x576 picture with the notebook's defaults (10 iterations, 4 octaves,
scale 1.4, step 1.5, jitter 32 from the same seed):
  notebook  tests/unit/notebook_reference.py on caffe.Classifier(deploy + force_backward)
  engine    engine.dream.deepdream on engine.caffe_net (no weight gradients, cut net)
The two run alternately, --repeat times each (default 2), and the best time of each is
kept, so both see the same machine load. Times exclude loading the nets (printed apart). Prints both times, their ratio, the
largest pixel difference of the two pictures, and the engine's useful GFLOP/s: the
multiply-adds (x2) of the Convolution/InnerProduct layers `end` depends on, forward plus
input-gradient backward, summed over every step at each octave's size.
"""

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "unit"))  # notebook_reference

import caffe  # noqa: E402
import notebook_reference as nb  # noqa: E402

from engine import caffe_net, dream  # noqa: E402


def picture(w, h):
    """A deterministic (H,W,3) uint8 RGB picture with smooth areas, edges and texture."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rng = np.random.RandomState(1)
    img = np.stack(
        [
            128 + 90 * np.sin(xx / 37.0) * np.cos(yy / 23.0),
            128 + 90 * np.cos((xx + yy) / 51.0),
            np.where((xx // 64 + yy // 64) % 2 == 0, 200.0, 60.0),
        ],
        axis=-1,
    )
    img += rng.normal(0, 10, img.shape)
    return np.uint8(np.clip(img, 0, 255))


def useful_flops(netp, end, h, w):
    """FLOPs of one step at h x w: conv/IP layers `end` depends on, forward + input backward."""
    shapes = caffe_net.infer_shapes(netp, h, w)
    total = 0
    for i in caffe_net._ancestors(netp, end):
        layer = netp.layer[i]
        if layer.type == "Convolution":
            cp = layer.convolution_param
            (kh, kw), _, _ = caffe_net._kernel(cp)
            cin = shapes[layer.bottom[0]][0]
            cout, ho, wo = shapes[layer.top[0]]
            macs = cout * ho * wo * (cin // (cp.group or 1)) * kh * kw
        elif layer.type == "InnerProduct":
            c, hi, wi = shapes[layer.bottom[0]]
            macs = c * hi * wi * layer.inner_product_param.num_output
        else:
            continue
        total += 2 * 2 * macs  # 2 FLOPs a multiply-add; forward + input-gradient backward
    return total


def notebook_classifier(prototxt, weights):
    with open(prototxt) as f:
        text = f.read()
    with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as tmp:
        tmp.write(text + "\nforce_backward: true\n")  # the notebook's tmp.prototxt
    try:
        return caffe.Classifier(
            tmp.name, weights, mean=np.float32([104.0, 116.0, 122.0]), channel_swap=(2, 1, 0)
        )
    finally:
        os.unlink(tmp.name)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--width", type=int, default=1024)
    ap.add_argument("--height", type=int, default=576)
    ap.add_argument("--layer", default="inception_4c/output")
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--octaves", type=int, default=4)
    ap.add_argument("--octave-scale", type=float, default=1.4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=2, help="runs of each, alternated; best kept")
    ap.add_argument("--json", action="store_true", help="one JSON line instead of text")
    a = ap.parse_args()
    prototxt, weights = os.environ["DDCTL_PROTOTXT"], os.environ["DDCTL_WEIGHTS"]
    img = picture(a.width, a.height)
    kw = dict(iter_n=a.iterations, octave_n=a.octaves, octave_scale=a.octave_scale, end=a.layer)

    t0 = time.perf_counter()
    ref_net = notebook_classifier(prototxt, weights)
    t_ref_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    net = caffe_net.load_net(prototxt, weights)
    net.input_gradient(np.zeros((3, 32, 32), np.float32), a.layer)  # builds the cut net
    t_eng_load = time.perf_counter() - t0

    # alternate the two, best of --repeat each: both see the same machine load
    t_ref = t_eng = float("inf")
    for _ in range(a.repeat):
        np.random.seed(a.seed)
        t0 = time.perf_counter()
        ref = nb.deepdream(ref_net, img, **kw)
        t_ref = min(t_ref, time.perf_counter() - t0)
        t0 = time.perf_counter()
        out = dream.deepdream(net, img, rng=np.random.RandomState(a.seed), **kw)
        t_eng = min(t_eng, time.perf_counter() - t0)

    diff = int(np.abs(dream.to_uint8(out).astype(int) - nb.to_uint8(ref).astype(int)).max())
    flops = sum(
        useful_flops(net.netp, a.layer, h, w) * a.iterations
        for h, w in dream.octave_shapes(a.height, a.width, a.octaves, a.octave_scale)
    )
    res = {
        "width": a.width,
        "height": a.height,
        "layer": a.layer,
        "iterations": a.iterations,
        "octaves": a.octaves,
        "octave_scale": a.octave_scale,
        "repeat": a.repeat,
        "notebook_s": round(t_ref, 2),
        "engine_s": round(t_eng, 2),
        "ratio": round(t_ref / t_eng, 2),
        "engine_gflops": round(flops / t_eng / 1e9, 1),
        "useful_gflop": round(flops / 1e9, 1),
        "max_pixel_diff": diff,
        "notebook_load_s": round(t_ref_load, 2),
        "engine_load_s": round(t_eng_load, 2),
        "weights": os.environ.get("DDCTL_WEIGHTS_LABEL", ""),
        "cores": os.cpu_count(),
    }
    if a.json:
        print(json.dumps(res))
    else:
        print(
            "picture %dx%d, %s, %d iterations x %d octaves (scale %g), %d cores, best of %d"
            % (a.width, a.height, a.layer, a.iterations, a.octaves, a.octave_scale, os.cpu_count(), a.repeat)
        )
        print("notebook transcription: %7.2f s   (net load %.2f s)" % (t_ref, t_ref_load))
        print("engine:                 %7.2f s   (net load %.2f s)" % (t_eng, t_eng_load))
        print("ratio notebook/engine:  %7.2f x" % (t_ref / t_eng))
        print(
            "engine useful GFLOP/s:  %7.1f     (%.1f GFLOP: conv forward + input backward)"
            % (flops / t_eng / 1e9, flops / 1e9)
        )
        print("largest pixel difference engine vs notebook: %d" % diff)
    return 0


if __name__ == "__main__":
    sys.exit(main())
