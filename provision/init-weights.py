#!/usr/bin/env python3
"""Weights helpers run at image build time (inside the image, with Debian's caffe).

    init-weights.py untrained PROTOTXT DEST   # Caffe's own initialisation, fixed seed
    init-weights.py check PROTOTXT WEIGHTS     # the file loads into the net, or exit 1

`untrained` writes weights with the same topology and cost as bvlc_googlenet but no
training: pictures are meaningless, tests and offline trials work. The seed is fixed so
the file (and its SHA1, recorded in the image's label) is the same on every build.
"""

import hashlib
import os
import sys

os.environ.setdefault("GLOG_minloglevel", "2")
import caffe

SEED = 2015


def sha1_of(path):
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main(argv):
    if len(argv) != 4 or argv[1] not in ("untrained", "check"):
        print(__doc__, file=sys.stderr)
        return 2
    cmd, prototxt, path = argv[1:]
    caffe.set_mode_cpu()
    if cmd == "untrained":
        caffe.set_random_seed(SEED)
        caffe.Net(prototxt, caffe.TEST).save(path)
        print("init-weights: untrained weights %s sha1 %s" % (path, sha1_of(path)), flush=True)
        return 0
    if cmd == "check" and os.environ.get("DDCTL_CHECK_CHILD") != "1":
        # Caffe aborts the process (glog FATAL) on a malformed file: load in a child.
        import subprocess

        env = dict(os.environ, DDCTL_CHECK_CHILD="1")
        rc = subprocess.call([sys.executable, argv[0], cmd, prototxt, path], env=env)
        if rc != 0:
            print(
                "ddctl: %s is not bvlc_googlenet weights that Caffe can load (exit %d); "
                "use --weights untrained, or weights made for models/bvlc_googlenet/deploy.prototxt"
                % (path, rc),
                file=sys.stderr,
                flush=True,
            )
            return 1
        return 0
    # Caffe silently keeps its own initialisation for layers a file lacks (a web page
    # parses as an empty net): check that the file holds every param blob, by size.
    from caffe.proto import caffe_pb2

    model = caffe_pb2.NetParameter()
    try:
        with open(path, "rb") as f:
            model.ParseFromString(f.read())
    except Exception as e:
        print("init-weights: %s is not a Caffe model file (%s)" % (path, e), file=sys.stderr, flush=True)
        return 1
    have = {}
    for layer in list(model.layer) + list(model.layers):  # layers: the 2014 (V1) format
        have[layer.name] = [len(b.data) or len(b.double_data) for b in layer.blobs]
    net = caffe.Net(prototxt, caffe.TEST)
    missing = [name for name, params in net.params.items() if have.get(name) != [p.data.size for p in params]]
    if missing:
        print(
            "init-weights: %s lacks the weights of %d layers (%s...)"
            % (path, len(missing), ", ".join(missing[:3])),
            file=sys.stderr,
            flush=True,
        )
        return 1
    net = caffe.Net(prototxt, path, caffe.TEST)
    n = sum(p[0].data.size for p in net.params.values())
    print("init-weights: %s loads (%d weights)" % (path, n), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
