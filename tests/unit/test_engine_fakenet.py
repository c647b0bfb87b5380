"""A small numpy network for the engine's host tests, and checks that it is a sound one.

FakeNet exposes both faces the tests need:
  - engine/net.py's Net protocol (mean, input_gradient, layers, min_input_size), for the engine;
  - the caffe.Classifier attributes the notebook uses (blobs, forward(end=), backward(start=),
    transformer.mean), for tests/unit/notebook_reference.py.
Each layer is a 2x2 stride-2 "convolution" (channel mixing over 2x2 patches) + bias + ReLU,
so the blobs have strides 2, 4, 8 like a tiny GoogLeNet stem.
"""

import numpy as np

from engine import objectives
from engine.net import LayerInfo

MEAN = np.float32([104.0, 116.0, 122.0])  # (3,) BGR


class Blob:
    def __init__(self):
        self.data = np.zeros((1, 1, 1, 1), np.float32)
        self.diff = np.zeros((1, 1, 1, 1), np.float32)

    def reshape(self, *shape):
        self.data = np.zeros(shape, np.float32)
        self.diff = np.zeros(shape, np.float32)


class Transformer:
    def __init__(self, mean):
        self.mean = {'data': mean.reshape(3, 1, 1)}  # (3,1,1), as caffe's set_mean stores it


def _down(x, w, b):
    """x (C,H,W) -> relu(2x2 stride-2 conv) (O,H//2,W//2); w (O,C,2,2), b (O,)."""
    C, H, W = x.shape
    h, w_ = H // 2, W // 2
    xr = x[:, : 2 * h, : 2 * w_].reshape(C, h, 2, w_, 2)  # (C,h,2,w,2)
    z = np.einsum('okab,kiajb->oij', w, xr) + b[:, None, None]  # (O,h,w)
    return np.maximum(z, 0).astype(np.float32)


def _down_backward(x, y, dy, w):
    """gradient of _down w.r.t. x, given its output y and the output's gradient dy."""
    C, H, W = x.shape
    h, w_ = y.shape[1:]
    dz = np.where(y > 0, dy, 0).astype(np.float32)  # ReLU backward
    dxr = np.einsum('okab,oij->kiajb', w, dz)  # (C,h,2,w,2)
    dx = np.zeros_like(x)
    dx[:, : 2 * h, : 2 * w_] = dxr.reshape(C, 2 * h, 2 * w_)
    return dx


class FakeNet:
    NAMES = ['conv1', 'conv2', 'conv3']
    CHANNELS = [8, 12, 16]

    def __init__(self, seed=1, extra_layers=()):
        rng = np.random.RandomState(seed)
        self.mean = MEAN.copy()
        self.transformer = Transformer(self.mean)
        self.params = []
        c = 3
        for o in self.CHANNELS:
            w = (rng.randn(o, c, 2, 2) / np.sqrt(4 * c)).astype(np.float32)
            b = (rng.randn(o) * 0.1).astype(np.float32)
            self.params.append((w, b))
            c = o
        self.blobs = {name: Blob() for name in ['data'] + self.NAMES}
        self.extra_layers = list(extra_layers)  # LayerInfo rows a sloppy net might report
        self.calls = 0

    # --- caffe-like face -------------------------------------------------
    def forward(self, end):
        x = self.blobs['data'].data[0]
        for name, (w, b) in zip(self.NAMES, self.params):
            x = _down(x, w, b)
            self.blobs[name].data = x[None]
            self.blobs[name].diff = np.zeros_like(x[None])
            if name == end:
                return
        raise KeyError(end)

    def backward(self, start):
        k = self.NAMES.index(start)
        dy = self.blobs[start].diff[0]
        for j in range(k, -1, -1):
            if j < k and self.blobs[self.NAMES[j]].diff.any():  # an objective on several blobs
                dy = dy + self.blobs[self.NAMES[j]].diff[0]
            x = self.blobs[self.NAMES[j - 1]].data[0] if j else self.blobs['data'].data[0]
            dy = _down_backward(x, self.blobs[self.NAMES[j]].data[0], dy, self.params[j][0])
        self.blobs['data'].diff[0] = dy

    # --- engine.net.Net face ---------------------------------------------
    def input_gradient(self, data, end):
        self.calls += 1
        objective = objectives.as_objective(end, self.NAMES)  # a blob name: its L2
        last = max(objective.layers, key=self.NAMES.index)
        src = self.blobs['data']
        src.reshape(1, *data.shape)
        src.data[0] = data
        self.forward(end=last)
        blobs = [self.blobs[name] for name in objective.layers]
        objective.set_diffs([b.data for b in blobs], [b.diff for b in blobs])
        self.backward(start=last)
        return src.diff[0].copy()

    def features(self, data, end):
        src = self.blobs['data']
        src.reshape(1, *data.shape)
        src.data[0] = data
        self.forward(end=end)
        return self.blobs[end].data[0].copy()

    def layers(self):
        rows = [LayerInfo(n, c, 2 ** (i + 1)) for i, (n, c) in enumerate(zip(self.NAMES, self.CHANNELS))]
        return self.extra_layers + rows

    def min_input_size(self, end):
        return 2 ** (self.NAMES.index(end) + 1) if end in self.NAMES else 0


# -----------------------------------------------------------------------------
# the fake net must be a real gradient, or the equality tests prove little


def test_fake_net_input_gradient_is_the_gradient_of_half_squared_norm():
    net = FakeNet()
    rng = np.random.RandomState(3)
    x = (rng.randn(3, 12, 10) * 40).astype(np.float64)
    for end in FakeNet.NAMES:
        g = net.input_gradient(x.astype(np.float32), end).astype(np.float64)

        def f(v, end=end):
            net.blobs['data'].reshape(1, *v.shape)
            net.blobs['data'].data[0] = v
            net.forward(end=end)
            return 0.5 * float((net.blobs[end].data.astype(np.float64) ** 2).sum())

        for idx in [(0, 0, 0), (1, 5, 3), (2, 7, 9), (0, 11, 8)]:
            e = np.zeros_like(x)
            e[idx] = 0.5
            num = (f((x + e).astype(np.float32)) - f((x - e).astype(np.float32))) / 1.0
            assert abs(num - g[idx]) <= 0.02 * max(1.0, abs(g[idx])), (end, idx, num, g[idx])
        assert np.abs(g).sum() > 0


def test_fake_net_blob_strides_match_reported_layers():
    net = FakeNet()
    net.input_gradient(np.zeros((3, 33, 17), np.float32), 'conv3')
    for info in net.layers():
        assert net.blobs[info.name].data.shape == (1, info.channels, 33 // info.stride, 17 // info.stride)
