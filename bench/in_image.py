"""The bench's parts that run inside the dream image (bench/peer_vs_engine.py starts them).

    python3 /src/bench/in_image.py notebook PICTURE OUT [ITER OCTAVES SCALE SEED LAYER]
        the notebook transcription (tests/unit/notebook_reference.py on a force_backward
        caffe.Classifier), a whole run, with the engine's step/done events on stdout
    python3 /src/bench/in_image.py facts W H LAYER ITER OCTAVES SCALE
        one JSON line: the useful FLOPs of each octave's steps (the Convolution layers LAYER
        depends on, forward + input-gradient backward) and the best SGEMM GFLOP/s of this
        machine through the cblas_sgemm Caffe calls (2 threads, 2048^3, best of 5)
    python3 /src/bench/in_image.py profile W H LAYER [REPEAT]
        where one step's time goes: every layer of the engine's cut net timed alone,
        forward and backward, best of REPEAT, by Caffe type and the top layers
Every part prints a {"event": "memory", ...} line at the end: the process's peak RSS.
"""

import json
import os
import resource
import sys
import time

T0 = time.perf_counter()
HERE = os.path.dirname(os.path.abspath(__file__))


def emit(**fields):
    print(json.dumps(fields), flush=True)


def peak_rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def notebook(picture, out, iter_n=10, octave_n=4, scale=1.4, seed=0, layer="inception_4c/output"):
    import tempfile

    import numpy as np
    from PIL import Image

    sys.path.insert(0, os.path.join(HERE, "..", "tests", "unit"))
    import caffe
    import notebook_reference as nb

    img = np.asarray(Image.open(picture).convert("RGB"))
    with open(os.environ["DDCTL_PROTOTXT"]) as f:
        text = f.read()
    with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as tmp:
        tmp.write(text + "\nforce_backward: true\n")  # the notebook's tmp.prototxt
    net = caffe.Classifier(
        tmp.name,
        os.environ["DDCTL_WEIGHTS"],
        mean=np.float32([104.0, 116.0, 122.0]),
        channel_swap=(2, 1, 0),
    )
    os.unlink(tmp.name)
    t0 = time.perf_counter()
    steps = [0]
    make_step = nb.make_step

    def timed_step(net, **kw):  # nb.deepdream looks make_step up at each call
        make_step(net, **kw)
        h, w = net.blobs["data"].data.shape[-2:]
        emit(event="step", step=steps[0], width=w, height=h, elapsed=round(time.perf_counter() - t0, 4))
        steps[0] += 1

    nb.make_step = timed_step
    np.random.seed(seed)
    res = nb.deepdream(net, img, iter_n=iter_n, octave_n=octave_n, octave_scale=scale, end=layer)
    Image.fromarray(nb.to_uint8(res)).save(out)
    emit(event="done", elapsed=round(time.perf_counter() - t0, 4), setup=round(t0 - T0, 3))


def facts(w, h, layer, iter_n, octave_n, scale):
    import numpy as np

    from engine import caffe_net, dream

    try:
        from engine.conv_kernels import sgemm  # the cblas_sgemm call Caffe makes
    except ImportError:  # an older image: numpy's matmul on the same BLAS

        def sgemm(trans_a, m, n, k, a, b, c):
            np.matmul(a, b, out=c)

    netp = caffe_net.read_prototxt(os.environ["DDCTL_PROTOTXT"])
    octaves = []
    for oh, ow in dream.octave_shapes(h, w, octave_n, scale)[::-1]:  # smallest first
        octaves.append(dict(width=ow, height=oh, flops_per_step=useful_flops(caffe_net, netp, layer, oh, ow)))
    n = 2048
    a = np.random.RandomState(0).rand(n, n).astype(np.float32)
    c = np.empty_like(a)
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        sgemm(False, n, n, n, a, a, c)
        best = min(best, time.perf_counter() - t)
    emit(event="facts", octaves=octaves, iterations=iter_n, sgemm_gflops=round(2 * n**3 / best / 1e9, 1))


def useful_flops(caffe_net, netp, end, h, w):
    """FLOPs of one step at h x w: Convolution/InnerProduct layers `end` depends on,
    forward + input-gradient backward (2 FLOPs a multiply-add)."""
    shapes = caffe_net.infer_shapes(netp, h, w)
    total = 0
    for i in caffe_net._ancestors(netp, end):
        layer = netp.layer[i]
        if layer.type == "Convolution":
            (kh, kw), _, _ = caffe_net._kernel(layer.convolution_param)
            cin = shapes[layer.bottom[0]][0]
            cout, ho, wo = shapes[layer.top[0]]
            total += 2 * 2 * cout * ho * wo * (cin // (layer.convolution_param.group or 1)) * kh * kw
        elif layer.type == "InnerProduct":
            c, hi, wi = shapes[layer.bottom[0]]
            total += 2 * 2 * c * hi * wi * layer.inner_product_param.num_output
    return total


def profile(w, h, layer, repeat=3):
    import collections

    import numpy as np

    from engine import caffe_net

    net = caffe_net.load_net()
    x = np.random.RandomState(0).uniform(-100, 100, (3, h, w)).astype(np.float32)
    t = time.perf_counter()
    net.input_gradient(x, layer)  # allocation and first touch
    first = time.perf_counter() - t
    step = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        net.input_gradient(x, layer)
        step = min(step, time.perf_counter() - t)
    cut, _ = net._net(layer)
    n = len(cut.layers)
    names = list(cut._layer_names)
    python = {  # the Python layers by what they stand for: ConvLayer, MaxPoolLayer...
        lp.name: lp.python_param.layer
        for lp in caffe_net.dream_netparameter(net.netp, layer).layer
        if lp.type == "Python"
    }
    kinds = [
        python.get(names[i], lay.type) if lay.type == "Python" else lay.type
        for i, lay in enumerate(cut.layers)
    ]
    fw, bw = [float("inf")] * n, [float("inf")] * n
    for _ in range(repeat):
        for i in range(n):
            t = time.perf_counter()
            cut._forward(i, i)
            fw[i] = min(fw[i], time.perf_counter() - t)
        for i in range(n - 1, -1, -1):
            t = time.perf_counter()
            cut._backward(i, i)
            bw[i] = min(bw[i], time.perf_counter() - t)
    by_kind = collections.defaultdict(lambda: [0.0, 0.0])
    for i in range(n):
        by_kind[kinds[i]][0] += fw[i]
        by_kind[kinds[i]][1] += bw[i]
    total = sum(fw) + sum(bw)
    layers = sorted(range(n), key=lambda i: -(fw[i] + bw[i]))[:15]
    emit(
        event="profile",
        width=w,
        height=h,
        layer=layer,
        first_step=round(first, 3),
        step=round(step, 3),
        sum_of_layers=round(total, 3),
        by_kind={
            k: [round(f, 4), round(b, 4)] for k, (f, b) in sorted(by_kind.items(), key=lambda kv: -sum(kv[1]))
        },
        top_layers=[[names[i], kinds[i], round(fw[i], 4), round(bw[i], 4)] for i in layers],
    )


def main(argv):
    what, args = argv[1], argv[2:]
    if what == "notebook":
        picture, out = args[:2]
        rest = args[2:]
        kinds = (int, int, float, int, str)
        notebook(picture, out, *[k(v) for k, v in zip(kinds, rest)])
    elif what == "facts":
        w, h, layer, iter_n, octave_n, scale = args
        facts(int(w), int(h), layer, int(iter_n), int(octave_n), float(scale))
    elif what == "profile":
        w, h, layer = args[:3]
        profile(int(w), int(h), layer, *(int(v) for v in args[3:4]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    emit(event="memory", peak_rss=peak_rss())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
